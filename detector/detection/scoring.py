"""Risk of systematic extraction for one account, with the evidence that drove it.

Pure: takes an :class:`~detector.detection.profile.AccountProfile` and the population's state, returns an
:class:`Assessment`. The formula and every threshold are in :mod:`detector.detection.policy`.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
from math import exp, log
from types import ModuleType
from typing import NamedTuple

from river import compose, stats

from detector.detection.features import activity
from detector.detection.features.prompting import capability_focus
from detector.detection.features.prompts import TASK_KINDS
from detector.detection.features.shares import ramp
from detector.detection.policy import DetectionPolicy
from detector.detection.profile import AccountProfile


def _river_module(name: str, packages: tuple[str, ...]) -> ModuleType:
    """River's module ``name``, imported without running the ``__init__`` of ``packages``.

    ``river.anomaly``, ``river.preprocessing`` and ``river.tree`` import every model they hold, and
    some of those import SciPy's stats: most of every ``detector`` command's start-up, which
    ``detector replay --workers N`` pays serially before it forks (docs/performance.md). The two
    classes used here need none of it. Each package is a bare module (its path, no code) while
    ``name`` is imported, then removed, so a later ``import river.anomaly`` runs its ``__init__``
    as usual and finds the same classes."""
    stubs = [package for package in packages if package not in sys.modules]
    for package in stubs:
        spec = importlib.util.find_spec(package)
        assert spec is not None, package
        sys.modules[package] = importlib.util.module_from_spec(spec)
    try:
        return importlib.import_module(name)
    finally:
        for package in stubs:
            del sys.modules[package]
            parent, _, child = package.rpartition(".")
            if hasattr(sys.modules[parent], child):
                delattr(sys.modules[parent], child)


_LIGHT = ("river.tree", "river.anomaly", "river.preprocessing")
try:
    HalfSpaceTrees = _river_module("river.anomaly.hst", _LIGHT).HalfSpaceTrees
    MinMaxScaler = _river_module("river.preprocessing.scale", _LIGHT).MinMaxScaler
except (ImportError, AttributeError):  # a River release that moved them: the slow start, nothing else
    from river.anomaly import HalfSpaceTrees
    from river.preprocessing import MinMaxScaler


class _PopulationMedian:
    """Placeholder baseline: looked up in the population only when evidence is needed."""


_POPULATION_MEDIAN = _PopulationMedian()
SEVERITIES = ("info", "warning", "critical")
HARVEST_EVIDENCE = 4
"""Checked requests before the harvest-shaped share is read: three requests are no habit."""


class Evidence(NamedTuple):
    """One indicator's reading, how alarming it is, and the points of risk it earned."""

    indicator: str
    observed: float
    baseline: float | None
    score: float
    contribution: float
    detail: str


class Assessment:
    """An account's risk score (0–100), severity tier and supporting evidence, strongest first.

    Evidence, and the points of risk each indicator earned, are worked out only when asked for
    (when an alert is emitted): scoring happens far more often than alerting.
    """

    __slots__ = ("risk", "severity", "_groups", "_population", "_evidence")

    def __init__(
        self,
        risk: float,
        severity: str,
        groups: tuple[tuple[list[_Reading], list[float], float], ...] = (),
        population: Population | None = None,
    ):
        """``groups``: per group of indicators, its readings, each reading's share of the group's
        score, and the points of risk the group added, to be split by those shares."""
        self.risk = risk
        self.severity = severity
        self._groups = groups
        self._population = population
        self._evidence: list[Evidence] | None = None

    @classmethod
    def frozen(cls, risk: float, severity: str, evidence: list[Evidence]) -> Assessment:
        """An assessment whose evidence was worked out already (one that waited in a snapshot)."""
        assessment = cls(risk, severity)
        assessment._evidence = evidence
        return assessment

    def with_severity(self, severity: str) -> Assessment:
        """The same assessment under another severity tier."""
        if self._evidence is not None and not self._groups:
            return Assessment.frozen(self.risk, severity, self._evidence)
        return Assessment(self.risk, severity, self._groups, self._population)

    @property
    def evidence(self) -> list[Evidence]:
        if self._evidence is None:
            evidence = []
            for readings, shares, points in self._groups:
                total = sum(shares) or 1.0
                for reading, share in zip(readings, shares, strict=True):
                    contribution = points * share / total
                    if contribution >= 0.5:
                        evidence.append(_evidence(reading, contribution, self._population))
            evidence.sort(key=lambda e: -e.contribution)
            self._evidence = evidence
        return self._evidence


_Reading = tuple[str, float, "float | None | _PopulationMedian", float, float, str]
"""``(indicator, observed, baseline, score, weight, detail)``: a plain tuple, not a NamedTuple,
as scoring builds a dozen per assessment and a NamedTuple costs a Python call to build."""


class Population:
    """Population-level models shared by all accounts of one detector (one per worker).

    * medians of each indicator (River ``stats.Quantile``), the baseline shown in evidence and
      the volume baseline for accounts too young to have their own;
    * a ``HalfSpaceTrees`` model of account feature vectors: how unusual an account is among
      all accounts. Accounts it finds anomalous are not learned from (River's convention).

    Each account feeds them at most once per event-time hour, so heavy accounts do not
    dominate the population.
    """

    def __init__(self, seed: int = 7):
        self.seed = seed
        self.medians: dict[str, stats.Quantile] = {}
        self.accounts_folded = 0
        self.outlier_model = compose.Pipeline(
            MinMaxScaler(),
            HalfSpaceTrees(n_trees=5, height=6, window_size=250, seed=seed),
        )
        self.outlier_learned = 0

    def snapshot(self) -> bytes:
        """The models, pickled: River's quantiles and trees have no other serial form. For this
        detector's own use only (never unpickle a snapshot from an untrusted source)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, state: bytes) -> None:
        restored = pickle.loads(state)
        if not isinstance(restored, Population):
            raise TypeError(f"Population.restore: expected a pickled Population; got {type(restored).__name__}")
        self.__dict__.update(restored.__dict__)

    def median(self, indicator: str) -> float | None:
        quantile = self.medians.get(indicator)
        return None if quantile is None or self.accounts_folded < 20 else quantile.get()

    def update(self, profile: AccountProfile, features: dict[str, float]) -> None:
        """Fold an account's current readings into the population; refresh its outlier score."""
        self.accounts_folded += 1
        for name, value in features.items():
            quantile = self.medians.get(name)
            if quantile is None:
                quantile = self.medians[name] = stats.Quantile(0.5)
            quantile.update(value)
        if self.outlier_learned >= 500:
            profile.population_outlier = self.outlier_model.score_one(features)
        if profile.population_outlier < 0.7:
            self.outlier_model.learn_one(features)
            self.outlier_learned += 1


def _severity(risk: float, policy: DetectionPolicy) -> str:
    if risk >= policy.critical_risk:
        return "critical"
    if risk >= policy.warning_risk:
        return "warning"
    return "info"


def _ramped(indicator: str, observed: float, setting: tuple[float, float, float], detail: str) -> _Reading:
    low, high, weight = setting
    return indicator, observed, _POPULATION_MEDIAN, ramp(observed, low, high), weight, detail


def _harvest_readings(profile: AccountProfile, policy: DetectionPolicy) -> list[_Reading]:
    readings: list[_Reading] = []
    if profile.prompts:
        kind, focus = capability_focus(profile)
        readings += (
            _ramped(
                "reasoning_elicitation_share",
                profile.reasoning_share,
                policy.reasoning_elicitation,
                "share of prompts asking for step-by-step or internal reasoning",
            ),
            _ramped(
                "templated_novel_fill_share",
                profile.novel_fill_share,
                policy.templated_novel_fill,
                "share of prompts reusing a template with content never sent before",
            ),
            _ramped(
                "capability_focus",
                focus,
                policy.capability_focus,
                f"share of prompts on one task kind ({TASK_KINDS[kind]})",
            ),
        )
    if profile.harvest_checked >= HARVEST_EVIDENCE:
        readings.append(
            _ramped(
                "harvest_shaped_share",
                harvest_opening_share(profile),
                policy.harvest_shaped,
                "share of conversation openings with new content that got a long answer",
            )
        )
    if profile.max_token_observations:
        readings.append(
            _ramped(
                "output_at_max_tokens_share",
                profile.at_max_tokens_share,
                policy.output_at_max_tokens,
                "share of responses cut off at max_tokens",
            )
        )
    if profile.token_observations:
        readings += (
            _ramped(
                "output_tokens_mean", profile.output_tokens_mean, policy.long_outputs, "mean output tokens per response"
            ),
            _ramped(
                "output_input_ratio",
                profile.output_input_ratio,
                policy.output_input_ratio,
                "mean output tokens per input token",
            ),
        )
    if profile.turn_observations:
        readings.append(
            _ramped(
                "single_turn_share",
                profile.first_turn_share,
                policy.single_turn,
                "share of requests opening a conversation, without follow-ups",
            )
        )
    return readings


def _automation_readings(
    profile: AccountProfile, now: float, policy: DetectionPolicy, population: Population
) -> list[_Reading]:
    readings: list[_Reading] = []
    rate = activity.recent_rate(profile, now)
    population_rate = population.median("requests_per_hour") or 1.0
    own_rate = activity.daily_rate(profile, now) if now - profile.first_seen >= 86400 else 0.0
    baseline = max(own_rate, population_rate, 1.0)
    low, high, weight = policy.volume_vs_baseline
    readings.append(
        (
            "requests_per_hour",
            rate,
            baseline,
            ramp(rate / baseline, low, high),
            weight,
            "requests in the last hour against the account's own daily rate or the population's",
        )
    )
    hours = activity.active_hours(profile, now)
    readings.append(
        _ramped("active_hours_24h", hours, policy.round_the_clock, "clock hours with traffic among the last 24")
    )
    if profile.gaps >= 10:
        spread = activity.timing_spread(profile)
        low, high, weight = policy.timing_regularity
        readings.append(
            (
                "inter_arrival_spread",
                spread,
                _POPULATION_MEDIAN,
                1.0 - ramp(spread, low, high),
                weight,
                "spread of log gaps between requests; low means machine-regular",
            )
        )
    if profile.created_at is not None:
        age_days = max(profile.first_seen - profile.created_at, 0.0) / 86400.0
        low, high, weight = policy.new_account
        readings.append(
            (
                "account_age_days",
                age_days,
                None,
                1.0 - ramp(age_days, low, high),
                weight,
                "account age at its first request; new accounts going straight to volume",
            )
        )
    readings.append(
        _ramped(
            "new_model_share",
            profile.new_model_share,
            policy.new_model_share,
            "share of traffic moved to a model released in the last days",
        )
    )
    readings.append(
        _ramped(
            "rate_limited_share",
            profile.rate_limited_share,
            policy.rate_limited_share,
            "share of requests refused with HTTP 429",
        )
    )
    if population.outlier_learned >= 500:
        low, high, weight = policy.population_outlier
        readings.append(
            (
                "population_outlier",
                profile.population_outlier,
                None,
                ramp(profile.population_outlier, low, high),
                weight,
                "half-space-trees anomaly score of the account among all accounts",
            )
        )
    return readings


def assess(
    profile: AccountProfile, now: float, policy: DetectionPolicy, population: Population, started: float | None = None
) -> Assessment:
    """Score one account at event time ``now``; ``started``: the event time the detector began watching.

    >>> from detector.detection.profile import AccountProfile
    >>> quiet = AccountProfile(first_seen=0.0, last_seen=0.0, requests=1)
    >>> assess(quiet, 60.0, DetectionPolicy(), Population()).severity
    'info'
    """
    harvest = _harvest_readings(profile, policy)
    weights = supporting_weight = supporting_weighted = 0.0
    weighted = []
    payload = 0.0
    for indicator, _, _, score, weight, _ in harvest:
        weights += weight
        weighted.append(weight * score)
        if indicator in _PAYLOAD and score > payload:
            payload = score
        if indicator in _SUPPORTING:
            supporting_weight += weight
            supporting_weighted += weight * score
    if not weights:
        return Assessment(0.0, "info")
    harvest_score = sum(weighted) / weights
    if weights > supporting_weight:  # supporting indicators raise the harvest score, never lower it
        harvest_score = max(harvest_score, (sum(weighted) - supporting_weighted) / (weights - supporting_weight))
    if payload < policy.payload_gate:
        harvest_score *= payload / policy.payload_gate
    if profile.prompts:
        harvest_score *= 1.0 - ramp(profile.repeat_share, *policy.content_repeat_relief)
    automation = _automation_readings(profile, now, policy, population)
    spared = []
    for _, _, _, score, weight, _ in automation:
        kept = 1.0 - weight * score
        spared.append(-log(kept if kept >= 1e-9 else 1e-9))
    automation_score = 1.0 - exp(-sum(spared))
    floor = policy.automation_floor
    # rounded before it is judged: the risk reported is the one compared with the thresholds downstream
    # (an established API product at 54.95 was reported at 55.0 with severity info: alarming to the
    # campaign stages, and joined to a campaign through its wrapper template; fresh 72 h seed 5870)
    risk = round(100.0 * harvest_score * (floor + (1.0 - floor) * automation_score), 1)
    if risk >= policy.warning_risk and _established(profile, now, policy, started):
        risk = round(policy.warning_risk - 0.1, 1)
    # Points of risk per indicator: the harvest-only part split by weighted score, the rest
    # (what automation added) split by each indicator's share of the noisy-or.
    from_harvest = 100.0 * harvest_score * floor
    groups = ((harvest, weighted, from_harvest), (automation, spared, risk - from_harvest))
    return Assessment(risk, _severity(risk, policy), groups, population)


def _established(profile: AccountProfile, now: float, policy: DetectionPolicy, started: float | None) -> bool:
    """Whether an account is an established customer that pages on its own only at a blatant jump in volume.

    An API product or a tutoring app serving its own users sends novel single questions with long
    answers round the clock: alone, it looks like harvesting. What it has that an operator's account
    does not is a history of its own: opened long before, and busy for as long as the detector has
    watched it (since the detector began, or for ``history_hours``). Such an account pages on its own
    only from ``blatant_requests_per_hour``, and only when that is ``history_jump`` times its own rate.
    An old account that the detector first sees well after it began, going straight to volume, is a
    dormant account woken up (operators buy aged accounts) and is scored as any other. Sharing a card,
    network or client with harvesters, an established account is paged through its campaign.
    """
    if not opened_long_before(profile, policy):
        return False
    if not preexisting(profile, policy, started) and now - profile.first_seen < policy.history_hours * 3600.0:
        return False
    rate = activity.recent_rate(profile, now)
    return rate < policy.blatant_requests_per_hour or rate < policy.history_jump * activity.daily_rate(profile, now)


def opened_long_before(profile: AccountProfile, policy: DetectionPolicy) -> bool:
    """Whether the account was opened ``new_account[1]`` days or more before the detector first saw it
    (not a fresh account; unknown when the platform does not say when it was opened)."""
    created_at = profile.created_at
    return created_at is not None and profile.first_seen - created_at >= policy.new_account[1] * 86400.0


def preexisting(profile: AccountProfile, policy: DetectionPolicy, started: float | None) -> bool:
    """Whether an account was opened long before it was first seen and has been busy since the detector's
    warm-up hour: it has a history the detector did not see (an API product serving its users)."""
    return (
        opened_long_before(profile, policy)
        and started is not None
        and profile.first_seen - started <= policy.warmup_hours * 3600.0
    )


OPENING_SHARE_FLOOR = 0.25
"""Least share of openings an account is taken to have (a conversation of four turns on average):
an account that nearly never opens one has too few openings to weigh."""


def harvest_opening_share(profile: AccountProfile) -> float:
    """Share of the account's conversation openings that were shaped like harvesting.

    Only an opening can be harvest-shaped, so the follow-up turns of ordinary chat that an operator
    mixes into an account as cover would dilute a share of all requests; a share of openings counts
    what the operator gets per conversation. Openings are estimated from the first-turn share.

    >>> profile = AccountProfile(first_seen=0.0, last_seen=0.0, harvest_checked=10, harvest_like=5)
    >>> profile.turn_observations, profile.first_turn_share = 10, 0.625  # five harvests, chats of 5/3 turns
    >>> harvest_opening_share(profile)
    0.8
    """
    share = profile.harvest_like / profile.harvest_checked
    if profile.turn_observations:
        share /= max(profile.first_turn_share, OPENING_SHARE_FLOOR)
    return min(share, 1.0)


_SUPPORTING = frozenset(
    {"reasoning_elicitation_share", "templated_novel_fill_share", "capability_focus", "single_turn_share"}
)
"""Harvest indicators that one of an operator's tactics sets to nothing: plain wording or another language
(reasoning phrases), reworded prompts (templates), breadth (one task kind), cover chat (single turns).
They raise confidence; the harvest itself (long answers to novel openings) is measured without them."""
_PAYLOAD = frozenset(
    {"harvest_shaped_share", "reasoning_elicitation_share", "output_at_max_tokens_share", "output_tokens_mean"}
)


def _evidence(reading: _Reading, contribution: float, population: Population | None) -> Evidence:
    indicator, observed, baseline, score, _, detail = reading
    if isinstance(baseline, _PopulationMedian):
        baseline = population.median(indicator) if population is not None else None
    return Evidence(
        indicator,
        round(observed, 4),
        None if baseline is None else round(baseline, 4),
        round(score, 3),
        round(contribution, 1),
        detail,
    )


def population_features(profile: AccountProfile, now: float) -> dict[str, float]:
    """The account's feature vector as the population models see it."""
    return {
        "requests_per_hour": activity.recent_rate(profile, now),
        "active_hours_24h": float(activity.active_hours(profile, now)),
        "inter_arrival_spread": activity.timing_spread(profile) if profile.gaps >= 10 else 2.0,
        "reasoning_elicitation_share": profile.reasoning_share,
        "templated_novel_fill_share": profile.novel_fill_share,
        "capability_focus": capability_focus(profile)[1],
        "output_at_max_tokens_share": profile.at_max_tokens_share,
        "output_tokens_mean": profile.output_tokens_mean,
        "harvest_shaped_share": profile.harvest_like / profile.harvest_checked if profile.harvest_checked else 0.0,
        "output_input_ratio": profile.output_input_ratio,
        "single_turn_share": profile.first_turn_share,
        "new_model_share": profile.new_model_share,
        "rate_limited_share": profile.rate_limited_share,
    }

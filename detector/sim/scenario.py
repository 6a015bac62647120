"""What to simulate: the window, the scale, and the tactic space each campaign draws from.

A detector tuned on one fixed set of attacks learns those attacks. So a scenario does not say
*which* attacks happen: each of its campaigns **draws** its tactics from the space below, from the
scenario's seed, and the evaluation (``detector eval --sweep``) runs many seeds. ``force`` and
``exclude`` pin or forbid tactic values (leave-one-tactic-out: tune with a value excluded, then
evaluate with it forced); ``plans`` fix a campaign's tactics outright (the demo, regression tests).

The tactic space (dimension: values). ``wording`` and ``capability`` draw one or two values; every
other dimension one.

* **wording**: ``reasoning`` (chain of thought asked for), ``plain_complete`` ("complete solution",
  "full production code", "thorough answer", no reasoning vocabulary), ``tool_use`` (agent
  transcripts to continue), ``rubric_grading`` (candidate answers to grade criterion by criterion);
* **capability**: ``math``, ``coding``, ``agentic``, ``natural`` (real users' questions re-asked);
* **paraphrase**: ``fixed_templates``, ``some_reworded`` (half), ``all_reworded``;
* **wrapper**: ``bare``, ``markdown``, ``json`` (dataset rows), ``system_prompt`` (a shared system
  prompt, logged as its hash);
* **language**: ``english``, ``multilingual`` (30-100 % of asks in 1-3 of zh, ru, es, de, fr, ko, ja, ar, pt);
* **client**: ``popular_sdk`` (the user agent and TLS fingerprint of thousands of customers),
  ``browser`` (browser agents, varied per account), ``custom_client`` (the operator's own stack);
* **egress**: ``datacenter``, ``residential`` (residential proxies), ``shared_nat`` (a few exit
  addresses many accounts sit behind);
* **network_sharing**: ``shared`` (accounts draw from a few common ranges), ``per_account``;
* **payment**: ``hundreds_per_card``, ``small_groups`` (2-10 accounts a card), ``per_account``;
* **creation**: ``batched`` (opened together shortly before), ``spread`` (over weeks);
* **account_age**: ``fresh`` (days), ``aged`` (months: bought or long-dormant accounts);
* **size**: ``single`` (1-3 accounts), ``tens``, ``hundreds``, ``thousands`` (up to ~2,000; all
  but ``single`` times ``scale``);
* **rate** per account (lifted where size × rate would harvest too little to make a dataset: a
  ``single`` operator harvests in bursts, ``tens`` of accounts at least steadily):
  ``trickle`` (2-10 a day), ``steady`` (10-60 a day), ``burst`` (200-2,000
  an hour, until the campaign's budget of 40,000 records times ``scale`` is spent; a campaign of
  many accounts spreads it over at least an hour, at a lower rate each);
* **schedule**: ``synchronized_shifts`` (groups of accounts active in the same rotating shifts),
  ``independent`` (each account a human-like day in its own time zone), ``round_the_clock``;
* **timing**: ``scripted`` (near-regular gaps), ``jittered`` (random gaps, bursts);
* **cover**: ``none``, ``mixed_chat`` (10-40 % ordinary multi-turn chat from the same accounts);
* **pivot**: ``none``, ``release_pivot`` (30-70 % of traffic moved to the new model within a day
  of its release).

Benign look-alike families draw their own variants (wrappers, wordings, languages, clients) by
the same seed; see :mod:`detector.sim.benign`. ``docs/simulation.md`` has the whole picture.

>>> scenario = Scenario(seed=3, force={"wording": {"plain_complete"}}, exclude={"language": {"multilingual"}})
>>> all("plain_complete" in tactics["wording"] and tactics["language"] == ("english",)
...     for tactics in scenario.campaign_tactics)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from detector.errors import ConfigError
from detector.sim.sampling import HOUR, seeded

MODEL_CURRENT = "helix-3"
MODEL_SMALL = "helix-3-mini"
MODEL_NEW = "helix-4"  # released during the window, at Scenario.new_model_release_hours

TACTICS: dict[str, tuple[str, ...]] = {
    "wording": ("reasoning", "plain_complete", "tool_use", "rubric_grading"),
    "capability": ("math", "coding", "agentic", "natural"),
    "paraphrase": ("fixed_templates", "some_reworded", "all_reworded"),
    "wrapper": ("bare", "markdown", "json", "system_prompt"),
    "language": ("english", "multilingual"),
    "client": ("popular_sdk", "browser", "custom_client"),
    "egress": ("datacenter", "residential", "shared_nat"),
    "network_sharing": ("shared", "per_account"),
    "payment": ("hundreds_per_card", "small_groups", "per_account"),
    "creation": ("batched", "spread"),
    "account_age": ("fresh", "aged"),
    "size": ("single", "tens", "hundreds", "thousands"),
    "rate": ("trickle", "steady", "burst"),
    "schedule": ("synchronized_shifts", "independent", "round_the_clock"),
    "timing": ("scripted", "jittered"),
    "cover": ("none", "mixed_chat"),
    "pivot": ("none", "release_pivot"),
}
"""Every tactic dimension and its values; the module docstring says what each means."""
MULTI_VALUED = frozenset({"wording", "capability"})
_RATE_ORDER = ("trickle", "steady", "burst")
"""Dimensions of which a campaign draws one or two values (a mix), not exactly one."""
CAMPAIGNS_PER_SCENARIO = (3, 5)
"""How many campaigns a scenario draws when ``Scenario.campaigns`` is None (inclusive range)."""


def _normalised(name: str, tactics: Mapping[str, object]) -> dict[str, frozenset[str]]:
    result = {}
    for dimension, values in tactics.items():
        if dimension not in TACTICS:
            raise ConfigError(
                f"Scenario: {name} names an unknown tactic dimension {dimension!r}; known: {sorted(TACTICS)}"
            )
        chosen = frozenset([values] if isinstance(values, str) else values)
        unknown = sorted(chosen - set(TACTICS[dimension]))
        if unknown:
            raise ConfigError(
                f"Scenario: {name}[{dimension!r}] has unknown values {unknown}; known: {TACTICS[dimension]}"
            )
        result[dimension] = chosen
    return result


def parse_tactic_flags(flags: list[str] | None) -> dict[str, set[str]]:
    """``["wording=plain_complete", "egress=residential,shared_nat"]`` → ``{dimension: {values}}``.

    >>> flags = parse_tactic_flags(["wording=plain_complete", "egress=residential,shared_nat"])
    >>> sorted(flags["egress"])
    ['residential', 'shared_nat']
    """
    result: dict[str, set[str]] = {}
    for flag in flags or ():
        dimension, separator, values = flag.partition("=")
        if not separator or not values:
            raise ConfigError(f"tactic flag: expected DIMENSION=VALUE[,VALUE...]; got {flag!r}")
        result.setdefault(dimension.strip(), set()).update(value.strip() for value in values.split(","))
    return result


@dataclass(frozen=True)
class Scenario:
    """A simulated window of API traffic; campaign tactics are drawn from ``seed`` unless forced.

    The defaults are the scale used by ``detector simulate`` and ``detector eval`` (a few thousand
    benign accounts, three to five campaigns, 48 event-time hours).
    """

    seed: int = 7
    start: float = 1772409600.0  # 2026-03-02T00:00Z, a Monday
    duration_hours: float = 48.0
    scale: float = 1.0
    """Multiplies every benign family's account count and every campaign's size (but ``single``)."""
    campaigns: int | None = None
    """How many campaigns; drawn from ``CAMPAIGNS_PER_SCENARIO`` when None."""
    campaign_start_hours: float = 12.0
    """The earliest campaign start: the detector first sees benign traffic only."""
    new_model_release_hours: float = 24.0
    force: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Tactic values every campaign must have (one of them, for single-valued dimensions)."""
    exclude: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Tactic values no campaign may have."""
    plans: tuple[Mapping[str, object], ...] = ()
    """Per-campaign fixed tactics ({dimension: value or values}) and numbers (any field of
    :class:`detector.sim.attacks.CampaignParameters`, e.g. "accounts") for the first ``len(plans)``
    campaigns; what a plan leaves out is drawn."""

    def __post_init__(self) -> None:
        if not self.duration_hours > 0:
            raise ConfigError(f"Scenario: duration_hours must be > 0; got {self.duration_hours}")
        if not self.scale > 0:
            raise ConfigError(f"Scenario: scale must be > 0; got {self.scale}")
        if self.campaigns is not None and self.campaigns < 0:
            raise ConfigError(f"Scenario: campaigns must be >= 0; got {self.campaigns}")
        for name in ("campaign_start_hours", "new_model_release_hours"):
            hours = getattr(self, name)
            if not 0 <= hours <= self.duration_hours:
                raise ConfigError(
                    f"Scenario: {name} must lie within [0, duration_hours={self.duration_hours}]; got {hours}"
                )
        force, exclude = _normalised("force", self.force), _normalised("exclude", self.exclude)
        for dimension, values in TACTICS.items():
            left = set(values) - exclude.get(dimension, frozenset())
            if not left:
                raise ConfigError(f"Scenario: exclude leaves no value of {dimension!r}")
            clash = force.get(dimension, frozenset()) & exclude.get(dimension, frozenset())
            if clash:
                raise ConfigError(f"Scenario: {dimension!r} values {sorted(clash)} are both forced and excluded")
        object.__setattr__(self, "force", force)
        object.__setattr__(self, "exclude", exclude)

    @classmethod
    def demo(cls, seed: int = 7) -> Scenario:
        """A few hundred accounts, one blatant extractor and one low-and-slow cluster over 6 h.

        The two campaigns are planned, not drawn, so the demo shows what the detector is known to
        catch; replayed at 60-120x it fits in a few minutes, and the campaigns start after one hour
        of benign traffic, so the baselines have something to learn from first.
        """
        scripted = {
            "wording": ("reasoning",),
            "capability": ("math", "coding"),
            "paraphrase": "fixed_templates",
            "wrapper": "bare",
            "language": "english",
            "egress": "datacenter",
            "network_sharing": "shared",
            "cover": "none",
            "pivot": "none",
            "timing": "scripted",
        }
        # the lone extractor has its own network ranges and wording: paged alone, not merged into the cluster
        blatant = {**scripted, "size": "single", "accounts": 1, "rate": "burst", "client": "popular_sdk",
                   "network_sharing": "per_account", "payment": "per_account", "capability": ("natural",),
                   "schedule": "round_the_clock"}  # fmt: skip
        cluster = {**scripted, "size": "hundreds", "accounts": 150, "rate": "steady", "requests_per_account_day": 26.0,
                   "ramp_hours": 0.5, "client": "custom_client",
                   "payment": "hundreds_per_card", "creation": "batched", "account_age": "fresh",
                   "schedule": "synchronized_shifts"}  # fmt: skip
        return cls(
            seed=seed,
            duration_hours=6.0,
            scale=0.1,
            campaigns=2,
            campaign_start_hours=1.0,
            new_model_release_hours=3.0,
            plans=(blatant, cluster),
        )

    def scaled(self, factor: float, hours: float | None = None) -> Scenario:
        """The same scenario with ``scale`` times ``factor`` and, given ``hours``, a window of that
        length in which the campaign start and the model release keep their relative place.

        >>> half = Scenario().scaled(0.5, hours=24)
        >>> half.scale, half.campaign_start_hours, half.new_model_release_hours
        (0.5, 6.0, 12.0)
        """
        if not factor > 0:
            raise ConfigError(f"Scenario.scaled: factor must be > 0; got {factor}")
        stretch = 1.0 if hours is None else hours / self.duration_hours
        return replace(
            self,
            scale=self.scale * factor,
            duration_hours=self.duration_hours * stretch,
            campaign_start_hours=self.campaign_start_hours * stretch,
            new_model_release_hours=self.new_model_release_hours * stretch,
        )

    @cached_property  # read in per-record loops
    def end(self) -> float:
        return self.start + self.duration_hours * HOUR

    @cached_property
    def campaign_start(self) -> float:
        return self.start + self.campaign_start_hours * HOUR

    @cached_property
    def release(self) -> float:
        return self.start + self.new_model_release_hours * HOUR

    @cached_property
    def campaign_tactics(self) -> tuple[dict[str, tuple[str, ...]], ...]:
        """Each campaign's tactics ({dimension: values}), drawn from the seed, forced and excluded values applied."""
        rng = seeded(self.seed, "campaigns")
        low, high = CAMPAIGNS_PER_SCENARIO
        count = self.campaigns if self.campaigns is not None else rng.randint(low, high)
        return tuple(
            self._draw(seeded(self.seed, "campaign", index), self.plans[index] if index < len(self.plans) else {})
            for index in range(count)
        )

    def _draw(self, rng, plan: Mapping[str, object]) -> dict[str, tuple[str, ...]]:
        tactics: dict[str, tuple[str, ...]] = {}
        for dimension, values in TACTICS.items():
            allowed = [value for value in values if value not in self.exclude.get(dimension, ())]
            forced = [value for value in allowed if value in self.force.get(dimension, ())]
            # draw every dimension even when planned, so a plan does not shift the other draws
            if dimension in MULTI_VALUED:
                wanted = 1 if rng.random() < 0.6 else 2
                others = [value for value in allowed if value not in forced]
                extra = rng.sample(others, max(0, min(len(others), wanted - len(forced))))
                chosen = tuple(value for value in values if value in forced or value in extra)
            else:
                chosen = (rng.choice(forced or allowed),)
            if dimension in plan:
                planned = plan[dimension]
                chosen = (planned,) if isinstance(planned, str) else tuple(planned)  # type: ignore[arg-type]
            tactics[dimension] = chosen
        return self._with_harvest_volume(tactics, plan)

    def _with_harvest_volume(self, tactics: dict[str, tuple[str, ...]], plan: Mapping[str, object]):
        """Lift a draw that would harvest too little to build a dataset in the window.

        One to three accounts at a few requests a day, or a few tens at two a day, send fewer than a
        few hundred exchanges a day: no operator runs a campaign for that, and no detector could tell
        it from a customer. A lone operator (``size`` single) harvests in bursts; a few tens of
        accounts at least steadily. A forced or planned rate is kept and the size lifted instead.
        """
        size, rate = tactics["size"][0], tactics["rate"][0]
        floor = {"single": "burst", "tens": "steady"}.get(size)
        if floor is None or _RATE_ORDER.index(rate) >= _RATE_ORDER.index(floor):
            return tactics
        if "rate" in plan or "rate" in self.force:
            lifted = "hundreds" if rate == "trickle" else "tens"
            if "size" in plan or lifted in self.exclude.get("size", ()):
                return tactics
            return {**tactics, "size": (lifted,)}
        if floor in self.exclude.get("rate", ()):
            return tactics
        return {**tactics, "rate": (floor,)}

    def describe(self) -> dict:
        """The scenario as plain JSON-able data (forced and excluded tactics as sorted lists)."""
        return {
            "seed": self.seed,
            "start": self.start,
            "duration_hours": self.duration_hours,
            "scale": self.scale,
            "campaign_start_hours": self.campaign_start_hours,
            "new_model_release_hours": self.new_model_release_hours,
            "end": self.end,
            "campaign_start": self.campaign_start,
            "new_model_release": self.release,
            "force": {dimension: sorted(values) for dimension, values in self.force.items()},
            "exclude": {dimension: sorted(values) for dimension, values in self.exclude.items()},
            "models": {"current": MODEL_CURRENT, "small": MODEL_SMALL, "new": MODEL_NEW},
        }

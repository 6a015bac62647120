"""The detection core: validated requests in, alerts out. No Faust, no Kafka, no metrics client.

The same :class:`Detector` runs inside ``detector replay``, the Faust worker and the tests, so a
replay of last month's logs gives what the live stream gave. All time is event time: the
detector's clock is the newest record timestamp it has seen (its watermark).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from detector.alerting import Alert, AlertBook
from detector.features.activity import observe_activity
from detector.features.conversation import observe_turn
from detector.features.population import ModelCatalog, SeenPrompts, observe_model
from detector.features.prompting import observe_prompt
from detector.features.prompts import analyse_prompt
from detector.features.shares import blend
from detector.features.tokens import observe_tokens
from detector.policy import DetectionPolicy
from detector.profile import AccountProfile
from detector.scoring import Population, assess, population_features

SWEEP_SECONDS = 300.0
"""Idle alerts are resolved when the watermark crosses each such boundary of event time."""


@dataclass
class DetectorStats:
    """Counters the adapters export as metrics."""

    requests: int = 0
    accounts_tracked: int = 0
    alerts_fired: int = 0
    alerts_resolved: int = 0


class Detector:
    """Per-account profiles, population models and open alerts of one worker (or one replay)."""

    def __init__(self, policy: DetectionPolicy | None = None, seed: int = 7):
        self.policy = policy or DetectionPolicy()
        self.seed = seed
        self.profiles: dict[str, AccountProfile] = {}
        self.population = Population(seed=seed)
        self.models = ModelCatalog(self.policy.new_model_window_hours)
        self.seen_prompts = SeenPrompts()
        self.alerts = AlertBook(self.policy)
        self.stats = DetectorStats()
        self.started: float | None = None
        self.watermark = float("-inf")
        self._next_sweep = float("-inf")

    def process(self, request) -> list[Alert]:
        """Fold one validated request into its account's profile; return the alerts it causes."""
        timestamp = request.timestamp
        emitted: list[Alert] = []
        if self.started is None:
            self.started = timestamp
        if timestamp > self.watermark:
            self.watermark = timestamp
            if timestamp >= self._next_sweep:
                if self._next_sweep > float("-inf"):
                    emitted.extend(self._sweep())
                self._next_sweep = (timestamp // SWEEP_SECONDS + 1) * SWEEP_SECONDS
        self.stats.requests += 1
        profile = self._observe(request)
        alert = self._review(request.account_id, profile)
        if alert is not None:
            emitted.append(alert)
        return emitted

    def process_all(self, requests: Iterable) -> list[Alert]:
        """Process requests in order; the alerts of all of them."""
        alerts: list[Alert] = []
        for request in requests:
            alerts.extend(self.process(request))
        return alerts

    def _observe(self, request) -> AccountProfile:
        account_id = request.account_id
        profile = self.profiles.get(account_id)
        if profile is None:
            profile = self.profiles[account_id] = AccountProfile(first_seen=request.timestamp,
                                                                 last_seen=request.timestamp)
            self.stats.accounts_tracked = len(self.profiles)
        if request.account_created_at is not None:
            profile.created_at = request.account_created_at
        observe_activity(profile, request.timestamp)
        observe_model(profile, self.models.is_new(request.model, request.timestamp))
        rate_limited = request.status_code == 429
        profile.rate_limited_share = blend(profile.rate_limited_share, rate_limited, profile.requests)
        profile.requests += 1
        if request.status_code >= 400:
            return profile  # a refused request carries no answer to harvest
        observe_tokens(profile, request.output_tokens, request.max_tokens, request.finish_reason)
        if request.turn_index is not None:
            observe_turn(profile, request.turn_index)
        if request.prompt_text:
            traits = analyse_prompt(request.prompt_text)
            repeated = self.seen_prompts.seen_before(account_id, traits.content_fingerprint)
            observe_prompt(profile, traits, repeated)
        return profile

    def _review(self, account_id: str, profile: AccountProfile) -> Alert | None:
        now = self.watermark
        if now - profile.last_population_update >= 3600.0:
            profile.last_population_update = now
            self.population.update(profile, population_features(profile, now))
        if profile.requests < self.policy.min_requests:
            return None
        if now - self.started < self.policy.warmup_hours * 3600.0:
            return None
        assessment = assess(profile, now, self.policy, self.population)
        profile.risk = assessment.risk
        alert = self.alerts.review(account_id, assessment, profile.first_seen, profile.last_seen, profile.requests)
        if alert is not None:
            if alert.status == "firing":
                self.stats.alerts_fired += 1
            else:
                self.stats.alerts_resolved += 1
        return alert

    def _sweep(self) -> list[Alert]:
        resolved = self.alerts.expire_idle(self.watermark)
        self.stats.alerts_resolved += len(resolved)
        return resolved

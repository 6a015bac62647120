"""Alert lifecycle: open, update, resolve; stable dedup keys; CloudEvents 1.0 on the wire.

One open alert per account. It fires when risk reaches ``warning``, is re-sent under the same
``dedup_key`` when its severity rises or its risk climbs ``rescore_step`` points, and resolves
when risk falls under ``resolve_risk`` or the account stays silent ``idle_resolve_hours``.
Alert ids derive from the dedup key, a sequence number, the status and the event time, so a
replay of the same records yields byte-identical alerts, and a restarted worker (whose sequence
starts again) does not reuse an earlier event's id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from detector.detection.policy import DetectionPolicy
from detector.detection.scoring import SEVERITIES, Assessment, Evidence

ACCOUNT_ALERT_TYPE = "dev.distillation-detector.account.alert.v1"
CAMPAIGN_ALERT_TYPE = "dev.distillation-detector.campaign.alert.v1"
DEFAULT_SOURCE = "urn:distillation-detector"
DEFAULT_RUNBOOK = "https://github.com/distillation-detector/detector/blob/main/docs/runbook.md"
_ID_NAMESPACE = uuid.UUID("5b0e6f0a-3c1e-4c59-9d0e-6a3f0f1d2b7c")


def rfc3339(timestamp: float) -> str:
    """Epoch seconds as an RFC 3339 UTC string with millisecond precision.

    >>> rfc3339(0.25)
    '1970-01-01T00:00:00.250Z'
    """
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert event: an account (or campaign) firing, updated, or resolved."""

    subject: str
    dedup_key: str
    sequence: int
    status: str
    severity: str
    risk_score: float
    account_ids: tuple[str, ...]
    summary: str
    evidence: tuple[Evidence, ...]
    first_seen: float
    last_seen: float
    time: float
    event_count: int
    campaign_id: str | None = None
    type: str = ACCOUNT_ALERT_TYPE
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        """The Kafka message key: the account (or campaign) id."""
        return self.subject.encode()

    def to_cloudevent(self, source: str = DEFAULT_SOURCE, runbook_url: str = DEFAULT_RUNBOOK) -> dict:
        """The alert as a CloudEvents 1.0 structured-mode event (``schemas/alert.v1.schema.json``)."""
        anchor = "campaign-alert" if self.type == CAMPAIGN_ALERT_TYPE else "account-alert"
        return {
            "specversion": "1.0",
            "id": str(uuid.uuid5(_ID_NAMESPACE, f"{self.dedup_key}/{self.sequence}/{self.status}/{self.time!r}")),
            "source": source,
            "type": self.type,
            "subject": self.subject,
            "time": rfc3339(self.time),
            "datacontenttype": "application/json",
            "data": {
                "account_ids": list(self.account_ids),
                "severity": self.severity,
                "risk_score": self.risk_score,
                "status": self.status,
                "dedup_key": self.dedup_key,
                "summary": self.summary,
                "evidence": [
                    {
                        "indicator": e.indicator,
                        "observed": e.observed,
                        "baseline": e.baseline,
                        "contribution": e.contribution,
                        "detail": e.detail,
                    }
                    for e in self.evidence
                ],
                "first_seen": rfc3339(self.first_seen),
                "last_seen": rfc3339(self.last_seen),
                "event_count": self.event_count,
                "campaign_id": self.campaign_id,
                "runbook_url": f"{runbook_url}#{anchor}",
                **self.extra,
            },
        }


@dataclass(slots=True)
class OpenAlert:
    """Book-keeping for an account alert that is currently firing."""

    sequence: int
    severity: str
    risk_sent: float
    first_seen: float
    last_seen: float
    event_count: int
    campaign_id: str | None = None


def account_dedup_key(account_id: str) -> str:
    """Stable across updates, restarts and replays; ≤ 255 characters (account ids are ≤ 128).

    >>> account_dedup_key("acct_42")
    'distillation/account/acct_42'
    """
    return f"distillation/account/{account_id}"


def summarise(account_id: str, assessment: Assessment, requests: int) -> str:
    """One sentence an on-call engineer understands at a glance."""
    reasons = [_PHRASES.get(e.indicator, e.indicator).format(e.observed) for e in assessment.evidence[:3]]
    return (
        f"Account {account_id} looks like systematic model extraction "
        f"(risk {assessment.risk:.0f}, {assessment.severity}, {requests:,} requests): " + "; ".join(reasons) + "."
    )


_PHRASES = {
    "reasoning_elicitation_share": "{:.0%} of prompts ask for step-by-step reasoning",
    "harvest_shaped_share": "{:.0%} of conversation openings ask something new and get a long answer",
    "templated_novel_fill_share": "{:.0%} of prompts fill one template with new content",
    "capability_focus": "{:.0%} of prompts on one task kind",
    "output_at_max_tokens_share": "{:.0%} of outputs cut off at max_tokens",
    "output_tokens_mean": "outputs average {:,.0f} tokens",
    "output_input_ratio": "{:,.1f} output tokens per input token",
    "single_turn_share": "{:.0%} single-turn requests",
    "requests_per_hour": "{:,.0f} requests in the last hour",
    "active_hours_24h": "active {:.0f} of the last 24 hours",
    "inter_arrival_spread": "machine-regular timing (log-gap spread {:.2f})",
    "account_age_days": "account {:.1f} days old at first request",
    "new_model_share": "{:.0%} of traffic on a just-released model",
    "rate_limited_share": "{:.0%} of requests rate-limited",
    "population_outlier": "outlier among all accounts (score {:.2f})",
}


class AlertBook:
    """The open account alerts of one detector, and the decisions to fire, update and resolve."""

    def __init__(self, policy: DetectionPolicy):
        self.policy = policy
        self.open: dict[str, OpenAlert] = {}
        self._sequences: dict[str, int] = {}
        self.held: dict[str, float] = {}
        """account → event time its risk first reached ``warning_risk``, while the alert is held."""

    def snapshot(self) -> dict:
        """The open alerts and every account's last sequence number, as plain data.

        Sequences outlive their alerts: a restarted worker must not re-use an event id.
        """
        return {"open": dict(self.open), "sequences": dict(self._sequences), "held": dict(self.held)}

    def restore(self, state: dict) -> None:
        self.open = dict(state["open"])
        self._sequences = dict(state["sequences"])
        self.held = dict(state.get("held", {}))  # snapshots before held alerts had none

    def _next_sequence(self, account_id: str) -> int:
        sequence = self._sequences.get(account_id, 0) + 1
        self._sequences[account_id] = sequence
        return sequence

    def review(
        self,
        account_id: str,
        assessment: Assessment,
        first_seen: float,
        last_seen: float,
        requests: int,
        campaign_id: str | None = None,
        now: float | None = None,
    ) -> Alert | None:
        """Decide whether this assessment opens, updates or resolves the account's alert; ``now``: the
        event time of the decision, when later than the account's last request (a held alert released
        by the detector's sweep after its account went quiet)."""
        assessment = self._folded(assessment, campaign_id)
        if now is None or now < last_seen:
            now = last_seen
        current = self.open.get(account_id)
        risk = assessment.risk
        if current is None:
            if risk < self.policy.resolve_risk or (risk >= self.policy.warning_risk and assessment.severity == "info"):
                self.held.pop(account_id, None)  # quiet again, or a campaign member: paged through its campaign
                return None
            if risk < self.policy.warning_risk:
                return None  # a held alert waits out a dip, as an open one would stay open
            self.held.setdefault(account_id, now)
            if not self.hold_over(account_id, now, first_seen, last_seen, requests):
                return None
            del self.held[account_id]
            current = self.open[account_id] = OpenAlert(0, assessment.severity, risk, first_seen, last_seen, requests)
        elif risk < self.policy.resolve_risk:
            del self.open[account_id]
            return self._alert(account_id, "resolved", assessment, current, last_seen, requests)
        elif (
            SEVERITIES.index(assessment.severity) > SEVERITIES.index(current.severity)
            or risk >= current.risk_sent + self.policy.rescore_step
            or campaign_id != current.campaign_id
        ):
            pass
        else:
            current.last_seen, current.event_count = last_seen, requests
            return None
        current.severity, current.risk_sent, current.campaign_id = assessment.severity, risk, campaign_id
        current.last_seen, current.event_count = last_seen, requests
        return self._alert(account_id, "firing", assessment, current, now, requests)

    def hold_over(self, account_id: str, now: float, first_seen: float, last_seen: float, requests: int) -> bool:
        """Whether the account's held alert has been held long enough by event time ``now``.

        A campaign's accounts harvest at once, and a busy member can cross the threshold before
        the linking stage has joined it to its campaign: held a little, it joins first and is
        paged through the campaign's one alert instead of an alert of its own. The hold starts when
        risk first reaches ``warning_risk`` and ends early only if risk falls under ``resolve_risk``:
        a harvester's risk wavers around the threshold from one review to the next. An account that
        sends fewer than ``quiet_account_rate`` requests an hour (since it was first seen) is held
        ``quiet_account_hold_hours``: a few hours of it harvest little, and a campaign of thousands of
        such accounts joins them over hours, as their harvest-shaped requests come in.
        """
        since = self.held.get(account_id)
        return since is not None and now - since >= self.hold_seconds(first_seen, last_seen, requests)

    def hold_seconds(self, first_seen: float, last_seen: float, requests: int) -> float:
        """How long a new alert of an account with this activity is held (see :meth:`hold_over`)."""
        hold = self.policy.account_alert_hold_minutes * 60.0
        if requests / max(last_seen - first_seen, 900.0) * 3600.0 < self.policy.quiet_account_rate:
            hold = max(hold, self.policy.quiet_account_hold_hours * 3600.0)
        return hold

    def _folded(self, assessment: Assessment, campaign_id: str | None) -> Assessment:
        """A campaign member's own alert drops to ``info``: its campaign pages, once for all of them."""
        if campaign_id is None or assessment.severity == "info":
            return assessment
        return assessment.with_severity("info")

    def expire_idle(self, now: float) -> list[Alert]:
        """Resolve the alerts of accounts silent for ``idle_resolve_hours`` of event time."""
        cutoff = now - self.policy.idle_resolve_hours * 3600.0
        self.held = {account_id: since for account_id, since in self.held.items() if since > cutoff}
        idle = [account_id for account_id, alert in self.open.items() if alert.last_seen <= cutoff]
        resolved = []
        for account_id in idle:
            current = self.open.pop(account_id)
            quiet = Assessment(0.0, "info")
            resolved.append(
                self._alert(
                    account_id,
                    "resolved",
                    quiet,
                    current,
                    now,
                    current.event_count,
                    reason=f"silent for {self.policy.idle_resolve_hours:g} h",
                )
            )
        return resolved

    def _alert(
        self,
        account_id: str,
        status: str,
        assessment: Assessment,
        current: OpenAlert,
        time: float,
        requests: int,
        reason: str | None = None,
    ) -> Alert:
        if status == "resolved":
            why = reason or f"risk fell to {assessment.risk:.0f}"
            summary = f"Account {account_id} no longer looks like extraction ({why}); alert resolved."
        else:
            summary = summarise(account_id, assessment, requests)
            if current.campaign_id:
                summary += f" Member of campaign {current.campaign_id}, which is paged as one alert."
        return Alert(
            subject=account_id,
            dedup_key=account_dedup_key(account_id),
            sequence=self._next_sequence(account_id),
            status=status,
            severity=assessment.severity,
            risk_score=assessment.risk,
            account_ids=(account_id,),
            summary=summary,
            evidence=tuple(assessment.evidence[:8]),
            first_seen=current.first_seen,
            last_seen=current.last_seen,
            time=time,
            event_count=requests,
            campaign_id=current.campaign_id,
        )


class UpdatePacer:
    """At most one ``firing`` update per dedup key per ``interval`` seconds of wall time; the newest
    waits for its turn and none is lost. ``resolved`` goes at once and drops a waiting update.

    Campaign alerts are paced in event time (``min_resend_minutes``), which runs faster than the
    wall clock when a worker catches up on lag or its link partitions are far apart in event time:
    ``make demo`` showed on-call 8 updates of one campaign within seconds. Pure: the caller
    passes the time.
    """

    def __init__(self, interval: float, on_superseded: Callable[[], object] = lambda: None):
        """``on_superseded``: called for each update replaced by a newer one before its turn came."""
        self.interval = interval
        self._sent_at: dict[str, float] = {}
        self._waiting: dict[str, Alert] = {}
        self._on_superseded = on_superseded

    def offer(self, alert: Alert, now: float) -> Alert | None:
        """The alert, if it may go now; otherwise it waits for :meth:`due`."""
        key = alert.dedup_key
        if self._waiting.pop(key, None) is not None:  # whatever happens to this one, it is newer
            self._on_superseded()
        if alert.status == "resolved":
            self._sent_at.pop(key, None)
            return alert
        if now - self._sent_at.get(key, float("-inf")) >= self.interval:
            self._sent_at[key] = now
            return alert
        self._waiting[key] = alert
        return None

    def due(self, now: float) -> list[Alert]:
        """Waiting updates whose turn has come (the newest of each key), oldest key first."""
        ready = [key for key in self._waiting if now - self._sent_at[key] >= self.interval]
        for key in ready:
            self._sent_at[key] = now
        self._sent_at = {
            key: sent for key, sent in self._sent_at.items() if now - sent < self.interval or key in self._waiting
        }
        return [self._waiting.pop(key) for key in ready]

    def drain(self) -> list[Alert]:
        """Every waiting update (at shutdown)."""
        waiting = list(self._waiting.values())
        self._waiting.clear()
        return waiting

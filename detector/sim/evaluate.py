"""``detector eval``: how well the detector does on labeled traffic.

A fresh :class:`~detector.detection.core.Detector` runs over the records exactly as ``detector replay``
would, and every alert is checked against the labels ``detector simulate`` writes. The figures
are the ones a team decides on: how many attacker accounts and campaigns are caught, how many
benign accounts page someone, how fast (event-time hours after the campaign began, and requests
the account got answered first), how many alerts on-call sees per campaign, and how completely
its campaign alerts list the members that have shown up, 6 hours in and at the end.

An account is *flagged* by the first firing alert of severity warning or critical that names it,
whether an account alert or a campaign alert. Accounts that are labeled but never send a record
could not have been caught, so they are left out of every rate (and counted); records of
unlabeled accounts are processed like any other, and counted too.

>>> truth = {"accounts": {"acct_1": {"family": "ordinary_chat", "label": "benign", "campaign_id": None}}}
>>> report = evaluate([], truth)
>>> report.figures["accounts"]["labeled_unseen"], report.figures["benign"]["false_positive_rate"]
(1, None)
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from detector.detection.alerting import ACCOUNT_ALERT_TYPE, CAMPAIGN_ALERT_TYPE, Alert
from detector.detection.core import Detector
from detector.detection.policy import DetectionPolicy
from detector.detection.records import Rejection, Request, decode_request
from detector.detection.stages import ChainedStages
from detector.errors import DetectorError
from detector.replay import open_input

PAGING_SEVERITIES = frozenset({"warning", "critical"})
"""Severities that reach a person; an ``info`` alert flags nobody."""
FLAGGED_IDS_LISTED = 50
"""Benign accounts named in the report: enough to investigate, short enough to read."""
COVERAGE_HOURS = 6.0
"""Hours after a campaign's start by which its alert should list nearly every member that has shown up."""
SCORE_THRESHOLDS = tuple(range(101))
"""Risk thresholds of the recall-against-false-positive sweep."""
PLOTS = ("score_distribution.png", "time_to_detect_cdf.png", "recall_vs_false_positive_rate.png")


@dataclass(slots=True)
class AccountOutcome:
    """What happened to one labeled account during the run."""

    family: str
    attack: bool
    campaign_id: str | None
    requests: int = 0
    first_seen: float | None = None
    flagged_at: float | None = None
    """Event time of the first paging alert that named the account."""
    requests_at_flag: int | None = None
    """The account's requests processed up to and including the one that got it flagged."""
    flagged_by: str | None = None
    """``account`` or ``campaign``: which kind of alert flagged it first."""
    max_risk: float = 0.0
    dedup_keys: set[str] = field(default_factory=set)
    """Distinct paging alerts (by dedup key) that named the account."""
    campaign_listings: dict[str, float] = field(default_factory=dict)
    """Campaign alert (by dedup key) → event time it first listed the account as a member."""

    @property
    def seen(self) -> bool:
        return self.requests > 0


@dataclass
class EvaluationReport:
    """The figures of one evaluation (plain JSON-able data) and the per-account outcomes behind the plots."""

    figures: dict
    outcomes: dict[str, AccountOutcome] = field(repr=False)
    campaigns: dict[str, dict] = field(repr=False)
    warning_risk: float = 55.0
    critical_risk: float = 75.0

    def text(self) -> str:
        """A compact table for the terminal: one row per family, then the headline figures."""
        f = self.figures
        rec, acc = f["records"], f["accounts"]
        lines = [
            f"eval: {rec['lines']:,} records ({rec['rejected']:,} rejected) in {rec['seconds']:.1f} s "
            f"({rec['records_per_second']:,.0f} records/s); {acc['seen']:,} labeled accounts seen"
            f" ({acc['labeled_unseen']:,} labeled but absent from the records, left out;"
            f" {acc['unlabeled_seen']:,} unlabeled in the records)",
            "",
            f"{'family':<20} {'label':<6} {'accounts':>8} {'flagged':>8} {'rate':>7} {'TTD p50 h':>9} {'req p50':>8}",
        ]
        for label, group in (("attack", f["attack"]), ("benign", f["benign"])):
            for family, row in group["by_family"].items():
                ttd = row.get("time_to_detect_hours", {}).get("median")
                exchanges = row.get("requests_at_detection", {}).get("median")
                lines.append(
                    f"{family:<20} {label:<6} {row['accounts']:>8,} {row['flagged']:>8,} "
                    f"{_percent(row['rate'], 2):>7} {_number(ttd, '.2f'):>9} {_number(exchanges, ',.0f'):>8}"
                )
        attack, benign, camps, ttd = f["attack"], f["benign"], f["campaigns"], f["time_to_detect_hours"]
        per_family: dict[str, list[str]] = {}
        for campaign in camps["by_campaign"].values():
            if campaign["accounts"]:
                per_family.setdefault(campaign["family"], []).append(f"{campaign['alerts']:,}")
        lines += [
            "",
            f"attacker-account recall   {_percent(attack['recall'])} ({attack['flagged']:,} / {attack['accounts']:,}; "
            f"first by an account alert {attack['flagged_by']['account']:,}, "
            f"by a campaign alert {attack['flagged_by']['campaign']:,})",
            f"campaign recall           {_percent(camps['recall'])} ({camps['detected']:,} / {camps['count']:,}"
            + (f"; {camps['unseen']} without records, left out)" if camps["unseen"] else ")"),
            f"benign false-positive rate {_percent(benign['false_positive_rate'], 2)} "
            f"({benign['flagged']:,} / {benign['accounts']:,}; first by an account alert "
            f"{benign['flagged_by']['account']:,}, by a campaign alert {benign['flagged_by']['campaign']:,})",
            f"time to detect, accounts  median {_number(ttd['accounts']['median'], '.2f')} h, "
            f"p90 {_number(ttd['accounts']['p90'], '.2f')} h",
            f"time to detect, campaigns median {_number(ttd['campaigns']['median'], '.2f')} h, "
            f"p90 {_number(ttd['campaigns']['p90'], '.2f')} h",
            f"requests per account at detection: median {_number(f['requests_at_detection']['median'], ',.0f')}, "
            f"p90 {_number(f['requests_at_detection']['p90'], ',.0f')}",
            "alerts per campaign       "
            + "; ".join(f"{family} {', '.join(counts)}" for family, counts in per_family.items()),
            f"campaign alert coverage   members listed by campaign alerts / members active, "
            f"{COVERAGE_HOURS:g} h after the start; at the end",
            *(
                f"  {c['family'] + ':':<23} {_listed(c['coverage_6h'])}; {_listed(c['coverage_final'])}"
                for c in camps["by_campaign"].values()
                if c["accounts"] > 1
            ),  # one account: account alerts
            f"alert events              {f['alerts']['events']:,} ({f['alerts']['firing']:,} firing, "
            f"{f['alerts']['resolved']:,} resolved)",
        ]
        if benign["flagged_accounts"]:
            shown = benign["flagged_accounts"][:5]
            more = benign["flagged"] - len(shown)
            lines.append(
                "flagged benign accounts   "
                + ", ".join(f"{a['account_id']} ({a['family']})" for a in shown)
                + (f" and {more:,} more" if more > 0 else "")
            )
        return "\n".join(lines)

    def write(self, report_dir: str | Path) -> Path:
        """``report.json`` and the PNG plots into ``report_dir`` (created); the path of report.json."""
        folder = Path(report_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "report.json"
        path.write_bytes(orjson.dumps(self.figures, option=orjson.OPT_INDENT_2))
        _plot(self, folder)
        return path


def evaluate(
    requests: Iterable[Request | Rejection], labels: dict, policy: DetectionPolicy | None = None, detector=None
) -> EvaluationReport:
    """Run a detector over ``requests`` in order and score its alerts against ``labels``.

    ``labels`` is what :func:`detector.sim.traffic.labels` returns. Rejections among ``requests``
    are counted, not processed. ``detector`` defaults to the three stages chained over a fresh
    ``Detector(policy)``; any object with ``process(request) -> list[Alert]`` will do (tests pass
    a scripted fake). When it keeps ``profiles`` with a ``risk`` (the real one does), an account's
    score is the highest risk it was ever assessed at, not only when it alerted, so the threshold
    sweep reaches below the alerting threshold; otherwise it is the highest risk of its account alerts.
    """
    policy = policy or DetectionPolicy()
    detector = detector if detector is not None else ChainedStages(Detector(policy))
    outcomes, campaigns = _outcomes(labels)
    profiles = getattr(detector, "profiles", None)
    rejected: Counter = Counter()
    alert_events: Counter = Counter()
    unlabeled: set[str] = set()
    accepted = 0
    started = time.perf_counter()
    for request in requests:
        if isinstance(request, Rejection):
            rejected[request.reason] += 1
            continue
        accepted += 1
        account_id = request.account_id
        outcome = outcomes.get(account_id)
        if outcome is None:
            unlabeled.add(account_id)
        else:
            outcome.requests += 1
            if outcome.first_seen is None:
                outcome.first_seen = request.timestamp
        _score_alerts(detector.process(request), outcomes, alert_events)
        if profiles is not None and outcome is not None:
            profile = profiles.get(account_id)
            if profile is not None and profile.risk > outcome.max_risk:
                outcome.max_risk = profile.risk
    drain = getattr(detector, "drain", None)  # records still waiting to be put in event-time order
    if drain is not None:
        _score_alerts(drain(), outcomes, alert_events)
    rejected.update(getattr(detector, "set_aside", {}))
    seconds = time.perf_counter() - started
    figures = _figures(outcomes, campaigns, rejected, alert_events, unlabeled, seconds, accepted)
    return EvaluationReport(figures, outcomes, campaigns, policy.warning_risk, policy.critical_risk)


def _score_alerts(alerts: Iterable[Alert], outcomes: dict[str, AccountOutcome], alert_events: Counter) -> None:
    """Note what each alert says of the accounts it names: paged when, by which key, at what risk."""
    for alert in alerts:
        alert_events[alert.status] += 1
        paging = alert.status == "firing" and alert.severity in PAGING_SEVERITIES
        for named in alert.account_ids:
            named_outcome = outcomes.get(named)
            if named_outcome is None:
                continue
            if alert.type == ACCOUNT_ALERT_TYPE and alert.risk_score > named_outcome.max_risk:
                named_outcome.max_risk = alert.risk_score
            if paging:
                named_outcome.dedup_keys.add(alert.dedup_key)
                if alert.type == CAMPAIGN_ALERT_TYPE:
                    named_outcome.campaign_listings.setdefault(alert.dedup_key, alert.time)
                if named_outcome.flagged_at is None:
                    named_outcome.flagged_at = alert.time
                    named_outcome.requests_at_flag = named_outcome.requests
                    named_outcome.flagged_by = "account" if alert.type == ACCOUNT_ALERT_TYPE else "campaign"


def evaluate_files(
    records_path: str, labels_path: str, report_dir: str | None, policy: DetectionPolicy | None = None
) -> EvaluationReport:
    """:func:`evaluate` over a request.v1 JSON-lines file (``.gz`` read as gzip) and a labels JSON file;
    writes ``report.json`` and the plots into ``report_dir`` when one is given."""
    try:
        labels = orjson.loads(Path(labels_path).read_bytes())
    except OSError as error:
        raise DetectorError(f"cannot read the labels file {labels_path!r}: {error.strerror}") from error
    except orjson.JSONDecodeError as error:
        raise DetectorError(f"the labels file {labels_path!r} is not JSON ({error})") from error
    with ExitStack() as stack:
        try:
            source = open_input(records_path, stack)
        except OSError as error:
            raise DetectorError(f"cannot read the records file {records_path!r}: {error.strerror}") from error
        report = evaluate((decode_request(line.rstrip(b"\r\n")) for line in source if line.strip()), labels, policy)
    report.figures["records"]["path"] = records_path
    if report_dir:
        report.write(report_dir)
    return report


# -- accounting ------------------------------------------------------------------------------


def _outcomes(labels: dict) -> tuple[dict[str, AccountOutcome], dict[str, dict]]:
    try:
        accounts, campaigns = labels["accounts"], labels.get("campaigns", {})
        outcomes = {
            account_id: AccountOutcome(
                family=truth["family"], attack=truth["label"] == "attack", campaign_id=truth.get("campaign_id")
            )
            for account_id, truth in accounts.items()
        }
    except (KeyError, TypeError, AttributeError) as error:
        raise DetectorError(
            "expected labels as `detector simulate` writes them "
            "({'accounts': {id: {'family', 'label', 'campaign_id'}}, 'campaigns': {...}}); "
            f"missing or malformed: {error}"
        ) from error
    return outcomes, campaigns


def _figures(
    outcomes: dict[str, AccountOutcome],
    campaigns: dict[str, dict],
    rejected: Counter,
    alert_events: Counter,
    unlabeled: set[str],
    seconds: float,
    accepted: int,
) -> dict:
    seen = {a: o for a, o in outcomes.items() if o.seen}
    attackers = {a: o for a, o in seen.items() if o.attack}
    benign = {a: o for a, o in seen.items() if not o.attack}
    lines = accepted + sum(rejected.values())

    account_ttd = {
        a: _hours(o.flagged_at - _origin(o, campaigns)) for a, o in attackers.items() if o.flagged_at is not None
    }
    requests_at_flag = [o.requests_at_flag for o in attackers.values() if o.requests_at_flag is not None]

    by_campaign = {}
    for campaign_id, truth in campaigns.items():
        members = [o for o in attackers.values() if o.campaign_id == campaign_id]
        flagged = [o.flagged_at for o in members if o.flagged_at is not None]
        by_campaign[campaign_id] = {
            "family": truth.get("family"),
            "accounts": len(members),
            "accounts_labeled": truth.get("accounts"),
            "flagged": len(flagged),
            "detected": bool(flagged),
            "time_to_detect_hours": _round(_hours(min(flagged) - truth["start"])) if flagged else None,
            "alerts": len(set().union(*(o.dedup_keys for o in members))),
            "coverage_6h": _coverage(members, truth["start"] + COVERAGE_HOURS * 3600.0),
            "flagged_6h": _flagged_within(members, truth["start"] + COVERAGE_HOURS * 3600.0),
            "coverage_final": _coverage(members, math.inf),
        }
    seen_campaigns = [c for c in by_campaign.values() if c["accounts"]]
    campaign_ttd = [c["time_to_detect_hours"] for c in seen_campaigns if c["detected"]]

    flagged_benign = sorted((o.flagged_at, a) for a, o in benign.items() if o.flagged_at is not None)
    return {
        "records": {
            "lines": lines,
            "accepted": accepted,
            "rejected": sum(rejected.values()),
            "rejected_by_reason": dict(rejected.most_common()),
            "seconds": round(seconds, 3),
            "records_per_second": round(lines / seconds, 1) if seconds > 0 else None,
        },
        "accounts": {
            "labeled": len(outcomes),
            "seen": len(seen),
            "labeled_unseen": len(outcomes) - len(seen),
            "labeled_unseen_by_family": dict(Counter(o.family for o in outcomes.values() if not o.seen)),
            "unlabeled_seen": len(unlabeled),
        },
        "attack": {
            "accounts": len(attackers),
            "flagged": len(account_ttd),
            "recall": _rate(len(account_ttd), len(attackers)),
            "flagged_by": _first_flagged_by(attackers),
            "by_family": _by_family(attackers, campaigns),
        },
        "campaigns": {
            "count": len(seen_campaigns),
            "detected": len(campaign_ttd),
            "recall": _rate(len(campaign_ttd), len(seen_campaigns)),
            "unseen": len(by_campaign) - len(seen_campaigns),
            "alerts_per_campaign": _summary([c["alerts"] for c in seen_campaigns]),
            "by_campaign": by_campaign,
        },
        "benign": {
            "accounts": len(benign),
            "flagged": len(flagged_benign),
            "false_positive_rate": _rate(len(flagged_benign), len(benign)),
            "flagged_by": _first_flagged_by(benign),
            "by_family": _by_family(benign, campaigns),
            "flagged_accounts": [
                {
                    "account_id": a,
                    "family": benign[a].family,
                    "flagged_at": t,
                    "flagged_by": benign[a].flagged_by,
                    "requests_at_flag": benign[a].requests_at_flag,
                    "max_risk": _round(benign[a].max_risk),
                }
                for t, a in flagged_benign[:FLAGGED_IDS_LISTED]
            ],
        },
        "time_to_detect_hours": {
            "accounts": _summary(list(account_ttd.values())),
            "campaigns": _summary(campaign_ttd),
        },
        "requests_at_detection": _summary(requests_at_flag),
        "alerts": {
            "events": sum(alert_events.values()),
            "firing": alert_events["firing"],
            "resolved": alert_events["resolved"],
        },
        "threshold_sweep": _sweep(attackers, benign),
    }


def _by_family(accounts: dict[str, AccountOutcome], campaigns: dict[str, dict]) -> dict:
    families: dict[str, list[AccountOutcome]] = {}
    for outcome in accounts.values():
        families.setdefault(outcome.family, []).append(outcome)
    rows = {}
    for family in sorted(families, key=lambda name: (-len(families[name]), name)):
        members = families[family]
        flagged = [o for o in members if o.flagged_at is not None]
        row = {"accounts": len(members), "flagged": len(flagged), "rate": _rate(len(flagged), len(members))}
        if members[0].attack:
            row["time_to_detect_hours"] = _summary([_hours(o.flagged_at - _origin(o, campaigns)) for o in flagged])
            row["requests_at_detection"] = _summary([o.requests_at_flag for o in flagged])
        rows[family] = row
    return rows


def _coverage(members: list[AccountOutcome], by: float) -> dict:
    """How completely campaign alerts list a campaign by event time ``by``: of the members that had
    sent a request by then, how many some campaign alert fired by then listed, and in how many alerts."""
    active = [o for o in members if o.first_seen is not None and o.first_seen <= by]
    listings = [{key for key, t in o.campaign_listings.items() if t <= by} for o in active]
    listed = sum(bool(keys) for keys in listings)
    return {
        "active": len(active),
        "listed": listed,
        "rate": _rate(listed, len(active)),
        "campaign_alerts": len(set().union(*listings)),
    }


def _flagged_within(members: list[AccountOutcome], by: float) -> dict:
    """Of the members that had sent a request by event time ``by``, how many were flagged by then (by any
    alert): the coverage of campaigns too small for a campaign alert to list them."""
    active = [o for o in members if o.first_seen is not None and o.first_seen <= by]
    flagged = sum(1 for o in active if o.flagged_at is not None and o.flagged_at <= by)
    return {"active": len(active), "flagged": flagged, "rate": _rate(flagged, len(active))}


def _first_flagged_by(accounts: dict[str, AccountOutcome]) -> dict:
    """How many were flagged first by an account alert, how many by a campaign alert."""
    kinds = Counter(o.flagged_by for o in accounts.values() if o.flagged_by)
    return {"account": kinds["account"], "campaign": kinds["campaign"]}


def _origin(outcome: AccountOutcome, campaigns: dict[str, dict]) -> float:
    """When the clock of detection starts: the campaign's start, or the account's first
    request for an attacker labeled without a campaign."""
    campaign = campaigns.get(outcome.campaign_id) if outcome.campaign_id else None
    return campaign["start"] if campaign else outcome.first_seen


def _sweep(attackers: dict[str, AccountOutcome], benign: dict[str, AccountOutcome]) -> dict:
    """Share of attacker and of benign accounts whose highest risk reached each threshold."""
    attack_risks = [o.max_risk for o in attackers.values()]
    benign_risks = [o.max_risk for o in benign.values()]
    return {
        "thresholds": list(SCORE_THRESHOLDS),
        "recall": [_rate(sum(r >= t for r in attack_risks), len(attack_risks)) for t in SCORE_THRESHOLDS],
        "false_positive_rate": [_rate(sum(r >= t for r in benign_risks), len(benign_risks)) for t in SCORE_THRESHOLDS],
    }


def _summary(values: list[float]) -> dict:
    return {
        "count": len(values),
        "median": _round(_quantile(values, 0.5)),
        "p90": _round(_quantile(values, 0.9)),
        "max": _round(max(values)) if values else None,
    }


def _quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between order statistics (numpy's default).

    >>> _quantile([1, 2, 3, 4], 0.5), _quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 0.9)
    (2.5, 10.0)
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _hours(seconds: float) -> float:
    return seconds / 3600.0


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _percent(rate: float | None, digits: int = 1) -> str:
    return "-" if rate is None else f"{rate:.{digits}%}"


def _listed(coverage: dict) -> str:
    return (
        f"{_percent(coverage['rate'])} ({coverage['listed']:,} / {coverage['active']:,}, "
        f"{coverage['campaign_alerts']} alert{'s' if coverage['campaign_alerts'] != 1 else ''})"
    )


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# -- plots -----------------------------------------------------------------------------------


def _plot(report: EvaluationReport, folder: Path) -> None:
    """The three PNGs of a report. matplotlib is imported here only: evaluation itself needs no plotting."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    seen = [o for o in report.outcomes.values() if o.seen]
    thresholds = [(report.warning_risk, "warning"), (report.critical_risk, "critical")]

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    bins = list(range(0, 105, 5))
    for attack, name, colour in ((False, "benign", "tab:blue"), (True, "attack", "tab:red")):
        risks = [o.max_risk for o in seen if o.attack is attack]
        axes.hist(risks, bins=bins, alpha=0.6, label=f"{name} ({len(risks):,} accounts)", color=colour)
    for risk, name in thresholds:
        axes.axvline(risk, color="grey", linestyle="--", linewidth=1)
        axes.text(risk, 1, f" {name}", color="grey", va="bottom")
    axes.set_yscale("log")
    axes.set_xlabel("highest risk an account reached")
    axes.set_ylabel("accounts")
    axes.set_title("Score distribution, benign vs attack")
    axes.legend()
    _save(figure, folder / PLOTS[0])

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    families = report.figures["attack"]["by_family"]
    for family in families:
        members = [o for o in seen if o.attack and o.family == family]
        hours = sorted(_hours(o.flagged_at - _origin(o, report.campaigns)) for o in members if o.flagged_at is not None)
        if not hours:
            continue
        shares = [(i + 1) / len(members) for i in range(len(hours))]
        axes.step([0.0] + hours, [0.0] + shares, where="post", label=f"{family} ({len(members):,})")
    axes.set_xlabel("hours from campaign start to first paging alert")
    axes.set_ylabel("share of the family's accounts flagged")
    axes.set_ylim(0, 1.02)
    axes.set_title("Time to detect (curves end at the family's recall)")
    axes.legend(loc="lower right")
    _save(figure, folder / PLOTS[1])

    figure, axes = pyplot.subplots(figsize=(6, 5))
    sweep = report.figures["threshold_sweep"]
    points = [
        (f, r, t)
        for f, r, t in zip(sweep["false_positive_rate"], sweep["recall"], sweep["thresholds"], strict=True)
        if f is not None and r is not None
    ]
    if points:
        axes.plot([p[0] for p in points], [p[1] for p in points], marker=".", markersize=3)
        for risk, name in thresholds:
            f, r, _ = min(points, key=lambda p: abs(p[2] - risk))
            axes.plot([f], [r], "o", color="tab:red")
            axes.annotate(f"{name} ({risk:g})", (f, r), textcoords="offset points", xytext=(6, -12))
    operating = (report.figures["benign"]["false_positive_rate"], report.figures["attack"]["recall"])
    if None not in operating:
        axes.plot(*operating, "*", markersize=12, color="tab:green", label="paging alerts (account and campaign)")
        axes.legend(loc="lower right")
    axes.set_xscale("symlog", linthresh=1e-3)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("benign accounts with highest risk ≥ threshold (false-positive rate)")
    axes.set_ylabel("attack accounts with highest risk ≥ threshold (recall)")
    axes.set_title("Recall against false-positive rate, threshold swept 0-100")
    axes.grid(True, alpha=0.3)
    _save(figure, folder / PLOTS[2])


def _save(figure, path: Path) -> None:
    from matplotlib import pyplot

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)

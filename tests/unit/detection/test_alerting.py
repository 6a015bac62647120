"""Account alerts are held briefly before they page; campaign updates reach on-call at a human pace, and the
latest state always gets through."""

from __future__ import annotations

from detector.detection.alerting import CAMPAIGN_ALERT_TYPE, Alert, AlertBook, UpdatePacer
from detector.detection.policy import DetectionPolicy
from detector.detection.scoring import Assessment


def update(campaign: str, members: int, status: str = "firing") -> Alert:
    return Alert(
        subject=campaign,
        dedup_key=f"campaign:{campaign}",
        sequence=members,
        status=status,
        severity="critical",
        risk_score=90.0,
        account_ids=tuple(f"a{n}" for n in range(members)),
        summary=f"{members} accounts",
        evidence=(),
        first_seen=0.0,
        last_seen=0.0,
        time=0.0,
        event_count=members,
        type=CAMPAIGN_ALERT_TYPE,
    )


def counting_pacer() -> tuple[UpdatePacer, list[int]]:
    """A pacer with a 30 s interval, and the list its superseded updates are counted in."""
    superseded: list[int] = []
    return UpdatePacer(interval=30.0, on_superseded=lambda: superseded.append(1)), superseded


def test_a_burst_of_updates_sends_the_first_at_once_and_only_the_newest_after_the_interval():
    pacer, superseded = counting_pacer()
    sent = [pacer.offer(update("c1", members), now=float(n)) for n, members in enumerate(range(5, 13))]
    assert [alert.event_count for alert in sent if alert is not None] == [5]
    assert pacer.due(now=29.0) == []
    assert [alert.event_count for alert in pacer.due(now=30.5)] == [12]  # the 8th update, the others superseded
    assert len(superseded) == 6
    assert pacer.due(now=100.0) == []


def test_campaigns_are_paced_apart_and_a_quiet_one_goes_out_at_once():
    pacer, superseded = counting_pacer()
    assert pacer.offer(update("c1", 5), now=0.0) is not None
    assert pacer.offer(update("c2", 7), now=1.0) is not None  # another campaign is not held back
    assert pacer.offer(update("c1", 6), now=2.0) is None
    assert pacer.offer(update("c1", 9), now=45.0) is not None  # its turn had come: no wait
    assert pacer.due(now=45.0) == [] and pacer.drain() == []  # the waiting 6 is stale: never sent after the 9
    assert len(superseded) == 1


def test_a_resolution_goes_at_once_and_drops_the_update_it_makes_stale():
    pacer = UpdatePacer(interval=30.0)
    pacer.offer(update("c1", 5), now=0.0)
    assert pacer.offer(update("c1", 6), now=1.0) is None
    resolved = update("c1", 6, status="resolved")
    assert pacer.offer(resolved, now=2.0) is resolved
    assert pacer.due(now=60.0) == [] and pacer.drain() == []


def test_shutdown_drains_what_waits():
    pacer = UpdatePacer(interval=30.0)
    pacer.offer(update("c1", 5), now=0.0)
    pacer.offer(update("c1", 6), now=1.0)
    assert [alert.event_count for alert in pacer.drain()] == [6]


def test_a_held_account_alert_waits_out_dips_under_warning_and_fires_after_the_hold():
    """A harvester's risk wavers around the threshold: 58, 53, 61... Its alert is held 30 minutes of
    event time from the first crossing, dips above ``resolve_risk`` do not restart the hold, and a
    fall under ``resolve_risk`` does."""
    book = AlertBook(DetectionPolicy())  # warning 55, resolve 35, hold 30 min
    minute = 60.0

    def review(risk: float, at_minute: float) -> Alert | None:
        assessment = Assessment.frozen(risk, "warning" if risk >= 55.0 else "info", [])
        return book.review("acct", assessment, 0.0, at_minute * minute, 100)

    assert [review(risk, t) for risk, t in ((58, 0), (53, 10), (54, 20), (61, 25))] == [None] * 4
    fired = review(60, 31)
    assert fired is not None and fired.status == "firing" and fired.severity == "warning"

    book = AlertBook(DetectionPolicy())
    assert review(58, 0) is None and review(30, 10) is None  # quiet again: the hold starts over
    assert review(60, 31) is None
    assert review(60, 62) is not None


def test_a_quiet_accounts_alert_is_held_hours_and_a_busy_ones_half_an_hour():
    """At a few requests an hour an account harvests little in a few hours, and the campaign its
    accounts belong to has time to gather them: it is held ``quiet_account_hold_hours``."""
    policy = DetectionPolicy()
    hour = 3600.0

    def fires_after(requests_per_hour: float) -> float:
        book = AlertBook(policy)
        for minutes in range(0, 600, 5):
            now = 10 * hour + minutes * 60.0
            requests = int(requests_per_hour * now / hour)
            if book.review("acct", Assessment.frozen(70.0, "warning", []), 0.0, now, requests) is not None:
                return minutes / 60.0
        return float("inf")

    assert fires_after(100.0) == policy.account_alert_hold_minutes / 60.0
    assert fires_after(3.0) == policy.quiet_account_hold_hours

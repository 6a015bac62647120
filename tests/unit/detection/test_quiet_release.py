"""Held account alerts of accounts that go quiet: released at the sweep, the same way in replay and the worker.

The risk of each review is scripted (``assess`` replaced), so that these tests are about when an alert
goes out, not about what scores a burst: see ``test_core`` for that.
"""

from __future__ import annotations

import math

import pytest

from detector.detection import core
from detector.detection.core import Detector
from detector.detection.scoring import Assessment
from detector.stream.state import restore, snapshot_bytes
from tests.unit.detection.test_core import HOUR, T0, request

BURST_START = T0 + 3 * HOUR  # after the warm-up
EVERY = 4.0  # seconds between the burst's requests


def scripted(profile, now, policy, population, started) -> Assessment:
    """Risk 70 from an account's 12th request, 50 (a dip over ``resolve_risk``) from its 100th."""
    risk = 0.0 if profile.requests < 12 else 70.0 if profile.requests < 100 else 50.0
    severity = "warning" if risk >= policy.warning_risk else "info"
    return Assessment.frozen(risk, severity, [])


@pytest.fixture(autouse=True)
def scripted_risk(monkeypatch):
    monkeypatch.setattr(core, "assess", scripted)


def clock(until: float):
    """Someone whose requests move event time on, once a minute (risk stays 0: fewer than 12 requests
    of any one account would not do, so each request is another account's)."""
    return [request(f"clock-{n}", T0 + 60.0 * n, 0) for n in range(int((until - T0) / 60.0))]


def burst(account: str = "burst", count: int = 200):
    """200 requests in 13 minutes: held at the 12th (risk 70), dipping to 50 at the 100th, then silent."""
    return [request(account, BURST_START + EVERY * n, n) for n in range(count)]


def replayed(records, detector: Detector | None = None) -> list:
    detector = detector or Detector()
    alerts = []
    for record in sorted(records, key=lambda r: r.timestamp):
        alerts += detector.process(record).alerts
    if detector.undecided is not None:
        alerts += detector.decide(math.inf)
    return alerts


def test_a_burst_that_dips_and_stops_within_its_hold_is_paged_once_silent_for_as_long():
    alerts = replayed(clock(BURST_START + 2 * HOUR) + burst())
    [alert] = [a for a in alerts if a.subject == "burst"]
    last_request = BURST_START + 199 * EVERY
    assert alert.status == "firing" and alert.risk_score == 70.0 and alert.severity == "warning"
    hold = Detector().policy.account_alert_hold_minutes * 60.0
    assert last_request + hold <= alert.time <= last_request + hold + 300.0  # the first sweep after it
    assert alert.last_seen == last_request


def test_an_account_still_sending_after_its_hold_is_left_to_its_own_reviews():
    """An API product touches warning, then serves its users at risk 50 for hours: no page, while it
    sends or after it stops."""
    product = [request("product", BURST_START + 15.0 * n, n) for n in range(600)]  # at 50 from minute 25
    alerts = replayed(clock(BURST_START + 6 * HOUR) + product)
    assert not [a for a in alerts if a.subject == "product"]


def test_the_worker_releases_the_alert_replay_releases():
    """The worker's detector decides alerts when the campaign clock passes them; the release is one of
    those decisions, so it goes out with the same content at the same event time."""
    records = clock(BURST_START + 2 * HOUR) + burst()
    in_replay = [a.to_cloudevent() for a in replayed(records) if a.subject == "burst"]
    in_worker = [
        a.to_cloudevent() for a in replayed(records, Detector(wait_for_campaigns=True)) if a.subject == "burst"
    ]
    assert in_replay and in_worker == in_replay


def test_a_worker_restarted_during_the_hold_still_releases_the_alert():
    records = sorted(clock(BURST_START + 2 * HOUR) + burst(), key=lambda r: r.timestamp)
    cut = next(i for i, r in enumerate(records) if r.timestamp > BURST_START + 15 * 60)  # the burst is over, held
    before = Detector(wait_for_campaigns=True)
    for record in records[:cut]:
        before.process(record)
    before.decide(math.inf)
    assert "burst" in before.alerts.held
    after = restore(Detector(wait_for_campaigns=True), snapshot_bytes(before))
    alerts = replayed(records[cut:], after)
    assert [a.subject for a in alerts if a.subject == "burst"] == ["burst"]

"""Snapshots and eviction: baselines survive a restart, memory stays bounded."""

from __future__ import annotations

from detector.core import Detector
from detector.policy import DetectionPolicy
from detector.state import load, save
from tests.unit.test_core import HOUR, T0, background, extractor, request


def test_a_restored_detector_continues_exactly_where_the_saved_one_stopped(tmp_path):
    traffic = sorted(background(hours=6) + list(extractor("script", T0 + 2 * HOUR, 1200)), key=lambda r: r.timestamp)
    half = len(traffic) // 2
    uninterrupted = Detector()
    expected = [a.to_cloudevent() for a in uninterrupted.process_all(traffic)]

    first = Detector()
    before = [a.to_cloudevent() for a in first.process_all(traffic[:half])]
    save(first, tmp_path / "state.msgpack")
    restarted = Detector()
    assert load(restarted, tmp_path / "state.msgpack")
    after = [a.to_cloudevent() for a in restarted.process_all(traffic[half:])]
    assert before + after == expected
    assert restarted.profiles.keys() == uninterrupted.profiles.keys()


def test_loading_without_a_snapshot_starts_fresh(tmp_path):
    assert not load(Detector(), tmp_path / "absent.msgpack")


def test_the_least_recently_active_account_is_evicted_at_the_cap():
    detector = Detector(DetectionPolicy(max_accounts=3))
    for n, account in enumerate(["a", "b", "c", "a", "d"]):
        detector.process(request(account, T0 + n, n))
    assert list(detector.profiles) == ["c", "a", "d"]
    assert detector.stats.accounts_evicted == 1


def test_idle_accounts_are_evicted_after_their_ttl():
    detector = Detector(DetectionPolicy(account_ttl_hours=2.0))
    detector.process(request("quiet", T0, 0))
    for n in range(40):
        detector.process(request("busy", T0 + n * 600.0, n))
    assert "quiet" not in detector.profiles and "busy" in detector.profiles

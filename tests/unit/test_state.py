"""Snapshots and eviction: baselines survive a restart, memory stays bounded."""

from __future__ import annotations

import asyncio

import msgspec

from detector.core import Detector
from detector.handover import AccountHandover
from detector.profile import AccountProfile
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


def test_a_worker_that_takes_over_an_account_alerts_on_it_as_the_previous_owner_would():
    """Profiles published by one worker and adopted by another carry the baselines: no new warm-up."""
    traffic = sorted(background(hours=6) + list(extractor("script", T0 + 2 * HOUR, 1200)), key=lambda r: r.timestamp)
    half = len(traffic) // 2
    first = Detector()
    changed: dict[str, int] = {}
    for record in traffic[:half]:
        first.process(record)
        changed[record.account_id] = 3
    published = []

    async def send(topic, key, value, partition):
        published.append((topic, key, value, partition))

    handover = AccountHandover(first, "state", 2, send, reader=None, changed=changed)
    assert asyncio.run(handover.publish([3])) == len(first.profiles)
    assert not changed
    assert {partition for _, _, _, partition in published} == {1}  # input partition 3 of a 2-partition topic

    taking_over, fresh = Detector(), Detector()
    decode = msgspec.msgpack.Decoder(AccountProfile).decode
    assert all(taking_over.adopt(key.decode(), decode(value)) for _, key, value, _ in published)
    script = next(decode(value) for _, key, value, _ in published if key == b"script")
    assert not taking_over.adopt("script", script)  # no newer than the profile it holds

    def firing(detector):
        return {a.subject for a in detector.process_all(traffic[half:]) if a.status == "firing"}

    assert "script" in firing(taking_over)
    assert "script" not in firing(fresh)  # without the baselines: back in warm-up

"""Snapshots and eviction: baselines survive a restart, memory stays bounded."""

from __future__ import annotations

import asyncio
import pickle

import msgspec
import pytest

from detector.detection.campaigns import Membership
from detector.detection.core import Detector
from detector.detection.policy import DetectionPolicy
from detector.detection.profile import AccountProfile
from detector.stream import state
from detector.stream.handover import AccountHandover
from detector.stream.state import SnapshotError, load, save
from tests.unit.detection.test_core import HOUR, T0, background, extractor, request


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


def _split_run(traffic, tmp_path, monkeypatch, parts_of: int):
    half = len(traffic) // 2
    first = Detector()
    first.process_all(traffic[:half])
    monkeypatch.setattr(state, "PROFILES_PER_PART", parts_of)
    save(first, tmp_path / "state.msgpack")
    return first, half


def test_a_snapshot_written_in_parts_restores_every_account_in_least_recently_active_order(tmp_path, monkeypatch):
    """The worker encodes 20,000 profiles at a time; a snapshot of many parts reads back whole."""
    traffic = sorted(background(hours=6) + list(extractor("script", T0 + 2 * HOUR, 1200)), key=lambda r: r.timestamp)
    first, half = _split_run(traffic, tmp_path, monkeypatch, parts_of=7)
    assert len(first.profiles) > 3 * 7
    restarted = Detector()
    assert load(restarted, tmp_path / "state.msgpack")
    assert list(restarted.profiles) == list(first.profiles)
    assert all(restarted.profiles[a] == p for a, p in first.profiles.items())
    uninterrupted = Detector()
    uninterrupted.process_all(traffic[:half])
    assert [a.to_cloudevent() for a in restarted.process_all(traffic[half:])] == [
        a.to_cloudevent() for a in uninterrupted.process_all(traffic[half:])
    ]


def test_a_version_1_snapshot_still_loads_so_an_upgrade_keeps_its_baselines(tmp_path):
    detector = Detector()
    detector.process_all(sorted(background(hours=3), key=lambda r: r.timestamp))
    alerts, models = detector.alerts.snapshot(), detector.models.snapshot()
    old = msgspec.msgpack.encode(
        state.SnapshotV1(
            version=1,
            watermark=detector.watermark,
            started=detector.started,
            next_sweep=detector.sweeps.next_boundary,
            profiles=list(detector.profiles.items()),
            open_alerts=alerts["open"],
            alert_sequences=alerts["sequences"],
            campaign_of=detector.campaign_of,
            model_first_used=models["first_used"],
            models_started=models["started"],
            population=pickle.dumps(detector.population),
            requests=detector.stats.requests,
        )
    )
    (tmp_path / "state.msgpack").write_bytes(old)
    restarted = Detector()
    assert load(restarted, tmp_path / "state.msgpack")
    assert list(restarted.profiles.items()) == list(detector.profiles.items())
    assert restarted.watermark == detector.watermark


def test_a_snapshot_cut_short_is_refused_with_a_reason(tmp_path, monkeypatch):
    traffic = sorted(background(hours=3), key=lambda r: r.timestamp)
    _split_run(traffic, tmp_path, monkeypatch, parts_of=5)
    data = (tmp_path / "state.msgpack").read_bytes()
    for cut in (len(data) - 10, len(data) // 2):
        (tmp_path / "cut.msgpack").write_bytes(data[:cut])
        with pytest.raises(SnapshotError, match="cut short|profile parts|header"):
            load(Detector(), tmp_path / "cut.msgpack")


def test_loading_without_a_snapshot_starts_fresh(tmp_path):
    assert not load(Detector(), tmp_path / "absent.msgpack")


def test_at_the_cap_the_oldest_newcomer_is_evicted_before_established_accounts():
    """Accounts below ``min_requests`` (a flood of fresh ids) make room for each other: "a", established
    with two requests, stays though it is the least recently active."""
    detector = Detector(DetectionPolicy(max_accounts=3, min_requests=2))
    for n, account in enumerate(["a", "a", "b", "c", "d"]):
        detector.process(request(account, T0 + n, n))
    assert list(detector.profiles) == ["a", "c", "d"]
    assert detector.stats.accounts_evicted == 1


def test_at_the_cap_a_newcomer_in_a_campaign_is_kept():
    detector = Detector(DetectionPolicy(max_accounts=2))
    detector.apply_memberships([Membership("member", "cmp_1", T0)])
    for n, account in enumerate(["member", "b", "c"]):
        detector.process(request(account, T0 + n, n))
    assert list(detector.profiles) == ["member", "c"]


def test_at_the_cap_without_newcomers_the_least_recently_active_account_is_evicted():
    detector = Detector(DetectionPolicy(max_accounts=2, min_requests=1))
    for n, account in enumerate(["a", "b", "a", "c"]):
        detector.process(request(account, T0 + n, n))
    assert list(detector.profiles) == ["a", "c"]


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

    async def send(topic, partition, messages):
        published.extend((topic, key, value, partition) for key, value in messages)

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

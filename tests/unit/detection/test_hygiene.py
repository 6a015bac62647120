"""Event-time hygiene: no record's stamp moves the clock unless it passes; order restored within tolerance."""

from __future__ import annotations

import functools

import msgspec
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.detection.core import Detector
from detector.detection.hygiene import EventTimeGuard
from detector.detection.policy import DetectionPolicy
from detector.detection.records import Request, decode_request, request_to_json
from detector.detection.stages import ChainedStages, DetectStage
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate
from tests.unit.detection.test_core import HOUR, T0, request

Y2099 = 4_102_358_400.0  # 2099-12-31T00:00:00Z


def offered(guard: EventTimeGuard, records) -> tuple[list[str], list[tuple[str, str]]]:
    """Event ids ready for the detector, in order, and (reason, event id) of those set aside, all records offered."""
    ready, set_aside = [], []
    for record in records:
        _, now_ready, now_set_aside = guard.offer(record)
        ready += [r.event_id for r in now_ready]
        set_aside += [(s.reason, s.record.event_id) for s in now_set_aside]
    drained, drained_set_aside = guard.drain()
    return ready + [r.event_id for r in drained], set_aside + [(s.reason, s.record.event_id) for s in drained_set_aside]


def test_the_worker_sets_aside_a_record_stamped_ahead_of_its_wall_clock_and_its_clock_stays():
    detector = Detector()
    stage = DetectStage(detector, wall_clock=lambda: T0 + 60.0)
    stage.handle(request_to_json(request("a", T0, 0)), topic="t", partition=0, offset=1)
    detected = stage.handle(
        request_to_json(request("b", Y2099, 0, prompt_text="hush")), topic="t", partition=0, offset=2
    )
    [dead_letter] = detected.dead_letters
    value = orjson.loads(dead_letter.value)
    assert (value["reason"], value["field"], value["source"]["offset"]) == ("future_timestamp", "timestamp", 2)
    assert "2099-12-31T00:00:00.000Z" in value["detail"] and b"hush" not in dead_letter.value
    assert detector.watermark == T0 and not detected.requests


def test_a_record_a_little_ahead_of_the_wall_clock_is_admitted():
    guard = EventTimeGuard(DetectionPolicy(max_ahead_seconds=300.0), wall_clock=lambda: T0)
    assert offered(guard, [request("a", T0 + 299.0, 0)]) == (["a-0"], [])


def test_replay_sets_aside_a_lone_far_future_record_and_its_clock_stays():
    records = [request("a", T0, 0), request("b", Y2099, 0), request("a", T0 + 5, 1)]
    guard = EventTimeGuard(DetectionPolicy())
    assert offered(guard, records) == (["a-0", "a-1"], [("future_timestamp", "b-0")])
    assert guard.newest == T0 + 5


def test_replay_sets_aside_a_far_future_record_at_the_end_of_the_input():
    guard = EventTimeGuard(DetectionPolicy())
    assert offered(guard, [request("a", T0, 0), request("b", Y2099, 0)]) == (["a-0"], [("future_timestamp", "b-0")])


def test_a_feed_that_resumes_after_hours_of_silence_loses_no_record():
    """Eight accounts agreeing on the new time move replay's clock; the records held meanwhile go in, in order."""
    before = [request(f"acct-{i}", T0 + i, 0) for i in range(8)]
    after = [request(f"acct-{i % 8}", T0 + 9 * HOUR + 10 * i, 1 + i) for i in range(20)]
    guard = EventTimeGuard(DetectionPolicy(jump_quorum_accounts=8))
    ready, set_aside = offered(guard, before + after)
    assert ready == [r.event_id for r in before + after] and set_aside == []
    assert guard.newest == after[-1].timestamp


def test_a_run_of_future_records_from_too_few_accounts_is_set_aside_when_in_time_records_follow():
    records = [request("a", T0, 0), *(request(f"gw-{i % 3}", Y2099 + i, i) for i in range(6)), request("a", T0 + 1, 1)]
    ready, set_aside = offered(EventTimeGuard(DetectionPolicy(jump_quorum_accounts=8)), records)
    assert ready == ["a-0", "a-1"]
    assert [reason for reason, _ in set_aside] == ["future_timestamp"] * 6


def test_a_future_record_at_another_time_than_the_run_before_it_is_set_aside_too():
    """Two jumps that disagree (a gateway two hours ahead, then a year typo): the first is set aside at
    the second, the second when in-time records follow; none is lost without a dead letter."""
    records = [request("a", T0, 0), request("b", T0 + 2 * HOUR, 0), request("c", Y2099, 0), request("a", T0 + 1, 1)]
    ready, set_aside = offered(EventTimeGuard(DetectionPolicy(max_jump_seconds=HOUR)), records)
    assert ready == ["a-0", "a-1"]
    assert set_aside == [("future_timestamp", "b-0"), ("future_timestamp", "c-0")]


def test_a_flood_of_one_accounts_future_records_is_set_aside_record_for_record():
    policy = DetectionPolicy(jump_quorum_accounts=2)
    records = [request("a", T0, 0), *(request("gw", Y2099 + i, i) for i in range(40)), request("a", T0 + 1, 1)]
    ready, set_aside = offered(EventTimeGuard(policy), records)
    assert ready == ["a-0", "a-1"] and [event for _, event in set_aside] == [f"gw-{i}" for i in range(40)]


def test_a_record_stamped_too_long_before_the_newest_is_set_aside_as_late():
    records = [request("a", T0, 0), request("a", T0 + 3 * HOUR, 1), request("b", T0 + HOUR - 1, 0)]
    ready, set_aside = offered(
        EventTimeGuard(DetectionPolicy(max_late_seconds=2 * HOUR, max_jump_seconds=4 * HOUR)), records
    )
    assert ready == ["a-0", "a-1"] and set_aside == [("late_timestamp", "b-0")]


def test_a_repeated_event_of_an_account_is_set_aside_as_a_duplicate_and_another_accounts_is_not():
    records = [request("a", T0, 0), request("a", T0 + 1, 0), request("b", T0 + 2, 0, event_id="a-0")]
    ready, set_aside = offered(EventTimeGuard(DetectionPolicy()), records)
    assert ready == ["a-0", "a-0"] and set_aside == [("duplicate_event", "a-0")]


def test_duplicates_are_remembered_for_at_least_the_window():
    window = 10
    records = [request("a", T0 + i, i) for i in range(window)] + [request("a", T0 + 20, 0)]
    _, set_aside = offered(EventTimeGuard(DetectionPolicy(duplicate_window_records=window)), records)
    assert set_aside == [("duplicate_event", "a-0")]


def test_records_out_of_order_within_the_tolerance_reach_the_detector_in_timestamp_order():
    times = [0, 10, 5, 30, 20, 25, 100, 95]
    records = [request("a", T0 + t, i) for i, t in enumerate(times)]
    ready, _ = offered(EventTimeGuard(DetectionPolicy(reorder_seconds=15.0)), records)
    assert ready == [r.event_id for r in sorted(records, key=lambda r: r.timestamp)]


def test_without_a_tolerance_records_go_in_as_they_arrive():
    records = [request("a", T0 + t, i) for i, t in enumerate([0, 10, 5])]
    assert offered(EventTimeGuard(DetectionPolicy()), records)[0] == ["a-0", "a-1", "a-2"]


def test_an_idle_worker_releases_records_that_waited_the_tolerance_on_its_wall_clock():
    wall = [T0]
    guard = EventTimeGuard(DetectionPolicy(reorder_seconds=5.0), wall_clock=lambda: wall[0])
    assert guard.offer(request("a", T0, 0))[1] == []
    wall[0] += 4.0
    assert guard.release_due() == []
    wall[0] += 2.0
    assert [r.event_id for r in guard.release_due()] == ["a-0"]


# -- the property: a labeled simulation with skewed, late, duplicate and reordered records -------

POLICY = DetectionPolicy(reorder_seconds=60.0, max_late_seconds=2 * HOUR)


@functools.cache
def clean_stream() -> tuple[Request, ...]:
    return tuple(decode_request(orjson.dumps(record)) for record in generate(Scenario.demo(seed=3)))


def alerts_of(records) -> list[dict]:
    chained = ChainedStages(Detector(POLICY))
    alerts = [alert for record in records for alert in chained.process(record)]
    return [alert.to_cloudevent() for alert in alerts + chained.drain()]


@functools.cache
def clean_alerts() -> list[dict]:
    return alerts_of(clean_stream())


@st.composite
def hostile_streams(draw) -> tuple[list[Request], int]:
    """The clean stream with records delayed within the tolerance, then far-future, late and duplicate
    records mixed in; the number of records that must be set aside."""
    records = list(clean_stream())
    stamps = [record.timestamp for record in records]
    # delays: a record moves past later ones stamped after it, but within the tolerance
    for index in sorted(draw(st.lists(st.integers(0, len(records) - 2), max_size=40, unique=True)), reverse=True):
        reach = index
        while reach + 1 < len(records) and stamps[index] < stamps[reach + 1] <= stamps[index] + 60.0:
            reach += 1
        if reach > index:
            target = draw(st.integers(index + 1, reach))
            records.insert(target, records.pop(index))
            stamps.insert(target, stamps.pop(index))
    extra: list[tuple[int, Request]] = []
    start = stamps[0]
    for _ in range(draw(st.integers(0, 4))):  # stamped ahead: a broken gateway, a year typo, 2099
        at = draw(st.integers(1, len(records) - 1))
        ahead = draw(st.sampled_from([Y2099, stamps[at - 1] + 2 * HOUR, stamps[at - 1] + 365 * 86400.0]))
        extra.append((at, _copy(records[draw(st.integers(0, len(records) - 1))], ahead, f"future-{len(extra)}")))
    late_from = next(i for i, t in enumerate(stamps) if t > start + 3 * HOUR)
    for _ in range(draw(st.integers(0, 4))):  # stamped more than max_late before the stream
        at = draw(st.integers(late_from, len(records) - 1))
        extra.append(
            (at, _copy(records[draw(st.integers(0, at))], stamps[at - 1] - 2 * HOUR - 60, f"late-{len(extra)}"))
        )
    for _ in range(draw(st.integers(0, 30))):  # a producer's retries: the same event again, later
        original = draw(st.integers(0, len(records) - 2))
        extra.append((draw(st.integers(original + 1, len(records) - 1)), records[original]))
    for at, record in sorted(extra, key=lambda item: item[0], reverse=True):
        records.insert(at, record)
    return records, len(extra)


def _copy(record: Request, timestamp: float, event_id: str) -> Request:
    return msgspec.structs.replace(record, timestamp=timestamp, event_id=event_id)


@settings(max_examples=12, deadline=None)
@given(hostile_streams())
def test_skewed_late_duplicate_and_reordered_records_change_no_alert_of_a_labeled_simulation(hostile):
    """Whatever is mixed in, the alerts are the clean run's, event for event, and each extra record is set aside."""
    records, extra = hostile
    chained = ChainedStages(Detector(POLICY))
    alerts = [alert for record in records for alert in chained.process(record)]
    alerts += chained.drain()
    assert [alert.to_cloudevent() for alert in alerts] == clean_alerts()
    assert sum(chained.set_aside.values()) == extra


def test_the_clean_simulation_pages_an_account_and_a_campaign():
    """The property above compares something: the clean run alerts on both kinds."""
    assert {event["type"].split(".")[-3] for event in clean_alerts()} == {"account", "campaign"}

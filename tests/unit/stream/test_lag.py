"""Input lag: from the oldest record not yet processed, so an idle worker is not 'behind'."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from prometheus_client import CollectorRegistry

from detector.stream.lag import InputLag, InputProgress, PartitionLag
from detector.stream.metrics import DetectorMetrics


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    """What InputProgress reads of aiokafka's consumer: assignment, high watermarks, positions."""

    def __init__(self, highwater: dict[int, int], positions: dict[int, int] | None = None):
        self.highwaters = highwater
        self.positions = positions or {}

    def assignment(self):
        return {TP("in", p) for p in self.highwaters}

    def highwater(self, tp):
        return self.highwaters.get(tp.partition)

    async def position(self, tp):
        return self.positions[tp.partition]


def test_a_caught_up_partition_has_no_lag_however_old_its_last_record():
    """The watermark lag climbed while idle; this one stays 0."""
    lag = InputLag()
    assert lag.update(3, position=500, highwater=500, oldest_unprocessed=1_000.0, now=90_000.0) == PartitionLag(0, 0.0)


def test_a_partition_behind_is_as_late_as_its_oldest_waiting_record():
    lag = InputLag()
    assert lag.update(0, position=100, highwater=350, oldest_unprocessed=1_000.0, now=1_900.0) == PartitionLag(
        250, 900.0
    )
    assert lag.pending == 250


def test_records_waiting_unseen_count_from_when_the_partition_was_first_behind():
    """Without the oldest record's time, the lag is a lower bound that grows with the wait."""
    lag = InputLag()
    assert lag.update(0, position=10, highwater=20, oldest_unprocessed=None, now=100.0).seconds == 0.0
    assert lag.update(0, position=10, highwater=20, oldest_unprocessed=None, now=130.0).seconds == 30.0
    assert lag.update(0, position=20, highwater=20, oldest_unprocessed=None, now=140.0).seconds == 0.0
    assert lag.update(0, position=20, highwater=25, oldest_unprocessed=None, now=150.0).seconds == 0.0


def test_forgotten_partitions_no_longer_count_as_pending():
    lag = InputLag()
    lag.update(0, position=0, highwater=5, oldest_unprocessed=None, now=0.0)
    lag.update(1, position=0, highwater=7, oldest_unprocessed=None, now=0.0)
    lag.forget([0])
    assert lag.pending == 7 and set(lag.partitions) == {1}


def progress(now: list[float]) -> tuple[InputProgress, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = DetectorMetrics.create(registry)
    return InputProgress(metrics.input_lag_records, metrics.input_lag_seconds, clock=lambda: now[0]), registry


def gauges(registry: CollectorRegistry, name: str) -> dict[str, float]:
    return {
        sample.labels["partition"]: sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    }


def test_lag_gauges_follow_a_backlog_from_fetch_to_caught_up():
    now = [10_000.0]
    tracker, registry = progress(now)
    consumer = FakeConsumer({0: 1_000})
    tracker.watch(consumer)
    # records 0-999 stamped 4,000 s + their offset in ms; the loop has fetched the first 500
    tracker.took({0: 4_000.0}, {0: 0}, 0)
    assert asyncio.run(tracker.refresh()) is False  # nothing processed yet
    assert gauges(registry, "detector_input_lag_records") == {"0": 1_000.0}
    assert gauges(registry, "detector_input_lag_seconds") == {"0": 6_000.0}

    # those 500 processed, none waiting: the last one processed stands in for the next
    tracker.took({0: 4_000.499}, {0: 500}, 500)
    assert asyncio.run(tracker.refresh()) is True
    assert gauges(registry, "detector_input_lag_records") == {"0": 500.0}
    assert gauges(registry, "detector_input_lag_seconds")["0"] == 10_000.0 - 4_000.499

    tracker.took({0: 4_000.999}, {0: 1_000}, 500)
    now[0] = 50_000.0  # idle for hours
    asyncio.run(tracker.refresh())
    assert gauges(registry, "detector_input_lag_records") == {"0": 0.0}
    assert gauges(registry, "detector_input_lag_seconds") == {"0": 0.0}
    assert asyncio.run(tracker.refresh()) is False


def test_a_partition_with_nothing_fetched_uses_the_consumers_position_and_revoked_ones_disappear():
    now = [100.0]
    tracker, registry = progress(now)
    consumer = FakeConsumer({0: 40, 1: 9}, positions={0: 40, 1: 9})
    tracker.watch(consumer)
    asyncio.run(tracker.refresh())
    assert gauges(registry, "detector_input_lag_records") == {"0": 0.0, "1": 0.0}

    del consumer.highwaters[1]  # partition 1 went to another worker
    asyncio.run(tracker.refresh())
    assert gauges(registry, "detector_input_lag_records") == {"0": 0.0}
    assert gauges(registry, "detector_input_lag_seconds") == {"0": 0.0}


def test_a_partition_no_fetch_has_answered_for_has_no_gauge_yet():
    """Unknown is not zero: no series until the broker has told a high watermark."""
    tracker, registry = progress([0.0])
    tracker.watch(FakeConsumer({0: None}, positions={0: 0}))  # type: ignore[dict-item]
    asyncio.run(tracker.refresh())
    assert gauges(registry, "detector_input_lag_records") == {}

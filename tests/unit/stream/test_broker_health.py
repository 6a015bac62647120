"""The worker's view of its broker: topic check, broker up/down, rate-limited logs, the watchdog."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from aiokafka.errors import NodeNotReadyError
from prometheus_client import CollectorRegistry

from detector.stream.broker_health import (
    BrokerMonitor,
    RateLimitedLog,
    Watchdog,
    WorkerHealth,
    WorkerStopped,
    partition_mismatches,
)
from detector.stream.config import Settings
from detector.stream.lag import InputProgress
from detector.stream.metrics import DetectorMetrics

SETTINGS = Settings(app_id="app", partitions=8)


def test_topics_with_their_partition_counts_or_missing_are_fine():
    """A missing topic is Faust's to create with the right count."""
    expected = SETTINGS.partitioned_topics
    assert partition_mismatches(expected, dict.fromkeys(expected), 8) is None
    assert partition_mismatches(expected, dict(expected), 8) is None


def test_a_topic_with_another_count_is_named_with_what_to_do():
    found = {"app-account-state": 4, "app-account-summaries": 2, "app-campaign-news": 1}
    assert partition_mismatches(SETTINGS.partitioned_topics, found, 8) == (
        "internal topic 'app-account-summaries' has 2 partitions, the worker needs 1: recreate it; "
        "internal topic 'app-account-state' has 4 partitions, the worker needs 8: "
        "set DETECTOR_PARTITIONS=4 or recreate it"
    )


def test_the_watchdog_fires_only_after_the_timeout_of_waiting_records_and_no_progress():
    dog = Watchdog(stall_timeout_s=30)
    assert dog.check(0.0, progressed=False, pending=5, broker_up=True) is None
    assert dog.check(29.0, progressed=False, pending=5, broker_up=True) is None
    assert dog.check(30.0, progressed=False, pending=5, broker_up=True) == (
        "no input record processed for 30 s while 5 wait and the broker answers"
    )


@pytest.mark.parametrize(
    "interruption",
    [
        {"progressed": True, "pending": 5, "broker_up": True},
        {"progressed": False, "pending": 0, "broker_up": True},
        {"progressed": False, "pending": 5, "broker_up": False},
    ],
    ids=["progress", "caught up", "broker outage"],
)
def test_progress_an_empty_input_or_an_outage_restart_the_stall_clock(interruption):
    dog = Watchdog(stall_timeout_s=30)
    dog.check(0.0, progressed=False, pending=5, broker_up=True)
    dog.check(20.0, **interruption)
    assert dog.check(45.0, progressed=False, pending=5, broker_up=True) is None
    assert dog.check(75.0, progressed=False, pending=5, broker_up=True) is not None


def test_a_zero_stall_timeout_never_fires():
    dog = Watchdog(stall_timeout_s=0)
    assert all(dog.check(t, progressed=False, pending=9, broker_up=True) is None for t in (0.0, 1e6))


def logged_through(filter_: RateLimitedLog, emit) -> list[str]:
    """What a handler with the filter writes for the records ``emit`` logs (it gets a logger factory)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(filter_)
    loggers = []

    def logger(name: str) -> logging.Logger:
        log = logging.getLogger(f"{name}.test-rate-limit")
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        log.propagate = False
        loggers.append(log)
        return log

    try:
        emit(logger)
    finally:
        for log in loggers:
            log.removeHandler(handler)
    return stream.getvalue().splitlines()


def test_a_flood_of_one_kind_of_library_error_becomes_one_line_per_window_with_a_count():
    now = [0.0]
    limit = RateLimitedLog(window=10.0, clock=lambda: now[0])

    def outage(logger):
        library = logger("aiokafka.client")
        for second in range(25):
            now[0] = float(second)
            for node in range(10):  # ten a second, the node id varying
                library.error("Unable connect to node with id %s: %s", node, "refused")

    lines = logged_through(limit, outage)
    assert lines == [
        "Unable connect to node with id 0: refused",
        "Unable connect to node with id 0: refused [99 more like this in the last 10 s]",
        "Unable connect to node with id 0: refused [99 more like this in the last 10 s]",
    ]


def test_the_workers_own_lines_and_library_info_lines_are_not_limited():
    limit = RateLimitedLog(window=10.0, clock=lambda: 0.0)

    def emit(logger):
        for _ in range(3):
            logger("detector.stream.broker_health").warning("broker unreachable")
            logger("aiokafka.consumer").info("Joined group")

    assert len(logged_through(limit, emit)) == 6


class FakeClient:
    """The metadata client BrokerMonitor asks; ``answers`` is what the broker says next, or an error."""

    def __init__(self, answers: list):
        self.answers = answers

    async def bootstrap(self):
        if isinstance(self.answers[0], Exception):
            raise self.answers.pop(0)

    def get_random_node(self):
        return 1

    async def send(self, node, request):
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return FakeResponse(answer)

    async def close(self):
        pass


class FakeResponse:
    def __init__(self, counts: dict[str, int]):
        self.counts = counts

    def to_object(self):
        return {
            "topics": [
                {"topic": topic, "error_code": 0, "partitions": [{"partition": p} for p in range(count)]}
                for topic, count in self.counts.items()
            ]
        }


def monitor(answers: list, now: list[float]) -> tuple[BrokerMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = DetectorMetrics.create(registry)
    client = FakeClient(answers)
    return BrokerMonitor(SETTINGS, metrics.broker_up, client_factory=lambda: client, clock=lambda: now[0]), registry


def test_broker_up_goes_to_0_during_an_outage_and_back_to_1_with_a_line_every_few_seconds(caplog):
    now = [0.0]
    down = NodeNotReadyError("node 1 not ready")
    good = dict(SETTINGS.partitioned_topics)
    broker, registry = monitor([good] + [down] * 12 + [good], now)
    asyncio.run(broker.check())
    assert registry.get_sample_value("detector_broker_up") == 1.0
    with caplog.at_level(logging.WARNING, logger="detector.stream.broker_health"):
        for second in range(1, 13):
            now[0] = float(second)
            asyncio.run(broker.check())
            assert registry.get_sample_value("detector_broker_up") == 0.0
        now[0] = 13.0
        asyncio.run(broker.check())
    assert registry.get_sample_value("detector_broker_up") == 1.0
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        "broker unreachable for 0 s",
        "broker unreachable for 5 s",
        "broker unreachable for 10 s",
        "broker answers again after 12 s unreachable",
    ]


def test_a_broker_back_with_other_partition_counts_ends_the_worker_with_the_reason():
    now = [0.0]
    good = dict(SETTINGS.partitioned_topics)
    broker, _ = monitor([good, NodeNotReadyError("down"), {**good, "app-account-state": 4}], now)
    asyncio.run(broker.check())
    asyncio.run(broker.check())
    with pytest.raises(WorkerStopped, match="came back with other topics: internal topic 'app-account-state' has 4"):
        asyncio.run(broker.check())


class IdleConsumer:
    def __init__(self, highwater: int):
        self.highwater_offset = highwater

    def assignment(self):
        return {TP(0)}

    def highwater(self, tp):
        return self.highwater_offset

    async def position(self, tp):
        return 0


class TP:
    def __init__(self, partition: int):
        self.topic, self.partition = "in", partition

    def __hash__(self):
        return self.partition

    def __eq__(self, other):
        return self.partition == other.partition


def test_worker_health_ends_a_worker_whose_records_wait_unprocessed_while_the_broker_answers():
    now = [0.0]
    good = dict(SETTINGS.partitioned_topics)
    broker, registry = monitor([good] * 3, now)
    metrics = DetectorMetrics.create(CollectorRegistry())
    progress = InputProgress(metrics.input_lag_records, metrics.input_lag_seconds, clock=lambda: now[0])
    progress.watch(IdleConsumer(highwater=50))
    health = WorkerHealth(broker, progress, Watchdog(stall_timeout_s=60), clock=lambda: now[0])
    asyncio.run(health.check())
    now[0] = 30.0
    asyncio.run(health.check())
    now[0] = 61.0
    with pytest.raises(WorkerStopped, match="no input record processed for 61 s while 50 wait"):
        asyncio.run(health.check())

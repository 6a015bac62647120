"""The real worker when its broker is away: before it starts, in the middle of a stream, with the
wrong internal topics; and its input lag while it drains a backlog."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from detector.sim.broker import EmbeddedBroker, acreate_topics, free_loopback_port
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate
from tests.integration.harness import Topics, Worker, produce, wait_for_records

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def messages() -> list[tuple[bytes, bytes]]:
    records = itertools.islice(generate(Scenario.demo(seed=5)), 3000)
    return [(record["account_id"].encode(), orjson.dumps(record)) for record in records]


def wait_until(read, done, timeout: float, what: str, worker: Worker):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if done(value):
            return value
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.log_tail()}")
        time.sleep(0.2)
    raise AssertionError(f"{what}: still {read()!r} after {timeout:.0f} s:\n{worker.log_tail()}")


def log_lines(worker: Worker) -> list[str]:
    worker._log.flush()
    return worker.log_path.read_text(errors="replace").splitlines()


@contextlib.contextmanager
def worker_behind_an_interruptible_broker(tmp_path, name: str, first: list) -> Iterator[tuple[EmbeddedBroker, Worker]]:
    """A broker that can be cut off, and a worker on 4 partitions that has processed ``first``."""
    with EmbeddedBroker(interruptible=True, log_path=tmp_path / "tansu.log") as broker:
        topics = Topics(name, 4)
        asyncio.run(topics.create(broker.bootstrap))
        worker = Worker(broker.bootstrap, topics, f"{name}-app", tmp_path)
        try:
            asyncio.run(produce(broker.bootstrap, topics.input, first))
            asyncio.run(wait_for_records([worker], len(first)))
            assert worker.gauge("detector_broker_up") == 1.0
            yield broker, worker
        finally:
            worker.stop()


def cut_off(broker: EmbeddedBroker, worker: Worker) -> None:
    broker.interrupt()
    wait_until(lambda: worker.gauge("detector_broker_up"), lambda up: up == 0.0, 10, "broker_up", worker)


def test_a_broker_outage_is_a_metric_and_a_few_log_lines_and_every_record_is_processed_after_it(tmp_path, messages):
    """The broker drops every connection for 15 s mid-stream: detector_broker_up reads 0, the worker
    logs tens of lines (it logged ~3,900 before), stays up, and processes every record after."""
    with worker_behind_an_interruptible_broker(tmp_path, "outage", messages[:1000]) as (broker, worker):
        before = len(log_lines(worker))
        cut_off(broker, worker)
        time.sleep(15)
        during = log_lines(worker)[before:]
        assert worker.process.poll() is None, worker.log_tail()
        assert len(during) < 60, "\n".join(during)
        assert any("broker unreachable for" in line for line in during)

        broker.resume()
        asyncio.run(produce(broker.bootstrap, "outage.requests", messages[1000:]))
        asyncio.run(wait_for_records([worker], len(messages), timeout=90))
        assert worker.records_seen() == len(messages)
        wait_until(lambda: worker.gauge("detector_broker_up"), lambda up: up == 1.0, 10, "broker_up", worker)
        assert worker.stop() == 0, worker.log_tail()


def test_a_broker_back_with_an_internal_topic_of_another_partition_count_ends_the_worker_with_the_reason(
    tmp_path, messages
):
    """The topic is recreated with 2 partitions (as a broker that lost its data lets a client
    auto-create it) and the broker drops its clients: when it answers again the worker exits
    non-zero and says which topic, instead of failing later in a send."""
    with worker_behind_an_interruptible_broker(tmp_path, "recreated", messages[:300]) as (broker, worker):
        asyncio.run(recreate_topic(broker.bootstrap, "recreated-app-account-state", partitions=2))
        cut_off(broker, worker)
        broker.resume()
        status = worker.process.wait(timeout=60)
    assert status == 1
    assert (
        "the broker came back with other topics: internal topic 'recreated-app-account-state' "
        "has 2 partitions, the worker needs 4" in worker.log_path.read_text()
    )


async def recreate_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()
    await acreate_topics(bootstrap, {topic: partitions})


def test_a_worker_started_before_its_broker_waits_for_it_then_processes(tmp_path, messages):
    """No broker on the port for 8 s: the worker says it waits (a line every few seconds), does not
    exit, and reads the input once a broker listens there."""
    port = free_loopback_port()
    bootstrap = f"127.0.0.1:{port}"
    topics = Topics("early", 2)
    worker = Worker(bootstrap, topics, "early-app", tmp_path)
    try:
        time.sleep(8)
        assert worker.process.poll() is None, worker.log_tail()
        waiting = [line for line in log_lines(worker) if "waiting for a broker" in line]
        assert 1 <= len(waiting) <= 3, worker.log_tail()
        with EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log") as broker:
            asyncio.run(topics.create(broker.bootstrap))
            asyncio.run(produce(broker.bootstrap, topics.input, messages[:300]))
            asyncio.run(wait_for_records([worker], 300, timeout=90))
            assert worker.stop() == 0, worker.log_tail()
    finally:
        worker.stop()


def test_an_internal_topic_with_another_partition_count_stops_the_start_with_one_line(broker, unique_name, tmp_path):
    """It crashed in a send with AssertionError('Unrecognized partition'); now exit status 2 and a sentence."""
    topics = Topics(unique_name, 4)
    app_id = f"{unique_name}-app"
    asyncio.run(topics.create(broker.bootstrap))
    asyncio.run(acreate_topics(broker.bootstrap, {f"{app_id}-account-state": 2}))
    worker = Worker(broker.bootstrap, topics, app_id, tmp_path)
    try:
        worker.process.wait(timeout=60)
    finally:
        worker.stop()
    output = worker.log_path.read_text()
    assert worker.process.returncode == 2, output
    assert output.strip().splitlines()[-1] == (
        f"detector worker: internal topic '{app_id}-account-state' has 2 partitions, the worker needs 4: "
        "set DETECTOR_PARTITIONS=2 or recreate it"
    )
    assert "Traceback" not in output


def lag_samples(worker: Worker) -> dict[str, dict[str, float]]:
    """detector_input_lag_{records,seconds} by partition label."""
    samples: dict[str, dict[str, float]] = {"records": {}, "seconds": {}}
    for name, value in worker.metrics().items():
        for unit in samples:
            prefix = f"detector_input_lag_{unit}{{partition=" + '"'
            if name.startswith(prefix):
                samples[unit][name[len(prefix) : -2]] = value
    return samples


async def produce_an_hour_ago(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    """Send with Kafka timestamps of an hour ago, as a backlog left by an outage would have; their time."""
    stamp = time.time() - 3600
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value=value, key=key, timestamp_ms=int(stamp * 1000))
        await producer.flush()
    finally:
        await producer.stop()
    return stamp


def test_input_lag_reads_the_backlogs_age_while_it_drains_and_zero_once_caught_up(broker, unique_name, tmp_path):
    """A backlog an hour old: lag in records > 0 and in seconds ≥ 3,600 while the worker drains it;
    0 and 0 once every record is processed, and still 0 after idling (the watermark lag climbed)."""
    records = list(generate(Scenario.demo(seed=8)))  # ~5k records: eight times over, seconds of work
    backlog = [(record["account_id"].encode(), orjson.dumps(record)) for record in records] * 8
    topics = Topics(unique_name, 2)
    asyncio.run(topics.create(broker.bootstrap))
    produced_at = asyncio.run(produce_an_hour_ago(broker.bootstrap, topics.input, backlog))
    worker = Worker(broker.bootstrap, topics, f"{unique_name}-app", tmp_path)
    try:
        behind: list[dict] = []
        deadline = time.monotonic() + 120
        while worker.records_seen() < len(backlog) and time.monotonic() < deadline:
            samples = lag_samples(worker)
            if any(samples["records"].values()):
                behind.append(samples)
            time.sleep(0.1)
        assert behind, "no scrape saw the worker behind"
        assert all(max(s["seconds"].values()) >= time.time() - produced_at - 300 for s in behind[-3:])
        assert max(max(s["seconds"].values()) for s in behind) >= 3600
        asyncio.run(wait_for_records([worker], len(backlog)))
        caught_up = {"records": {"0": 0.0, "1": 0.0}, "seconds": {"0": 0.0, "1": 0.0}}
        wait_until(lambda: lag_samples(worker), lambda s: s == caught_up, 10, "lag once caught up", worker)
        time.sleep(3)
        assert lag_samples(worker) == caught_up
    finally:
        worker.stop()

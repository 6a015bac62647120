"""Run the real ``detector worker`` against the embedded broker, feed it, read what it emits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from detector.sim.broker import acreate_topics, free_loopback_port


def free_port() -> int:
    return free_loopback_port()


class ChildProcess:
    """A server the test starts, its output in a log file; stopped with SIGTERM as an init system would."""

    def __init__(self, command: list[str], log_path: Path, stop_timeout: float = 30.0, **popen):
        self.log_path = log_path
        self.stop_timeout = stop_timeout
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, **popen)

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        """The exit status (0 when it shut down cleanly)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


class Topics:
    """The three topics of one test, with a fresh prefix so tests never share state."""

    def __init__(self, prefix: str, partitions: int):
        self.input = f"{prefix}.requests"
        self.alerts = f"{prefix}.alerts"
        self.dlq = f"{prefix}.requests.dlq"
        self.partitions = partitions

    async def create(self, bootstrap: str, **client_options) -> None:
        await acreate_topics(
            bootstrap,
            {self.input: self.partitions, self.alerts: self.partitions, self.dlq: self.partitions},
            **client_options,
        )


class Worker(ChildProcess):
    """``python -m detector.cli worker`` as a child process, configured like production."""

    def __init__(
        self, bootstrap: str, topics: Topics, app_id: str, log_dir: Path, data_dir: Path | None = None, **settings: str
    ):
        self.metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTOR_")}
        env.update(
            {
                "DETECTOR_BROKER_URL": f"kafka://{bootstrap}",
                "DETECTOR_APP_ID": app_id,
                "DETECTOR_INPUT_TOPIC": topics.input,
                "DETECTOR_ALERTS_TOPIC": topics.alerts,
                "DETECTOR_DLQ_TOPIC": topics.dlq,
                "DETECTOR_PARTITIONS": str(topics.partitions),
                "DETECTOR_METRICS_PORT": str(self.metrics_port),
                "DETECTOR_METRICS_HOST": "127.0.0.1",
                "DETECTOR_SESSION_TIMEOUT_S": "3",
                "DETECTOR_DATA_DIR": str(data_dir or log_dir / f"data-{app_id}-{self.metrics_port}"),
                "DETECTOR_LOG_LEVEL": "info",
                # every campaign update at once, as replay sends them, unless a test sets a pace
                "DETECTOR_CAMPAIGN_UPDATE_INTERVAL_S": "0",
            }
        )
        env.update({f"DETECTOR_{k.upper()}": str(v) for k, v in settings.items()})
        super().__init__(
            [sys.executable, "-m", "detector.cli", "worker"], log_dir / f"{app_id}-{self.metrics_port}.log", env=env
        )

    def metrics(self) -> dict[str, float]:
        """The worker's Prometheus samples, name{labels} → value (empty while it starts)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return {}
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def gauge(self, name: str) -> float | None:
        return self.metrics().get(name)

    def records_seen(self) -> float:
        samples = self.metrics()
        rejected = sum(v for k, v in samples.items() if k.startswith("detector_records_rejected_total"))
        return samples.get("detector_records_accepted_total", 0.0) + rejected


async def wait_for_records(workers: list[Worker], expected: int, timeout: float = 120.0) -> None:
    """Until the workers' metrics say every record was accepted or rejected."""
    deadline = time.monotonic() + timeout
    seen = 0.0
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.log_tail()}")
        seen = sum(worker.records_seen() for worker in workers)
        if seen >= expected:
            return
        await asyncio.sleep(0.5)
    tails = "\n---\n".join(worker.log_tail() for worker in workers)
    raise AssertionError(f"workers saw {seen:.0f} of {expected} records in {timeout:.0f} s:\n{tails}")


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]], **client_options) -> None:
    """Send (key, value) messages in order and wait until the broker has them all.

    ``client_options`` (security settings) go to the producer, as to the other helpers' clients.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=8 << 20, **client_options)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str, topic: str, settle: float = 5.0, timeout: float = 60.0, **client_options
) -> list[dict]:
    """Every message on ``topic``, decoded; stops once nothing new arrived for ``settle`` seconds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        **client_options,
    )
    await consumer.start()
    out: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < settle:
            batches = await consumer.getmany(timeout_ms=300)
            for messages in batches.values():
                for message in messages:
                    out.append(
                        {
                            "key": message.key,
                            "partition": message.partition,
                            "offset": message.offset,
                            "timestamp": message.timestamp / 1000.0,
                            "value": orjson.loads(message.value),
                        }
                    )
                    quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return out


def run_workers(
    bootstrap: str,
    topics: Topics,
    app_id: str,
    log_dir: Path,
    messages: list[tuple[bytes | None, bytes]],
    expected_records: int,
    *,
    workers: int = 1,
    read: dict[str, float],
    campaign_clock_until: float | None = None,
    **settings: str,
) -> dict[str, list[dict]]:
    """Start ``workers`` workers, feed ``messages``, wait until all records are counted, then read
    each topic in ``read`` (topic → seconds of quiet that end the read). Workers are always stopped.

    ``campaign_clock_until``: before reading, wait until the campaign stage has taken every summary up
    to that event time (its clock on the news topic): counting records says the detect steps are done,
    not that the campaign stage, a topic further on, has caught up."""

    async def scenario() -> dict[str, list[dict]]:
        await topics.create(bootstrap)
        running = [Worker(bootstrap, topics, app_id, log_dir, **settings) for _ in range(workers)]
        try:
            if workers > 1:
                await asyncio.sleep(4)  # let the group settle before the traffic
            await produce(bootstrap, topics.input, messages)
            await wait_for_records(running, expected_records)
            if campaign_clock_until is not None:
                await wait_for_campaign_clock(bootstrap, app_id, campaign_clock_until, running)
            return {topic: await read_all(bootstrap, topic, settle=settle) for topic, settle in read.items()}
        finally:
            for worker in running:
                worker.stop()

    return asyncio.run(scenario())


async def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The offsets ``group`` committed on ``topic`` (-1 where it has none), read without joining it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        out = {}
        for partition in range(partitions):
            committed = await consumer.committed(TopicPartition(topic, partition))
            out[partition] = -1 if committed is None else committed
        return out
    finally:
        await consumer.stop()


async def wait_for_commits(
    bootstrap: str, group: str, topic: str, ends: dict[int, int], workers: list[Worker], timeout: float = 180.0
) -> None:
    """Until ``group`` has committed ``ends`` on every partition of ``topic``: the workers checkpointed
    every record (they commit only at checkpoints)."""
    deadline = time.monotonic() + timeout
    committed: dict[int, int] = {}
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.log_tail()}")
        committed = await committed_offsets(bootstrap, group, topic, len(ends))
        if all(committed[p] >= end for p, end in ends.items()):
            return
        await asyncio.sleep(1.0)
    tails = "\n---\n".join(worker.log_tail() for worker in workers)
    raise AssertionError(f"committed {committed}, expected {ends} after {timeout:.0f} s:\n{tails}")


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def wait_for_campaign_clock(
    bootstrap: str, app_id: str, until: float, workers: list[Worker], timeout: float = 120.0
) -> None:
    """Until the campaign stage's clock on ``<app_id>-campaign-news`` has reached ``until``."""
    deadline = time.monotonic() + timeout
    clock = float("-inf")
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.log_tail()}")
        news = await read_all(bootstrap, f"{app_id}-campaign-news", settle=0.5, timeout=10.0)
        clock = max([clock] + [m["value"] for m in news if m["key"] == b"clock"])
        if clock >= until:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the campaign clock reached {clock}, not {until}, in {timeout:.0f} s")

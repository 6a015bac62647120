"""Figures measured through the embedded broker: the raw-consumer limit, the worker, alert latency.

The worker is the real ``python -m detector.cli worker`` child process of the integration tests
(:class:`tests.integration.harness.Worker`), configured only through ``DETECTOR_*`` variables and
watched only through its Prometheus endpoint, as an operator would run and watch it.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from datetime import datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from workload import Workload

from detector.sim.produce import produce_records
from tests.integration.harness import Topics, Worker, produce

ACCOUNT_ALERT = "dev.distillation-detector.account.alert.v1"
POLL_SECONDS = (0.5, 0.05)
"""How often the worker's metrics are read while timing it: seldom while far from done (a scrape
costs the worker ~2 % of its time at 10 Hz), often in the last 10 % and while waiting for the
first record (the resolution of (b), (c) and (f))."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


WORKER_SETTINGS: dict[str, str] = {}
"""Extra ``DETECTOR_*`` settings (lower-case names) for every worker the bench starts."""
MEASURED_SETTINGS = {"campaign_update_interval_s": "0"}
"""Every campaign update is sent at once, so (g) measures each one, as replay would emit it (the
production default holds updates of a fast-growing campaign back for up to 30 s, on purpose)."""


def worker(bootstrap: str, topics: Topics, name: str, work_dir: Path, data_dir: Path | None = None) -> Worker:
    """A worker with a 2 s session: it joins the group in ~1 s instead of ~3 s (docs/faust-notes.md)."""
    return Worker(
        bootstrap,
        topics,
        f"{name}-app",
        work_dir,
        data_dir=data_dir,
        **{"session_timeout_s": "2", **MEASURED_SETTINGS, **WORKER_SETTINGS},
    )


async def wait_seen(running: Worker, expected: int, timeout: float) -> float:
    """Poll the worker's metrics until it has accepted or rejected ``expected`` records; when it did."""
    deadline = time.monotonic() + timeout
    while True:
        if running.process.poll() is not None:
            raise RuntimeError(f"worker exited with {running.process.returncode}:\n{running.log_tail()}")
        seen = await asyncio.to_thread(running.records_seen)
        if seen >= expected:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker saw {seen:.0f} of {expected} records in {timeout:.0f} s:\n{running.log_tail()}")
        await asyncio.sleep(POLL_SECONDS[seen >= expected - max(1.0, 0.1 * expected)])


async def start_warm(
    bootstrap: str, work: Workload, topics: Topics, name: str, work_dir: Path, data_dir: Path | None = None
) -> tuple[Worker, float]:
    """A worker that has joined its group and processed the workload's first record; seconds it took.

    Timing starts after this, so start-up (interpreter, state restore, JoinGroup, first fetch) is
    not counted as throughput: it is a fixed cost, reported apart.
    """
    await topics.create(bootstrap)
    started = time.perf_counter()
    running = worker(bootstrap, topics, name, work_dir, data_dir)
    try:
        await produce(bootstrap, topics.input, [(work.accounts[0].encode(), work.lines[0])])
        ready = await wait_seen(running, 1, timeout=120)
    except BaseException:
        running.stop()
        raise
    return running, ready - started


async def restart(
    bootstrap: str, work: Workload, data_dir: Path, *, partitions: int, name: str, work_dir: Path
) -> dict:
    """(f): seconds from launching a worker to its first record processed, from ``data_dir``'s state.

    With an empty ``data_dir`` it is a cold start, the reference.
    """
    topics = Topics(name, partitions)
    running, seconds = await start_warm(bootstrap, work, topics, name, work_dir, data_dir)
    try:
        # The gauge is refreshed every 5 s: it says how many profiles the worker came back with.
        deadline = time.monotonic() + 8.0
        tracked = 0.0
        while not tracked and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            tracked = await asyncio.to_thread(running.gauge, "detector_accounts_tracked") or 0.0
        rss = rss_bytes(running.process.pid)
    finally:
        running.stop()
    return {"seconds": seconds, "accounts_tracked": int(tracked), "rss_bytes": rss}


async def worker_throughput(
    bootstrap: str, work: Workload, *, batch: int, partitions: int, name: str, work_dir: Path
) -> dict:
    """(b)/(c): records/s from the first produce to the worker's metrics counting the last record.

    Records are produced with :func:`detector.sim.produce.produce_records` as fast as it goes, one
    record per message (``batch=1``) or NDJSON envelopes of ``batch`` records per partition.
    """
    topics = Topics(name, partitions)
    running, ready_seconds = await start_warm(bootstrap, work, topics, name, work_dir)
    records = work.records - 1
    try:

        async def timed_produce() -> tuple[int, float]:
            source = (orjson.loads(line) for line in work.lines[1:])
            sent = await produce_records(source, bootstrap, topics.input, rate=1e12, batch=batch)
            return sent, time.perf_counter()

        started, cpu_started = time.perf_counter(), cpu_seconds(running.process.pid)
        producing = asyncio.create_task(timed_produce())
        done = await wait_seen(running, work.records, timeout=60 + records / 500)
        cpu_used = cpu_seconds(running.process.pid) - cpu_started
        sent, produced = await producing
        samples = await asyncio.to_thread(running.metrics)
    finally:
        running.stop()
    seconds = done - started
    return {
        "records": records,
        "sent": sent,
        "batch": batch,
        "partitions": partitions,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "produce_seconds": produced - started,
        "worker_cpu_share": cpu_used / seconds,
        "startup_seconds": ready_seconds,
        "messages": samples.get("detector_messages_total"),
        "accepted": samples.get("detector_records_accepted_total"),
        "topic": topics.input,
    }


async def raw_consume(bootstrap: str, topic: str, partitions: int, expected: int, *, batched: bool) -> float:
    """(a): seconds for a bare aiokafka consumer to read and ``orjson.loads`` ``expected`` records.

    No group, no commits, nothing but fetch and parse: what any Python consumer costs at least.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 << 20,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, partition) for partition in range(partitions)])
        await consumer.seek_to_beginning()
        loads = orjson.loads
        count = 0
        started = time.perf_counter()
        while count < expected:
            for messages in (await consumer.getmany(timeout_ms=1000, max_records=20_000)).values():
                for message in messages:
                    if batched:
                        for line in message.value.split(b"\n"):
                            loads(line)
                            count += 1
                    else:
                        loads(message.value)
                        count += 1
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def alert_latency(
    bootstrap: str, work: Workload, rate: float, *, partitions: int, name: str, work_dir: Path
) -> dict:
    """(g): produce → alert on the alerts topic, at a steady ``rate`` of single-record messages.

    Every alert names the event time of the record that caused it (``time``; account alerts
    also their account as ``subject``), which leads back to that record's wall-clock send time.
    The alert's arrival is its broker timestamp (set by the worker's producer when it sent it).
    """
    topics = Topics(name, partitions)
    running, _ = await start_warm(bootstrap, work, topics, name, work_dir)
    sent_at = [0.0] * work.records
    arrivals: list[tuple[float, float, bytes]] = []
    stop_reading = asyncio.Event()

    async def read_alerts():
        consumer = AIOKafkaConsumer(
            topics.alerts,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            while not stop_reading.is_set():
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    received = time.time()
                    arrivals.extend((message.timestamp / 1000, received, message.value) for message in messages)
        finally:
            await consumer.stop()

    reader = asyncio.create_task(read_alerts())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    try:
        lines, accounts = work.lines, work.accounts
        started, cpu_started = time.perf_counter(), cpu_seconds(running.process.pid)
        index = 1
        while index < work.records:
            due = min(work.records, 1 + int((time.perf_counter() - started) * rate))
            while index < due:
                await producer.send(topics.input, value=lines[index], key=accounts[index].encode())
                sent_at[index] = time.time()
                index += 1
            await asyncio.sleep(0.005)
        await producer.flush()
        produce_seconds = time.perf_counter() - started
        drained = await wait_seen(running, work.records, timeout=120)
        drain_seconds = drained - started - produce_seconds
        cpu_share = (cpu_seconds(running.process.pid) - cpu_started) / (drained - started)
        samples = await asyncio.to_thread(running.metrics)
        await asyncio.sleep(6.0)  # campaign alerts take three hops (detect → link → merge)
    finally:
        stop_reading.set()
        await producer.stop()
        await reader
        running.stop()
    return {
        "rate_target": rate,
        "rate_sent": (work.records - 1) / produce_seconds,
        "records": work.records - 1,
        "seconds": produce_seconds,
        "drain_seconds": drain_seconds,
        "worker_cpu_share": cpu_share,
        "message_seconds": histogram(samples, "detector_message_processing_seconds"),
        **trace_alerts(work, sent_at, arrivals),
    }


def trace_alerts(work: Workload, sent_at: list[float], arrivals: list[tuple[float, float, bytes]]) -> dict:
    """Latency percentiles of the alerts whose causing record is found by event time (and account)."""
    by_time: dict[int, list[int]] = {}
    for index in range(1, work.records):
        by_time.setdefault(work.timestamps_ms[index], []).append(index)
    latencies: dict[str, list[float]] = {"account": [], "campaign": []}
    consumed: list[float] = []
    timeline: list[tuple[float, str, float]] = []
    """(seconds into the run, a/c, latency): whether latency grows as the run goes on."""
    unmatched = 0
    for broker_time, received, value in arrivals:
        event = orjson.loads(value)
        kind = "account" if event["type"] == ACCOUNT_ALERT else "campaign"
        candidates = by_time.get(round(datetime.fromisoformat(event["time"]).timestamp() * 1000), [])
        if kind == "account":
            candidates = [index for index in candidates if work.accounts[index] == event["subject"]]
        if not candidates:
            unmatched += 1
            continue
        sent = sent_at[candidates[0]]
        latencies[kind].append(broker_time - sent)
        timeline.append((round(sent - sent_at[1], 2), kind[0], round(broker_time - sent, 3)))
        consumed.append(received - sent)
    every = latencies["account"] + latencies["campaign"]
    return {
        "alerts": len(arrivals),
        "unmatched": unmatched,
        "all": percentiles(every),
        "account": percentiles(latencies["account"]),
        "campaign": percentiles(latencies["campaign"]),
        "consumed": percentiles(consumed),
        "timeline": sorted(timeline),
    }


def histogram(samples: dict[str, float], name: str) -> dict[str, float]:
    """A Prometheus histogram's cumulative bucket counts, upper bound → count."""
    prefix = f'{name}_bucket{{le="'
    return {key[len(prefix) : -2]: value for key, value in samples.items() if key.startswith(prefix)}


def percentiles(values: list[float]) -> dict:
    """n, p50, p99 and max of ``values`` (nearest rank: under 100 values, p99 is the max)."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {"n": len(ordered), "p50": rank(0.50), "p99": rank(0.99), "max": ordered[-1]}

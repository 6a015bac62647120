"""Produce request.v1 records to Kafka at a steady rate: the feeder of the demo and benchmarks.

Records are keyed by ``account_id`` so that each account's records land on one partition, in
order. With ``batch > 1`` records are packed into NDJSON envelopes, one per partition, each
envelope holding only records of accounts that hash to that partition.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2


def partition_of(account_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed by ``account_id``."""
    return (murmur2(account_id.encode()) & 0x7FFFFFFF) % partitions


async def produce_records(
    records: Iterable[dict],
    bootstrap: str,
    topic: str,
    *,
    rate: float = 5000.0,
    batch: int = 1,
    progress: bool = False,
    stop: asyncio.Event | None = None,
) -> int:
    """Send ``records`` in order at about ``rate`` records/s; returns how many were sent."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, max_request_size=8 << 20, acks=1
    )
    await producer.start()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit=" records", unit_scale=True, desc="produce", file=sys.stderr, mininterval=0.5)
    sent = 0
    try:
        partitions = len(await producer.partitions_for(topic))
        pending: dict[int, list[bytes]] = {}
        started = time.monotonic()
        for record in records:
            if stop is not None and stop.is_set():
                break
            value = orjson.dumps(record)
            account = record["account_id"]
            if batch <= 1:
                await producer.send(topic, value=value, key=account.encode())
            else:
                partition = partition_of(account, partitions)
                envelope = pending.setdefault(partition, [])
                envelope.append(value)
                if len(envelope) >= batch:
                    await producer.send(topic, value=b"\n".join(envelope), partition=partition)
                    envelope.clear()
            sent += 1
            if sent % 256 == 0:
                if bar is not None:
                    bar.update(256)
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        for partition, envelope in pending.items():
            if envelope:
                await producer.send(topic, value=b"\n".join(envelope), partition=partition)
        await producer.flush()
    finally:
        if bar is not None:
            bar.close()
        await producer.stop()
    return sent


def produce_scenario(scenario, bootstrap: str, topic: str, *, rate: float, batch: int = 1) -> int:
    """``detector simulate --produce``: the scenario's records onto ``topic``."""
    from detector.sim.traffic import generate

    bootstrap = bootstrap.removeprefix("kafka://")
    return asyncio.run(produce_records(generate(scenario), bootstrap, topic, rate=rate, batch=batch, progress=True))

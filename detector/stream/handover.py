"""Account baselines that follow their input partition from worker to worker, through Kafka.

A local snapshot brings a worker back after a restart on the same disk. When a rebalance moves
an input partition to another worker (a scale-out, a crash, a pod rescheduled on a new node),
its accounts would start over in warm-up. So each worker publishes the profiles of the accounts
it changed to the compacted topic ``<app_id>-account-state``: key = account id, value = the
MessagePack profile (~300 B), on the state partition of the account's input partition.

Write amplification is bounded: at most one message per changed account per
``DETECTOR_SNAPSHOT_INTERVAL_S`` (however many records it sent), plus the changed accounts of
revoked partitions at the moment they are revoked. Profiles are handed to the producer in
batches of a state partition's messages: ~4 µs a profile, where one ``send`` each cost ~16 µs
(``bench/publish_profiles.py``), i.e. 0.4 s of a minute per 100k changed accounts. Compaction
keeps the newest profile of each account; the topic's retention equals the account TTL, so
accounts idle longer disappear.

A worker that is assigned an input partition it did not own reads that state partition from
the beginning and adopts every profile newer than the one it holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from detector.detection.core import Detector
from detector.detection.profile import AccountProfile

log = logging.getLogger(__name__)

SendMany = Callable[[str, int, list[tuple[bytes, bytes]]], Awaitable[object]]
"""(topic, partition, [(key, value), ...]) → an awaitable that hands the messages to the producer."""

SEND_BATCH = 2000
"""Profiles handed over at a time (~0.6 MB); the event loop runs other work between batches."""
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(AccountProfile).decode


async def stop_quietly(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, but for the ``CancelledError`` aiokafka raises from it when the broker was
    unreachable: its fetcher re-raises the cancellation of its own retrying fetch. Out of a rebalance
    listener, that error ended the detect consumer's group coordination, and the worker read nothing
    more after the broker came back. A cancellation of the caller itself still propagates.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("a state reader stopped while the broker was unreachable")


class AccountHandover:
    """Publishes changed profiles, and adopts the profiles of newly assigned partitions."""

    def __init__(
        self,
        detector: Detector,
        topic: str,
        partitions: int,
        send: SendMany,
        reader: Callable[[], AIOKafkaConsumer],
        changed: dict[str, int],
    ):
        """``partitions``: of the state topic; ``reader``: a new group-less consumer;
        ``changed``: account → its input partition, filled by whoever processes the records."""
        self.detector = detector
        self.topic = topic
        self.partitions = partitions
        self._send = send
        self._reader = reader
        self.changed = changed
        self.owned: set[int] = set()
        """Input partitions of this worker's latest assignment (a partition revoked and given back
        in one rebalance keeps its profiles in memory)."""

    def state_partition(self, input_partition: int) -> int:
        return input_partition % self.partitions

    async def publish(self, input_partitions: Iterable[int] | None = None) -> int:
        """Send the changed profiles (of ``input_partitions`` only, if given); how many."""
        if input_partitions is None:
            batch = dict(self.changed)
            self.changed.clear()
        else:
            wanted = set(input_partitions)
            batch = {account: partition for account, partition in self.changed.items() if partition in wanted}
            for account in batch:
                del self.changed[account]
        profiles = self.detector.profiles
        waiting: dict[int, list[tuple[bytes, bytes]]] = {}
        sent = 0
        for account_id, input_partition in batch.items():
            profile = profiles.get(account_id)
            if profile is None:  # evicted since: its last published profile ages out with the topic's retention
                continue
            partition = self.state_partition(input_partition)
            messages = waiting.setdefault(partition, [])
            messages.append((account_id.encode(), _encode(profile)))
            sent += 1
            if len(messages) >= SEND_BATCH:
                await self._send(self.topic, partition, messages)
                waiting[partition] = []
                await asyncio.sleep(0)  # let the input stage and heartbeats run
        for partition, messages in waiting.items():
            if messages:
                await self._send(self.topic, partition, messages)
        return sent

    async def on_revoked(self, revoked: Iterable[int]) -> int:
        """Before a partition leaves: publish its changed accounts so the next owner has them."""
        return await self.publish(revoked)

    async def on_assigned(self, assigned: Iterable[int]) -> int:
        """Adopt the published profiles of input partitions this worker did not own; how many."""
        assigned = set(assigned)
        new = assigned - self.owned
        self.owned = assigned
        if not new:
            return 0
        state_partitions = [TopicPartition(self.topic, p) for p in sorted({self.state_partition(p) for p in new})]
        adopted = 0
        reader = self._reader()
        await reader.start()
        try:
            reader.assign(state_partitions)
            await reader.seek_to_beginning(*state_partitions)
            ends = await reader.end_offsets(state_partitions)
            # Read past the reported end until a poll comes back empty: the embedded broker
            # reports too low an end offset after multi-record batches (docs/faust-notes.md).
            while True:
                batches = await reader.getmany(*state_partitions, timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        if message.value is None:
                            continue
                        adopted += self.detector.adopt(message.key.decode(), _decode(message.value))
                if not batches and all([await reader.position(tp) >= ends[tp] for tp in state_partitions]):
                    break
        finally:
            await stop_quietly(reader)
        log.info("adopted %d account profiles of input partitions %s", adopted, sorted(new))
        return adopted

"""Consumer lag of the input partitions, in records and in seconds, as something to alert on.

The watermark gauge (newest event time seen) cannot tell a worker that is behind from one that is
idle: both stop advancing it. Lag here is measured from the **oldest record not yet processed**: a
caught-up worker has lag 0 however long it idles, and a worker behind reports how long its oldest
waiting record has waited, ``now - timestamp``. Timestamps are the Kafka message timestamps (the
producer's CreateTime, or the broker's LogAppendTime if the topic sets it): when the gateway handed
the request over, whatever event time the record itself claims.

:class:`InputLag` is the arithmetic, fed plain numbers; :class:`InputProgress` is what the detect
loop calls: it learns offsets and timestamps from the batches the loop fetches and processes, the
high watermarks from the consumer, and publishes both gauges per partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from aiokafka.errors import KafkaError
from prometheus_client import Gauge


@dataclass(frozen=True)
class PartitionLag:
    """How far one partition is behind: records waiting, and seconds the oldest of them has waited."""

    records: int
    seconds: float


class InputLag:
    """Lag per partition from (position, high watermark, oldest unprocessed timestamp, now).

    ``position`` is the offset of the next record to process, ``highwater`` the offset the next
    record produced will get. When records wait but the oldest one's timestamp is not known (not
    fetched yet), the partition counts as behind since it was first seen behind: a lower bound.

    >>> lag = InputLag()
    >>> lag.update(0, position=90, highwater=100, oldest_unprocessed=1_000.0, now=1_060.0)
    PartitionLag(records=10, seconds=60.0)
    >>> lag.update(0, position=100, highwater=100, oldest_unprocessed=None, now=5_000.0)
    PartitionLag(records=0, seconds=0.0)
    """

    def __init__(self) -> None:
        self.partitions: dict[int, PartitionLag] = {}
        self._behind_since: dict[int, float] = {}

    def update(
        self, partition: int, position: int, highwater: int, oldest_unprocessed: float | None, now: float
    ) -> PartitionLag:
        records = max(highwater - position, 0)
        if records == 0:
            self._behind_since.pop(partition, None)
            seconds = 0.0
        elif oldest_unprocessed is not None:
            self._behind_since.pop(partition, None)
            seconds = max(now - oldest_unprocessed, 0.0)
        else:
            seconds = now - self._behind_since.setdefault(partition, now)
        lag = PartitionLag(records, seconds)
        self.partitions[partition] = lag
        return lag

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions this worker no longer owns."""
        for partition in partitions:
            self.partitions.pop(partition, None)
            self._behind_since.pop(partition, None)

    @property
    def pending(self) -> int:
        """Records waiting on all partitions."""
        return sum(lag.records for lag in self.partitions.values())


class InputConsumer(Protocol):
    """What :class:`InputProgress` reads of the input consumer (``aiokafka.AIOKafkaConsumer`` has it)."""

    def assignment(self) -> Iterable: ...

    def highwater(self, partition) -> int | None: ...

    async def position(self, partition) -> int: ...


class InputProgress:
    """The detect loop's reports turned into lag gauges, and whether records were processed.

    Hooks: :meth:`watch` the consumer once; :meth:`took` after each pass of the detect loop over what
    it fetched. :meth:`refresh` (a timer: it must not depend on the loop running) reads the high
    watermarks and sets the gauges.
    """

    def __init__(self, records_gauge: Gauge, seconds_gauge: Gauge, clock: Callable[[], float] = time.time):
        self.records_gauge = records_gauge
        self.seconds_gauge = seconds_gauge
        self.clock = clock
        self.lag = InputLag()
        self.consumer: InputConsumer | None = None
        self._position: dict[int, int] = {}
        self._oldest: dict[int, float] = {}
        self._processed = 0
        self._processed_reported = 0

    def watch(self, consumer: InputConsumer) -> None:
        self.consumer = consumer

    def took(self, oldest: Mapping[int, float | None], positions: Mapping[int, int], handled: int) -> None:
        """The detect loop's report after each pass over what it fetched (``InputOrder``): per
        partition, the Kafka timestamp (s) of its oldest record not processed, or of the last one
        processed while none waits (a partition is written in time order: the next is no older; None
        before any), the offset of the next one to process; and how many messages it handled."""
        for partition, position in positions.items():
            self._position[partition] = position
            timestamp = oldest.get(partition)
            if timestamp is not None:
                self._oldest[partition] = timestamp
        self._processed += handled

    async def refresh(self) -> bool:
        """Set the gauges of the owned partitions; whether records were processed since the last call."""
        now = self.clock()
        owned = {}
        if self.consumer is not None:
            owned = {source.partition: source for source in self.consumer.assignment()}
        for partition in [p for p in self.lag.partitions if p not in owned]:
            self.lag.forget([partition])
            self._position.pop(partition, None)
            self._oldest.pop(partition, None)
            self.records_gauge.remove(str(partition))
            self.seconds_gauge.remove(str(partition))
        for partition, source in owned.items():
            highwater = self.consumer.highwater(source) if self.consumer is not None else None
            position = self._position.get(partition)
            if position is None and highwater is not None:  # no record in hand: the consumer's is ours
                position = await self._consumer_position(source)
            if highwater is None or position is None:
                continue  # no fetch answered yet: unknown, not zero
            lag = self.lag.update(partition, position, highwater, self._oldest.get(partition), now)
            self.records_gauge.labels(str(partition)).set(lag.records)
            self.seconds_gauge.labels(str(partition)).set(lag.seconds)
        progressed = self._processed != self._processed_reported
        self._processed_reported = self._processed
        return progressed

    async def _consumer_position(self, source) -> int | None:
        """The consumer's next offset; None while it has none (it would wait for the broker)."""
        try:
            return await asyncio.wait_for(self.consumer.position(source), 0.1)  # type: ignore[union-attr]
        except (TimeoutError, KafkaError):  # no answer yet, or no longer assigned
            return None

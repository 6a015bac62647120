"""Event time across input partitions: the campaign stage takes account summaries in one order,
whoever sent them, however far behind each input partition is.

``detector replay`` reads one file in event-time order, so its link and merge stages see each
account summary at the moment its record happened. A worker reads several input partitions, each
at its own pace (a backlog, a slow worker, a rebalance): summaries reach the campaign stage out of
event-time order, and a campaign seen in a different order can be founded by another attribute,
page a fragment before it merges, or expire an attribute too early. So every detect step reports,
with its summaries, how far each of its input partitions has got (:class:`Progress`), and the
campaign stage holds summaries back until every partition has passed their time: the watermark of
the slowest partition (Flink and Kafka Streams call it the same). Summaries are then taken in
:class:`SummaryKey` order, which is the order of their records in time.

A partition whose consumer has read all it holds (``drained``) waits for nothing; when every
partition is drained, all summaries are released. A summary key at or before the last one released,
or already waiting, is a duplicate: a detect step that restarted from an older checkpoint sends its
summaries again, and they count once.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import NamedTuple

from detector.detection.campaigns import AttributeObservation

RECORD_BITS = 20
"""A record's position is its message offset shifted by this many bits, plus its index in the
message: envelopes of up to a million records keep distinct, ordered positions."""


def record_position(offset: int, index: int) -> int:
    """The position of the ``index``-th record of the message at ``offset``: ordered like the records.

    >>> record_position(3, 1) < record_position(3, 2) < record_position(4, 0)
    True
    """
    return (offset << RECORD_BITS) | index


class SummaryKey(NamedTuple):
    """Where an account summary comes from, in the order the campaign stage takes summaries."""

    timestamp: float
    partition: int
    position: int
    """:func:`record_position` of the record that made it."""


class Progress(NamedTuple):
    """A detect step's word on one input partition: every summary of its records up to
    ``watermark`` has been sent (this message included)."""

    partition: int
    watermark: float
    drained: bool
    """The step had read everything the partition held: it holds nobody back."""


_FIRST = SummaryKey(float("-inf"), -1, -1)


class EventTimeMerger:
    """Summaries from every input partition, released in event-time order up to the slowest partition."""

    def __init__(self, partitions: int):
        """``partitions``: of the input topic; nothing is released before each has reported."""
        self.partitions = partitions
        self.progress: dict[int, tuple[float, bool]] = {}
        """partition → (watermark, drained) as last reported; watermarks never move back."""
        self.waiting: dict[SummaryKey, list[AttributeObservation]] = {}
        self._heap: list[SummaryKey] = []
        self.released_through = _FIRST
        """The last key released: everything at or before it was taken (or is a duplicate)."""
        self.clock = float("-inf")
        """Event time up to which every partition's summaries have been released."""

    def offer(self, key: SummaryKey, observations: list[AttributeObservation]) -> bool:
        """Hold one record's summaries until their time comes; False for a duplicate."""
        if key <= self.released_through or key in self.waiting:
            return False
        self.waiting[key] = observations
        heapq.heappush(self._heap, key)
        return True

    def report(self, progress: Iterable[Progress]) -> None:
        """Take in how far partitions have got."""
        for partition, watermark, drained in progress:
            previous = self.progress.get(partition)
            if previous is not None and previous[0] > watermark:
                watermark = previous[0]  # a step restarted from an older checkpoint: it re-sends, never retracts
            self.progress[partition] = (watermark, drained)

    def due(self) -> float:
        """The event time every partition has passed (-inf until each has reported)."""
        if len(self.progress) < self.partitions:
            return self.clock
        busy = [watermark for watermark, drained in self.progress.values() if not drained]
        if busy:
            return max(self.clock, min(busy))
        return max(self.clock, max(watermark for watermark, _ in self.progress.values()), self._newest_waiting())

    def _newest_waiting(self) -> float:
        return max((key.timestamp for key in self.waiting), default=float("-inf"))

    def release(self) -> list[tuple[SummaryKey, list[AttributeObservation]]]:
        """The summaries whose time has come, in :class:`SummaryKey` order; moves :attr:`clock`."""
        clock = self.clock = self.due()
        heap, waiting = self._heap, self.waiting
        released = []
        while heap and heap[0].timestamp <= clock:
            key = heapq.heappop(heap)
            released.append((key, waiting.pop(key)))
        if released:
            self.released_through = released[-1][0]
        return released

    def snapshot(self) -> dict:
        """Plain data: the progress table, the waiting summaries and the release point."""
        return {
            "partitions": self.partitions,
            "progress": [[partition, watermark, drained] for partition, (watermark, drained) in self.progress.items()],
            "waiting": [[list(key), [list(o) for o in observations]] for key, observations in self.waiting.items()],
            "released_through": list(self.released_through),
            "clock": self.clock,
        }

    def restore(self, state: dict) -> None:
        self.partitions = state["partitions"]
        self.progress = {partition: (watermark, drained) for partition, watermark, drained in state["progress"]}
        self.waiting = {
            SummaryKey(*key): [AttributeObservation(*fields) for fields in observations]
            for key, observations in state["waiting"]
        }
        self._heap = list(self.waiting)
        heapq.heapify(self._heap)
        self.released_through = SummaryKey(*state["released_through"])
        self.clock = state["clock"]

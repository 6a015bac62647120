"""The worker's named pieces: each stage of :mod:`detector.detection.stages` with its topics.

Each piece takes a message's bytes, calls its stage handler and hands what comes out to a
:class:`Sink`. None imports Faust or needs a broker: ``create_app`` (``detector/stream/app.py``)
connects them to Faust topics and consumers, and the unit tests to a :class:`RecordingSink`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

import msgspec
import orjson

from detector.detection.alerting import Alert, UpdatePacer
from detector.detection.campaigns import AttributeObservation, Membership
from detector.detection.core import Detector
from detector.detection.ordering import Progress, SummaryKey
from detector.detection.stages import Decoded, DetectStage, Merged, OrderedCampaigns, encode_membership
from detector.stream.config import Settings
from detector.stream.handover import AccountHandover
from detector.stream.metrics import DetectorMetrics
from detector.stream.state import snapshot_parts, write_atomically

log = logging.getLogger(__name__)

DETECT_SLICE_SECONDS = 0.05
"""The detect step yields the event loop (heartbeats, timers, the other stages) this often inside a
batch: 500 envelopes of 200 records are seconds of work."""
IDLE_SWEEP_SECONDS = 2.0
"""The campaign step sweeps at its newest event time once the summaries have been quiet this long
(see :meth:`MergeStage.sweep <detector.detection.stages.MergeStage.sweep>`)."""
OBSERVATION_BATCH = 1000
"""Account summaries go to the campaign stage in batches: a message per input message would
double the per-message cost; campaigns can wait half a second (the app's flush timer)."""


class Sink(Protocol):
    """Where a piece sends its messages: a Faust topic in the worker, a list in tests."""

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None) -> None:
        """Hand one message to the producer (``partition`` None: by key, or any)."""


class Sent(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None


class RecordingSink:
    """A :class:`Sink` that keeps every message, in order: the fake the unit tests use."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None) -> None:
        self.sent.append(Sent(topic, key, value, partition))

    def to(self, topic: str) -> list[Sent]:
        """The messages sent to ``topic``."""
        return [message for message in self.sent if message.topic == topic]


class InputMessage(Protocol):
    """What the detect step reads of a consumed record (aiokafka's ``ConsumerRecord`` has it)."""

    value: bytes | None
    key: bytes | None
    offset: int


# -- the internal topics' wire forms ---------------------------------------------------------------

_encode_msgpack = msgspec.msgpack.Encoder().encode
_decode_msgpack = msgspec.msgpack.Decoder().decode


def encode_summaries(
    summaries: Iterable[tuple[SummaryKey, Sequence[AttributeObservation]]], progress: Iterable[Progress]
) -> bytes:
    """A detect step's message to the campaign stage: keyed summaries, then how far each of its
    partitions got (after the summaries: a reader that has the progress has what it covers).
    MessagePack: event times can be -inf, which JSON cannot carry."""
    return _encode_msgpack(
        {
            "summaries": [
                [*key, [list(observation) for observation in observations]] for key, observations in summaries
            ],
            "progress": [list(entry) for entry in progress],
        }
    )


SUMMARIES_MESSAGE_BYTES = 512 * 1024
"""Most bytes of one message to the campaign stage. A producer sends at most ``max_request_size``
(1 MiB by default), and a batch of :data:`OBSERVATION_BATCH` summaries, ten to twenty attributes
each, comes close: past it the send failed and the worker stopped (``make bench``, worker figures:
1,014,853 bytes at ``3ee162f``, 1,029,226 at ``73dfe52``, whose summaries carry one more number)."""


def encode_summary_messages(
    summaries: Sequence[tuple[SummaryKey, Sequence[AttributeObservation]]],
    progress: Sequence[Progress],
    limit: int = SUMMARIES_MESSAGE_BYTES,
) -> list[bytes]:
    """The summaries in order over as many messages as keep each under ``limit`` bytes (one summary
    alone goes whole), the progress in the last: a reader that has it has what it covers.

    >>> key, observation = SummaryKey(1.0, 0, 1), AttributeObservation("payment:1", "a", 1.0, 1, 1, 1, 1.0)
    >>> messages = encode_summary_messages([(key, [observation])] * 10, [], limit=200)
    >>> [len(decode_summaries(m)[0]) for m in messages], all(len(m) <= 200 for m in messages)
    ([2, 3, 2, 3], True)
    """
    message = encode_summaries(summaries, progress)
    if len(message) <= limit or len(summaries) <= 1:
        return [message]
    half = len(summaries) // 2
    return encode_summary_messages(summaries[:half], (), limit) + encode_summary_messages(
        summaries[half:], progress, limit
    )


def decode_summaries(value: bytes) -> tuple[list[tuple[SummaryKey, list[AttributeObservation]]], list[Progress]]:
    message = _decode_msgpack(value)
    summaries = [
        (SummaryKey(timestamp, partition, position), [AttributeObservation(*fields) for fields in observations])
        for timestamp, partition, position, observations in message["summaries"]
    ]
    return summaries, [Progress(*entry) for entry in message["progress"]]


CLOCK_KEY = b"clock"
"""The news topic's key for the campaign clock; membership news is keyed ``m:<account id>``."""


def encode_news_membership(membership: Membership, announced: float) -> tuple[bytes, bytes]:
    """A membership change on the news topic, with the event time it was made at (exact: membership.v1
    rounds to the ms, and a decision at the very time the change was made must see it)."""
    return b"m:" + membership.account_id.encode(), orjson.dumps([*membership, announced])


def encode_news_clock(clock: float) -> tuple[bytes, bytes]:
    return CLOCK_KEY, orjson.dumps(clock)


def decode_news(key: bytes | None, value: bytes) -> tuple[Membership, float] | float:
    """A news message: a membership change and when it was made, or the campaign clock."""
    if key == CLOCK_KEY:
        return float(orjson.loads(value))
    account_id, campaign_id, since, announced = orjson.loads(value)
    return Membership(account_id, campaign_id, since), announced


class AlertEncoder:
    """Alerts as (key, CloudEvent JSON) pairs, counted in the metrics: one place for both stages."""

    def __init__(self, settings: Settings, metrics: DetectorMetrics):
        self.settings = settings
        self.metrics = metrics

    def __call__(self, alerts: Iterable[Alert]) -> list[tuple[bytes, bytes]]:
        out = []
        for alert in alerts:
            self.metrics.alerts.labels(alert.type, alert.status, alert.severity).inc()
            event = alert.to_cloudevent(self.settings.alert_source, self.settings.runbook_url)
            out.append((alert.key, orjson.dumps(event)))
        return out


class InputOrder:
    """Fetched input messages per partition, handed to the detect step oldest event time first.

    A consumer fetches partitions at their own pace: draining a backlog, one partition can be
    hours of event time ahead of another, and a detector whose clock follows the fastest one
    evicts, expires and resolves the others' accounts early. So the next message is always the
    oldest head among the partitions, and none is taken while a partition that still holds
    unread records has nothing fetched: the step waits for it (the slowest partition's watermark).
    A partition with nothing left to read waits for nobody.
    """

    def __init__(self) -> None:
        self.queues: dict[int, deque[tuple[float, InputMessage, Decoded]]] = {}
        """assigned partition → fetched messages not yet processed, with their event time."""
        self.fetched_to: dict[int, int] = {}
        """partition → the offset after the last fetched message (its consumer position)."""
        self.highwater: dict[int, int] = {}
        """partition → the broker's end offset as of the latest fetch."""
        self.processed_to: dict[int, int] = {}
        """partition → the offset after the last processed message: what a checkpoint commits."""
        self._last_timestamp: dict[int, int | None] = {}
        self._early: dict[int, list[tuple[float, InputMessage, Decoded]]] = {}
        self.pauses = 0
        """Above 0 while a rebalance hands profiles over or a checkpoint is taken: nothing is processed."""

    def assign(self, positions: Mapping[int, int]) -> None:
        """Partitions newly assigned, at their consumer positions; messages fetched for them before
        the rebalance listener got here join their queues."""
        for partition, position in positions.items():
            if partition in self.queues:
                continue
            early = self._early.pop(partition, [])
            self.queues[partition] = deque(early)
            self.processed_to[partition] = early[0][1].offset if early else position
            self.fetched_to[partition] = early[-1][1].offset + 1 if early else position
            self.highwater.pop(partition, None)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Partitions taken away: their unprocessed messages go to the next owner."""
        for partition in partitions:
            for table in (self.queues, self.fetched_to, self.highwater, self.processed_to, self._last_timestamp):
                table.pop(partition, None)
            self._early.pop(partition, None)

    def add(self, partition: int, message: InputMessage, decoded: Decoded, event_time: float) -> None:
        """A fetched message. The consumer may hand out a new partition's messages before the
        rebalance listener has seen it assigned: they wait aside, for until the whole assignment is
        known no partition may go first (one not yet heard of may hold older records)."""
        queue = self.queues.get(partition)
        if queue is None:
            self._early.setdefault(partition, []).append((event_time, message, decoded))
        else:
            queue.append((event_time, message, decoded))

    def note_position(self, partition: int, position: int, highwater: int | None) -> None:
        """The consumer's position (the next offset it hands out) and the broker's end offset as of
        its latest fetch (None before one)."""
        if partition in self.queues:
            self.fetched_to[partition] = position
            if highwater is not None:
                self.highwater[partition] = highwater

    def drained(self, partition: int) -> bool:
        """Nothing of ``partition`` left to read or process (as of the latest fetch)."""
        highwater = self.highwater.get(partition)
        return not self.queues.get(partition) and highwater is not None and self.fetched_to[partition] >= highwater

    def next(self) -> tuple[int, InputMessage, Decoded] | None:
        """The message with the oldest event time, or None while a partition must be waited for."""
        if self.pauses:
            return None
        best: int | None = None
        best_time = float("inf")
        for partition, queue in self.queues.items():
            if not queue:
                if not self.drained(partition):
                    return None
                continue
            head = queue[0][0]
            # equal times go by partition number: the same order whichever partition was fetched first
            if best is None or head < best_time or (head == best_time and partition < best):
                best, best_time = partition, head
        if best is None:
            return None
        _, message, decoded = self.queues[best].popleft()
        self.processed_to[best] = message.offset + 1
        self._last_timestamp[best] = getattr(message, "timestamp", None)
        return best, message, decoded

    def oldest_waiting(self) -> dict[int, float | None]:
        """partition → the Kafka timestamp (seconds) of its oldest fetched record not processed, or of
        the last one processed when none waits (the next cannot be older); None before any."""
        out: dict[int, float | None] = {}
        for partition, queue in self.queues.items():
            timestamp = queue[0][1].timestamp if queue else self._last_timestamp.get(partition)
            out[partition] = None if timestamp is None else timestamp / 1000.0
        return out

    def buffered(self, partition: int) -> int:
        return len(self.queues.get(partition, ()))


class DetectStep:
    """The detect stage on the input topic: alerts and dead letters sent per message, account
    summaries and partition progress batched for the campaign stage, the campaign news taken in."""

    def __init__(
        self,
        stage: DetectStage,
        settings: Settings,
        metrics: DetectorMetrics,
        sink: Sink,
        encode_alerts: AlertEncoder,
    ):
        self.stage = stage
        self.settings = settings
        self.metrics = metrics
        self.sink = sink
        self.encode_alerts = encode_alerts
        self.changed: dict[str, int] = {}
        """account → input partition of the accounts changed since their profile was published."""
        self.pending: list[tuple[SummaryKey, list[AttributeObservation]]] = []
        """Account summaries waiting to go to the campaign stage."""
        self.watermarks: dict[int, float] = {}
        """input partition → the newest event time processed (what progress reports)."""
        self.busy = asyncio.Lock()
        """Held while messages are processed: a checkpoint or a rebalance waits for the one in hand."""
        self.flushing = asyncio.Lock()
        """Held from taking the waiting summaries until their message is with the producer (see
        :meth:`flush_summaries`)."""
        self._evicted_reported = stage.detector.stats.accounts_evicted

    @property
    def detector(self) -> Detector:
        return self.stage.detector

    def decode(self, value: bytes | None) -> tuple[Decoded, float]:
        """A message's records and rejections, and its event time (its oldest record's; -inf for none)."""
        decoded = self.stage.decode(value or b"")
        return decoded, min((request.timestamp for request in decoded[0]), default=float("-inf"))

    async def handle(
        self,
        value: bytes | None,
        key: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        decoded: Decoded | None = None,
    ) -> None:
        """Detect over one input message and send its alerts and dead letters."""
        started = time.perf_counter()
        metrics = self.metrics
        metrics.messages.inc()
        if decoded is None:
            decoded, _ = self.decode(value)
        detected = self.stage.handle_decoded(decoded, topic=topic, partition=partition, offset=offset)
        if detected.requests:
            metrics.records_accepted.inc(len(detected.requests))
            changed = self.changed
            newest = self.watermarks.get(partition, float("-inf"))
            for request in detected.requests:
                changed[request.account_id] = partition
                if request.timestamp > newest:
                    newest = request.timestamp
            self.watermarks[partition] = newest
        if detected.summaries:
            self.pending.extend(detected.summaries)
        send = self.sink.send
        for alert_key, event in self.encode_alerts(detected.alerts):
            await send(self.settings.alerts_topic, event, key=alert_key)
        for dead_letter in detected.dead_letters:
            metrics.rejections.labels(dead_letter.reason).inc()
            await send(self.settings.dlq_topic, dead_letter.value, key=key)
        metrics.batch_seconds.observe(time.perf_counter() - started)

    async def handle_ordered(self, order: InputOrder, topic: str) -> int:
        """Every message ``order`` hands out now, yielding the event loop every
        :data:`DETECT_SLICE_SECONDS`; how many. Summaries go out once :data:`OBSERVATION_BATCH` wait."""
        async with self.busy:
            return await self._handle_ordered(order, topic)

    async def _handle_ordered(self, order: InputOrder, topic: str) -> int:
        pause_at = time.perf_counter() + DETECT_SLICE_SECONDS
        handled = 0
        while (item := order.next()) is not None:
            partition, message, decoded = item
            await self.handle(message.value, message.key, topic, partition, message.offset, decoded)
            handled += 1
            if time.perf_counter() > pause_at:  # let heartbeats, timers and other stages run
                await asyncio.sleep(0)
                pause_at = time.perf_counter() + DETECT_SLICE_SECONDS
            if len(self.pending) >= OBSERVATION_BATCH:
                await self.flush_summaries(order)
        return handled

    async def flush_summaries(self, order: InputOrder) -> None:
        """The waiting summaries and the progress of every assigned partition, in one message.

        One flush at a time, each until the producer has its message: the timer's flush and the
        batch's may overlap, and a big message waits for room in the producer's batch while a small
        one taken after it can slip in first. The campaign stage would then read a later progress
        before the summaries it covers, move its clock past them and send the clock news before
        their membership changes, and the detect steps decide alerts without those (a backlog drained
        on a busy machine paged three campaign members alone: tests/integration/test_catch_up.py).
        """
        async with self.flushing:
            partitions = list(order.queues)
            if not partitions and not self.pending:
                return
            watermarks = self.watermarks
            progress = [
                Progress(partition, watermarks.get(partition, float("-inf")), order.drained(partition))
                for partition in partitions
            ]
            summaries, self.pending = self.pending, []
            for message in encode_summary_messages(summaries, progress):
                await self.sink.send(self.settings.summaries_topic, message, partition=0)

    async def apply_news(self, key: bytes | None, value: bytes | None) -> None:
        """A membership change (the account's next alert names its campaign), or the campaign clock:
        the alert decisions it releases are sent."""
        if value is None:  # a tombstone: nothing to learn
            return
        news = decode_news(key, value)
        if isinstance(news, tuple):
            membership, announced = news
            self.detector.apply_memberships([membership], [announced])
            return
        for alert_key, event in self.encode_alerts(self.detector.decide(news)):
            await self.sink.send(self.settings.alerts_topic, event, key=alert_key)

    def refresh_gauges(self) -> None:
        """Update the gauges that describe state rather than events."""
        detector, metrics = self.detector, self.metrics
        metrics.accounts_tracked.set(len(detector.profiles))
        evicted = detector.stats.accounts_evicted - self._evicted_reported
        if evicted > 0:
            metrics.accounts_evicted.inc(evicted)
            self._evicted_reported += evicted
        metrics.open_alerts.set(len(detector.alerts.open))
        if detector.watermark > 0:
            metrics.watermark.set(detector.watermark)


class CampaignStep:
    """The campaign stage on the summaries topic: campaign alerts (paced in wall time), membership
    changes on the public membership topic, and the news (membership and clock) for the detect steps."""

    def __init__(
        self,
        stage: OrderedCampaigns,
        settings: Settings,
        sink: Sink,
        encode_alerts: AlertEncoder,
        pacer: UpdatePacer,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stage = stage
        self.settings = settings
        self.sink = sink
        self.encode_alerts = encode_alerts
        self.pacer = pacer
        self.clock = clock
        self._last_message: float | None = None
        """When the latest summaries arrived (None: swept since)."""
        self._clock_sent = float("-inf")
        self.publishing = asyncio.Lock()
        """Held from a stage call until its output is with the producer: a clock read by one
        publication must not go out before the membership changes of another (see :meth:`publish`)."""

    async def handle(self, value: bytes) -> None:
        summaries, progress = decode_summaries(value)
        self._last_message = self.clock()
        async with self.publishing:
            await self.publish(self.stage.handle(summaries, progress))

    async def publish(self, merged: Merged) -> None:
        """Send what a stage call made: alerts, membership changes, then the clock they bring the
        news to. Callers hold :attr:`publishing` over the stage call and this: the clock read here is
        the stage's, and news of a clock that another call moved, sent ahead of that call's
        membership changes, would let the detect steps decide before hearing of them."""
        now = self.clock()
        await self._send_alerts(
            [paced for alert in merged.alerts if (paced := self.pacer.offer(alert, now)) is not None]
        )
        send, settings = self.sink.send, self.settings
        announced = merged.announced or [self.stage.stages.merge.watermark] * len(merged.memberships)
        for membership, at in zip(merged.memberships, announced, strict=True):
            await send(settings.membership_topic, encode_membership(membership), key=membership.account_id.encode())
            key, value = encode_news_membership(membership, at)
            await send(settings.news_topic, value, key=key, partition=0)
        clock = self.stage.clock
        if clock > self._clock_sent:  # after the memberships it covers, on the same partition
            self._clock_sent = clock
            key, value = encode_news_clock(clock)
            await send(settings.news_topic, value, key=key, partition=0)

    async def send_due(self) -> None:
        """Campaign updates held back by the pacer go out when their turn comes; once the input has
        stopped (every partition drained) and the summaries have been quiet for
        :data:`IDLE_SWEEP_SECONDS`, the stage sweeps at the event time it reached. A pause while
        partitions still hold records is no end of input: sweeping then would page a campaign earlier in
        event time than replay does."""
        now = self.clock()
        quiet = self._last_message is not None and now - self._last_message >= IDLE_SWEEP_SECONDS
        if quiet and self.stage.merger.drained:  # not while a slow partition holds summaries back
            self._last_message = None
            async with self.publishing:
                await self.publish(self.stage.stages.merge.sweep())
        await self._send_alerts(self.pacer.due(now))

    async def drain(self) -> None:
        """Every held-back update, at shutdown."""
        await self._send_alerts(self.pacer.drain())

    async def _send_alerts(self, alerts: list[Alert]) -> None:
        for key, event in self.encode_alerts(alerts):
            await self.sink.send(self.settings.alerts_topic, event, key=key)


class Snapshots:
    """The local snapshot (restarts on this disk) and the changed profiles (other workers)."""

    def __init__(
        self,
        settings: Settings,
        detect: DetectStep,
        handover: AccountHandover,
        metrics: DetectorMetrics,
        pause: Callable[[], Awaitable[object]] = lambda: asyncio.sleep(0),
    ):
        """``pause``: awaited between the parts of the snapshot, so records flow in between."""
        self.settings = settings
        self.detect = detect
        self.handover = handover
        self.metrics = metrics
        self.pause = pause

    async def take(self, order: InputOrder, flush: Callable[[], Awaitable[object]]) -> dict[int, int]:
        """A checkpoint of the detect stage; the input offsets it covers, for the caller to commit.

        Records wait meanwhile (the snapshot is a consistent cut: ~25 ms per 20,000 accounts), and
        ``flush`` (the producers') runs before the snapshot is renamed into place and after the
        profiles are published: every record the saved state holds has its summaries and alerts with
        the brokers, so a restart that skips it (see ``position`` in ``Detector.process``) loses nothing.
        """
        detector = self.detect.detector
        order.pauses += 1
        try:
            async with self.detect.busy:
                await self.detect.flush_summaries(order)
                offsets = dict(order.processed_to)
                parts = []
                for part in snapshot_parts(detector):
                    parts.append(part)
                    await self.pause()  # heartbeats and the news go on; records wait
                await flush()
                size = await asyncio.to_thread(write_atomically, self.settings.snapshot_path, parts)
                published = await self.handover.publish()
                await flush()
        finally:
            order.pauses -= 1
        self.metrics.accounts_published.inc(published)
        log.info(
            "state snapshot: %d accounts, %d bytes; %d changed profiles published",
            len(detector.profiles),
            size,
            published,
        )
        return offsets

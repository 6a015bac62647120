"""The worker's named pieces: each stage of :mod:`detector.detection.stages` with its topics.

Each piece takes a message's bytes, calls its stage handler and hands what comes out to a
:class:`Sink`. None imports Faust or needs a broker: ``create_app`` (``detector/stream/app.py``)
connects them to Faust topics and consumers, and the unit tests to a :class:`RecordingSink`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

import orjson

from detector.detection.alerting import Alert, UpdatePacer
from detector.detection.campaigns import AttributeObservation, Link, Membership
from detector.detection.core import Detector
from detector.detection.stages import (
    DetectStage,
    Linked,
    LinkStage,
    Merged,
    MergeStage,
    decode_membership,
    encode_membership,
)
from detector.stream.config import Settings
from detector.stream.handover import AccountHandover
from detector.stream.metrics import DetectorMetrics
from detector.stream.state import snapshot_parts, write_atomically

log = logging.getLogger(__name__)

DETECT_SLICE_SECONDS = 0.05
"""The detect step yields the event loop (heartbeats, timers, the other stages) this often inside a
batch: 500 envelopes of 200 records are seconds of work."""
IDLE_SWEEP_SECONDS = 2.0
"""The merge step sweeps at its newest event time once the links topic has been quiet this long
(see :meth:`MergeStage.sweep <detector.detection.stages.MergeStage.sweep>`)."""
OBSERVATION_BATCH = 1000
"""Account summaries go to the link stage in batches: a message per partition per input message
would double Faust's per-message cost; campaigns can wait half a second (the app's flush timer)."""


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


# -- the internal topics' wire forms: JSON arrays of the NamedTuples' fields ---------------------


def encode_observations(observations: Iterable[AttributeObservation]) -> bytes:
    return orjson.dumps([list(observation) for observation in observations])


def decode_observations(value: bytes) -> list[AttributeObservation]:
    return [AttributeObservation(*fields) for fields in orjson.loads(value)]


def encode_links(linked: Linked) -> bytes:
    """Links with the event time the link stage reached: the merge stage sees no records, and
    resolves idle campaigns by this clock (sent on each sweep even without links)."""
    return orjson.dumps({"links": [list(link) for link in linked.links], "watermark": linked.watermark})


def decode_links(value: bytes) -> tuple[list[Link], float]:
    message = orjson.loads(value)
    return [Link(*fields) for fields in message["links"]], message["watermark"]


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


class DetectStep:
    """The detect stage on the input topic: alerts and dead letters sent per message, account
    summaries batched for the attributes topic, membership news taken in from the membership topic."""

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
        self.pending: list[AttributeObservation] = []
        """Account summaries waiting to go to the link stage."""
        self._evicted_reported = stage.detector.stats.accounts_evicted

    @property
    def detector(self) -> Detector:
        return self.stage.detector

    async def handle(self, value: bytes | None, key: bytes | None, topic: str, partition: int, offset: int) -> None:
        """Detect over one input message and send its alerts and dead letters."""
        started = time.perf_counter()
        metrics = self.metrics
        metrics.messages.inc()
        detected = self.stage.handle(value or b"", topic=topic, partition=partition, offset=offset)
        if detected.requests:
            metrics.records_accepted.inc(len(detected.requests))
            changed = self.changed
            for request in detected.requests:
                changed[request.account_id] = partition
        if detected.observations:
            self.pending.extend(detected.observations)
        send = self.sink.send
        for alert_key, event in self.encode_alerts(detected.alerts):
            await send(self.settings.alerts_topic, event, key=alert_key)
        for dead_letter in detected.dead_letters:
            metrics.rejections.labels(dead_letter.reason).inc()
            await send(self.settings.dlq_topic, dead_letter.value, key=key)
        metrics.batch_seconds.observe(time.perf_counter() - started)

    async def handle_batch(self, batches: Mapping[object, Sequence[InputMessage]]) -> None:
        """One ``getmany`` result (topic-partition → messages), yielding the event loop every
        :data:`DETECT_SLICE_SECONDS`; the summaries go out once :data:`OBSERVATION_BATCH` wait."""
        pause_at = time.perf_counter() + DETECT_SLICE_SECONDS
        for source, messages in batches.items():
            topic, partition = source.topic, source.partition  # type: ignore[attr-defined]
            for message in messages:
                await self.handle(message.value, message.key, topic, partition, message.offset)
                if time.perf_counter() > pause_at:  # let heartbeats, timers and other stages run
                    await asyncio.sleep(0)
                    pause_at = time.perf_counter() + DETECT_SLICE_SECONDS
        if len(self.pending) >= OBSERVATION_BATCH:
            await self.flush_observations()

    async def flush_observations(self) -> None:
        """The waiting summaries, one message per attributes-topic partition; first, what the records
        that waited ``reorder_seconds`` of wall time for a newer one made (``DetectStage.release_due``)."""
        released = self.stage.release_due()
        self.pending.extend(released.observations)
        for alert_key, event in self.encode_alerts(released.alerts):
            await self.sink.send(self.settings.alerts_topic, event, key=alert_key)
        if not self.pending:
            return
        partitions = self.settings.partitions
        by_partition: dict[int, list[AttributeObservation]] = {}
        for observation in self.pending:
            # Only this app reads the attributes topic: any stable hash routes an attribute to one
            # partition, and crc32 is ~20x cheaper than Kafka's pure-Python murmur2.
            by_partition.setdefault(zlib.crc32(observation.attribute.encode()) % partitions, []).append(observation)
        self.pending = []
        for partition, observations in by_partition.items():
            await self.sink.send(self.settings.attributes_topic, encode_observations(observations), partition=partition)

    def apply_membership(self, key: bytes | None, value: bytes | None) -> None:
        """Membership news from the membership topic: the account's next alert names its campaign.

        Values of the release before ``membership.v1`` (``{"campaign_id", "since"}``, the account in the
        key) may still be on the compacted topic: they are read too, so an upgrade forgets no campaign.
        """
        if value is None:  # a tombstone: nothing to learn
            return
        try:
            membership = decode_membership(value)
        except ValueError:
            log.warning("membership topic: skipped a value that is not JSON: %r", value[:200])
            return
        except KeyError:
            fields = orjson.loads(value)
            if key is None or "campaign_id" not in fields:
                log.warning("membership topic: skipped a value that is not membership.v1: %r", value[:200])
                return
            membership = Membership(key.decode(), fields["campaign_id"], float(fields["since"]))
        self.detector.apply_memberships([membership])

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
            metrics.event_lag.set(time.time() - detector.watermark)


class LinkStep:
    """The link stage on the attributes topic: links (and sweeps) to the one-partition links topic."""

    def __init__(self, stage: LinkStage, settings: Settings, sink: Sink):
        self.stage = stage
        self.settings = settings
        self.sink = sink

    async def handle(self, value: bytes) -> None:
        observations = decode_observations(value)
        newest = max((observation.timestamp for observation in observations), default=float("-inf"))
        linked = self.stage.handle(observations, newest)
        if linked.links or linked.swept:
            await self.sink.send(self.settings.links_topic, encode_links(linked), partition=0)


class MergeStep:
    """The merge stage on the links topic: campaign alerts, paced in wall time, and membership changes."""

    def __init__(
        self,
        stage: MergeStage,
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
        """When the latest links message arrived (None: swept since)."""

    async def handle(self, value: bytes) -> None:
        links, watermark = decode_links(value)
        self._last_message = self.clock()
        await self.publish(self.stage.handle(links, watermark))

    async def publish(self, merged: Merged) -> None:
        now = self.clock()
        await self._send_alerts(
            [paced for alert in merged.alerts if (paced := self.pacer.offer(alert, now)) is not None]
        )
        for membership in merged.memberships:
            await self.sink.send(
                self.settings.membership_topic, encode_membership(membership), key=membership.account_id.encode()
            )

    async def send_due(self) -> None:
        """Campaign updates held back by the pacer go out when their turn comes; once the links topic
        has been quiet for :data:`IDLE_SWEEP_SECONDS`, the stage sweeps at the event time it reached."""
        now = self.clock()
        if self._last_message is not None and now - self._last_message >= IDLE_SWEEP_SECONDS:
            self._last_message = None
            await self.publish(self.stage.sweep())
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

    async def take(self) -> None:
        detector = self.detect.detector
        parts = []
        for part in snapshot_parts(detector):  # ~25 ms each
            parts.append(part)
            await self.pause()
        size = await asyncio.to_thread(write_atomically, self.settings.snapshot_path, parts)
        published = await self.handover.publish()
        self.metrics.accounts_published.inc(published)
        log.info(
            "state snapshot: %d accounts, %d bytes; %d changed profiles published",
            len(detector.profiles),
            size,
            published,
        )

"""The Faust application: the only module that imports Faust.

Topology (every stage a named piece of ``detector/stream/steps.py`` around a handler of
``detector/detection/stages.py``; this module only connects them to topics and consumers):

* ``detect`` on ``llm.requests`` (raw bytes: one record, a JSON array or NDJSON; read in batches by
  a Faust task with its own consumer group, ``<app_id>-detect``) → validation →
  :class:`~detector.detection.core.Detector` → account alerts on ``llm.alerts``; rejected records to
  ``llm.requests.dlq`` with their reason and topic/partition/offset; account summaries to the
  internal attributes topic, routed by attribute. Records must be keyed by ``account_id`` so
  each account's records reach one worker, in order.
* ``link`` on the attributes topic → :class:`~detector.detection.stages.LinkStage` → links to the
  internal one-partition links topic.
* ``merge`` on the links topic → :class:`~detector.detection.stages.MergeStage` → campaign alerts on
  ``llm.alerts`` and membership updates (``membership.v1``) on the compacted ``llm.campaign-members``.
* every worker follows the whole membership topic, so account alerts carry their campaign id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError
from aiokafka.helpers import create_ssl_context
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import CollectorRegistry

from detector.detection.alerting import UpdatePacer
from detector.detection.core import Detector
from detector.detection.stages import DetectStage, LinkStage, MergeStage
from detector.stream.config import Settings
from detector.stream.handover import AccountHandover
from detector.stream.metrics import DetectorMetrics
from detector.stream.state import load as load_state
from detector.stream.steps import AlertEncoder, DetectStep, LinkStep, MergeStep, Snapshots

log = logging.getLogger(__name__)

DETECT_BATCH = 500
"""Input messages per fetch of the detect stage."""
FETCH_BYTES_PER_PARTITION = 8 * 1024 * 1024
"""Faust's 1 MiB per partition is ~6 envelopes of 200 records: the worker idled 30-45% between
fetches; 8 MiB gave +39% with envelopes in the bench (docs/performance.md)."""
OBSERVATION_FLUSH_SECONDS = 0.5
"""Account summaries wait at most this long for the link stage (see ``steps.OBSERVATION_BATCH``)."""


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer with the fetch wait of the app's settings instead of its hard-coded 1,500 ms.

    The embedded broker (and any broker on an idle partition) holds a fetch for that long, and
    a campaign alert crosses three stages: p99 latency was 4.9 s at 2,000 records/s, 0.76 s with
    100 ms (docs/performance.md, (g)).
    """

    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        if not hasattr(consumer, "_fetch_max_wait_ms"):  # an aiokafka upgrade renamed it: fail loudly
            raise RuntimeError("aiokafka.AIOKafkaConsumer has no _fetch_max_wait_ms to override")
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self):
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class KafkaTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport, but for the fetch wait (``DETECTOR_FETCH_MAX_WAIT_MS``)."""

    Consumer = _Consumer


TRANSPORT_SCHEME = "detector-kafka"
TRANSPORTS.aliases[TRANSPORT_SCHEME] = f"{__name__}:KafkaTransport"


def _ssl_context(settings: Settings):
    return create_ssl_context(
        cafile=settings.ssl_cafile or None, certfile=settings.ssl_certfile or None, keyfile=settings.ssl_keyfile or None
    )


def aiokafka_security(settings: Settings) -> dict:
    """The same security settings, for the plain aiokafka clients beside Faust."""
    options: dict = {"security_protocol": settings.security_protocol}
    if settings.security_protocol.endswith("SSL"):
        options["ssl_context"] = _ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return options


def heartbeat_interval_s(settings: Settings) -> float:
    return max(settings.session_timeout_s / 10.0, 0.5)


def broker_credentials(settings: Settings):
    """Faust credentials for the configured security protocol, or None for PLAINTEXT."""
    if settings.security_protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if settings.security_protocol.endswith("SSL"):
        ssl_context = _ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context)


class ProfileSender:
    """Publishes profiles with a plain aiokafka producer, a batch per state partition.

    Through Faust's producer each profile was one ``send`` (~16 µs, a future per message);
    built into batches they cost ~4 µs here (``bench/publish_profiles.py``: 3.96 ×).
    """

    BATCH_BYTES = 512 * 1024
    """Under the brokers' default 1 MB message limit: ~1,700 profiles a batch."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._stopped = False

    async def __call__(self, topic: str, partition: int, messages: list[tuple[bytes, bytes]]) -> None:
        if self._stopped:
            log.warning("%d profiles not published: the worker is shutting down", len(messages))
            return
        producer = await self._started()
        batch = producer.create_batch()
        for key, value in messages:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                await producer.send_batch(batch, topic, partition=partition)
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        await producer.send_batch(batch, topic, partition=partition)

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap_servers,
                acks="all",
                max_batch_size=self.BATCH_BYTES,
                client_id=f"{self.settings.app_id}-state",
                **aiokafka_security(self.settings),
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def flush(self) -> None:
        """Wait until the brokers have every profile handed over so far."""
        if self._producer is not None:
            await self._producer.flush()

    async def stop(self) -> None:
        self._stopped = True
        if self._producer is not None:
            await self._producer.stop()  # sends what is pending first


@dataclass
class WorkerPieces:
    """The named pieces ``create_app`` connects: each usable, and tested, without a broker."""

    detect: DetectStep
    link: LinkStep
    merge: MergeStep
    snapshots: Snapshots
    handover: AccountHandover
    profile_sender: ProfileSender


class DetectorApp(faust.App):
    """The Faust app, with the detector's own settings and pieces declared rather than attached."""

    fetch_max_wait_ms: int
    """How long the consumers Faust builds wait for a fetch (read by :class:`_ConsumerThread`)."""
    metrics_registry: CollectorRegistry
    """The registry the worker's metrics endpoint serves."""
    pieces: WorkerPieces

    def __init__(self, id: str, *, fetch_max_wait_ms: int, metrics_registry: CollectorRegistry, **options):
        super().__init__(id, **options)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.metrics_registry = metrics_registry


class FaustSink:
    """The pieces' :class:`~detector.stream.steps.Sink`: the app's topics, by name."""

    def __init__(self, topics: dict[str, faust.types.TopicT]):
        self.topics = topics

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None) -> None:
        await self.topics[topic].send(key=key, value=value, partition=partition)


def faust_settings(settings: Settings, **overrides) -> dict:
    """Faust's settings for these detector settings; ``overrides`` win (tests shorten timeouts)."""
    servers = settings.bootstrap_servers.split(",")
    return (
        dict(
            broker=",".join(f"kafka://{server}" for server in servers),
            broker_consumer=",".join(f"{TRANSPORT_SCHEME}://{server}" for server in servers),
            broker_credentials=broker_credentials(settings),
            store="memory://",
            datadir=settings.data_dir,
            web_enabled=False,
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            consumer_auto_offset_reset=settings.auto_offset_reset,
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=heartbeat_interval_s(settings),
            producer_acks=-1,
            consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
            key_serializer="raw",
            value_serializer="raw",
        )
        | overrides
    )


def declare_topics(app: faust.App, settings: Settings, account_ttl_s: float) -> dict[str, faust.types.TopicT]:
    """Every topic the worker writes, by name, declared with the detector's partitions."""

    def topic(name: str, partitions: int = settings.partitions, **options) -> faust.types.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, partitions=partitions, internal=True, **options)

    return {
        settings.alerts_topic: topic(settings.alerts_topic),
        settings.dlq_topic: topic(settings.dlq_topic),
        settings.attributes_topic: topic(settings.attributes_topic),
        settings.links_topic: topic(settings.links_topic, partitions=1),
        settings.membership_topic: topic(settings.membership_topic, compacting=True),
        settings.state_topic: topic(settings.state_topic, compacting=True, deleting=True, retention=account_ttl_s),
    }


def input_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The detect stage's consumer: batches of the input topic in its own group, offsets committed by hand."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.detect_group,
        client_id=settings.detect_group,
        enable_auto_commit=False,
        auto_offset_reset=settings.auto_offset_reset,
        max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_poll_records=DETECT_BATCH,
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(heartbeat_interval_s(settings) * 1000),
        **aiokafka_security(settings),
    )


def groupless_consumer(settings: Settings, *topics: str) -> AIOKafkaConsumer:
    """A consumer outside any group, from the earliest offset: for the membership and state topics."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        **aiokafka_security(settings),
    )


class HandOverOnRebalance(ConsumerRebalanceListener):
    """Account profiles follow their input partitions (see :mod:`detector.stream.handover`)."""

    def __init__(self, app: DetectorApp, state_topic: faust.types.TopicT, metrics: DetectorMetrics):
        self.app = app
        self.state_topic = state_topic
        self.metrics = metrics

    async def on_partitions_revoked(self, revoked):
        pieces = self.app.pieces
        published = await pieces.handover.on_revoked(tp.partition for tp in revoked)
        await pieces.profile_sender.flush()  # the next owner reads them as soon as it is assigned
        await self.app.producer.flush()
        self.metrics.accounts_published.inc(published)

    async def on_partitions_assigned(self, assigned):
        await self.state_topic.maybe_declare()
        self.metrics.accounts_adopted.inc(await self.app.pieces.handover.on_assigned(tp.partition for tp in assigned))


def restored_detector(settings: Settings) -> Detector:
    """A detector with the policy of ``settings``, and the state of the local snapshot if there is one."""
    detector = Detector(settings.policy())
    if load_state(detector, settings.snapshot_path):
        log.info("restored %d account profiles from %s", len(detector.profiles), settings.snapshot_path)
    return detector


def create_app(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    detector: Detector | None = None,
    **faust_overrides,
) -> DetectorApp:
    """Build the worker: the named pieces, connected to the app's topics; ``faust_overrides`` are Faust settings."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = DetectorMetrics.create(registry)
    detector = detector if detector is not None else restored_detector(settings)
    app = DetectorApp(
        settings.app_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        metrics_registry=registry,
        **faust_settings(settings, **faust_overrides),
    )
    topics = declare_topics(app, settings, detector.policy.account_ttl_hours * 3600.0)
    sink = FaustSink(topics)
    encode_alerts = AlertEncoder(settings, metrics)
    detect = DetectStep(DetectStage(detector, wall_clock=time.time), settings, metrics, sink, encode_alerts)
    pacer = UpdatePacer(settings.campaign_update_interval_s, on_superseded=metrics.campaign_updates_superseded.inc)
    profile_sender = ProfileSender(settings)
    handover = AccountHandover(
        detector,
        settings.state_topic,
        settings.partitions,
        send=profile_sender,
        reader=lambda: groupless_consumer(settings),
        changed=detect.changed,
    )
    app.pieces = WorkerPieces(
        detect=detect,
        link=LinkStep(LinkStage(), settings, sink),
        merge=MergeStep(MergeStage(), settings, sink, encode_alerts, pacer),
        snapshots=Snapshots(settings, detect, handover, metrics),
        handover=handover,
        profile_sender=profile_sender,
    )
    _run_pieces(app, settings, topics, metrics)
    return app


def _run_pieces(app: DetectorApp, settings: Settings, topics: dict, metrics: DetectorMetrics) -> None:
    """The agents, tasks and timers that feed the pieces."""
    pieces = app.pieces

    @app.task
    async def detect():
        """The per-account stage reads the input in batches with a plain aiokafka consumer.

        A Faust agent awaits a task and a future per message (~250 µs here): one record per
        message topped out at ~3-4k records/s with the detection core at a fifth of the CPU
        (docs/performance.md, (b)). Offsets are committed after a batch's alerts and dead
        letters are acknowledged by the brokers: at least once, like the agent it replaces.
        """
        consumer = input_consumer(settings)
        consumer.subscribe(
            [settings.input_topic], listener=HandOverOnRebalance(app, topics[settings.state_topic], metrics)
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                if not batches:
                    continue
                await pieces.detect.handle_batch(batches)
                await app.producer.flush()
                try:
                    await consumer.commit()
                except CommitFailedError:  # a rebalance took the partitions: their new owner re-reads the batch
                    log.warning("detect: offsets not committed, partitions were reassigned during the batch")
        finally:
            await consumer.stop()

    @app.timer(interval=OBSERVATION_FLUSH_SECONDS)
    async def flush_observations():
        await pieces.detect.flush_observations()

    @app.agent(topics[settings.attributes_topic], name="link")
    async def link(stream):
        async for value in stream:
            await pieces.link.handle(value)

    @app.agent(topics[settings.links_topic], name="merge")
    async def merge(stream):
        async for value in stream:
            await pieces.merge.handle(value)

    @app.timer(interval=1.0)
    async def send_waiting_campaign_updates():
        await pieces.merge.send_due()

    @app.task
    async def follow_memberships():
        """Every worker reads the whole membership topic (no consumer group): small, and it
        lets account alerts carry their campaign id whichever worker owns the account."""
        consumer = groupless_consumer(settings, settings.membership_topic)
        await consumer.start()
        try:
            async for message in consumer:
                pieces.detect.apply_membership(message.key, message.value)
        finally:
            await consumer.stop()

    @app.timer(interval=5.0)
    async def refresh_gauges():
        pieces.detect.refresh_gauges()

    if settings.snapshot_interval_s:

        @app.timer(interval=settings.snapshot_interval_s)
        async def periodic_snapshot():
            await pieces.snapshots.take()

    @app.on_before_shutdown.connect
    async def final_snapshot(app, **kwargs):
        await pieces.merge.drain()
        await pieces.snapshots.take()
        await pieces.profile_sender.stop()
        await app.producer.flush()

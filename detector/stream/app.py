"""The Faust application: the only module that imports Faust.

Topology (every stage a named piece of ``detector/stream/steps.py`` around a handler of
``detector/detection/stages.py``; this module only connects them to topics and consumers):

* ``detect`` on ``llm.requests`` (raw bytes: one record, a JSON array or NDJSON; read in batches by
  a Faust task with its own consumer group, ``<app_id>-detect``), message by message in event-time
  order across its partitions (:class:`~detector.stream.steps.InputOrder`) → validation →
  :class:`~detector.detection.core.Detector` → rejected records to ``llm.requests.dlq`` with their
  reason and topic/partition/offset; account summaries and each partition's progress to the internal
  one-partition summaries topic. Records must be keyed by ``account_id`` so each account's records
  reach one worker, in order.
* ``campaigns`` on the summaries topic (its own group, one member at a time) →
  :class:`~detector.detection.stages.OrderedCampaigns`: summaries in event-time order up to the
  slowest input partition, through the link and merge stages → campaign alerts on ``llm.alerts``,
  membership updates (``membership.v1``) on the compacted ``llm.campaign-members``, and the same
  changes with the campaign clock on the internal news topic.
* every worker follows the news topic: an account's alert decision waits until the campaign clock
  has passed its time, then pages, folds into its campaign or resolves, as replay would decide it.

Crashes: the detect step commits input offsets only at checkpoints, after the profiles, summaries and
alerts of the records before them are with the brokers; the campaign stage checkpoints its state
with the summaries offset it covers (``detector/stream/checkpoints.py``). See the README's delivery
section for what holds after a crash, a rebalance and a broker outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import OffsetAndMetadata
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import CollectorRegistry

from detector.detection.alerting import UpdatePacer
from detector.detection.core import Detector
from detector.detection.stages import DetectStage, OrderedCampaigns
from detector.stream.broker_health import BrokerMonitor, Watchdog, WorkerHealth
from detector.stream.checkpoints import Checkpoint, CheckpointReader, checkpoint_messages
from detector.stream.config import Settings
from detector.stream.handover import AccountHandover, stop_quietly
from detector.stream.lag import InputProgress
from detector.stream.metrics import DetectorMetrics
from detector.stream.state import load as load_state
from detector.stream.steps import AlertEncoder, CampaignStep, DetectStep, InputOrder, Snapshots

log = logging.getLogger(__name__)

DETECT_BATCH = 500
"""Input messages per fetch of the detect stage."""
FETCH_BYTES_PER_PARTITION = 8 * 1024 * 1024
"""Faust's 1 MiB per partition is ~6 envelopes of 200 records: the worker idled 30-45% between
fetches; 8 MiB gave +39% with envelopes in the bench (docs/performance.md)."""
OBSERVATION_FLUSH_SECONDS = 0.5
"""Account summaries wait at most this long for the campaign stage (see ``steps.OBSERVATION_BATCH``)."""
HEALTH_CHECK_SECONDS = 1.0
"""How often the broker is asked whether it answers, and the input lag and watchdog updated."""
BUFFERED_MESSAGES = 4 * DETECT_BATCH
"""Fetched messages a partition may hold waiting for slower ones before its fetching pauses."""


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
    campaign: CampaignStep
    snapshots: Snapshots
    handover: AccountHandover
    profile_sender: ProfileSender
    order: InputOrder
    health: WorkerHealth


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
        self.early_tasks: list[Callable[[], Awaitable]] = []
        """Started with the app, not after Faust's own group has joined as ``@app.task``s are: a
        consumer group join took 15 s on the embedded broker (half the session timeout), and the
        input consumer's join waited for Faust's (``bench/start_time.py``). They must await
        :attr:`fully_started` before they touch Faust's producer or topics."""
        self.fully_started = asyncio.Event()

    async def on_start(self) -> None:
        await super().on_start()
        for task in self.early_tasks:
            self.add_future(task())

    async def on_started(self) -> None:
        await super().on_started()
        self.fully_started.set()


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
        settings.summaries_topic: topic(settings.summaries_topic, partitions=1),
        settings.news_topic: topic(settings.news_topic, partitions=1, compacting=True),
        settings.campaign_state_topic: topic(settings.campaign_state_topic, partitions=1, compacting=True),
        settings.membership_topic: topic(settings.membership_topic, compacting=True),
        settings.state_topic: topic(settings.state_topic, compacting=True, deleting=True, retention=account_ttl_s),
    }


def input_consumer(settings: Settings, group_id: str | None = None) -> AIOKafkaConsumer:
    """A stage's consumer in its own group (the detect stage's by default), offsets committed by hand."""
    group_id = group_id or settings.detect_group
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group_id,
        client_id=group_id,
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
    """Account profiles follow their input partitions (see :mod:`detector.stream.handover`); the
    offsets of a partition that leaves are committed where its published profiles stand."""

    def __init__(
        self, app: DetectorApp, consumer: AIOKafkaConsumer, state_topic: faust.types.TopicT, metrics: DetectorMetrics
    ):
        self.app = app
        self.consumer = consumer
        self.state_topic = state_topic
        self.metrics = metrics

    async def on_partitions_revoked(self, revoked):
        if not revoked:  # before the first join: nothing to hand over, and Faust's producer may not run yet
            return
        await self.app.fully_started.wait()
        pieces = self.app.pieces
        partitions = [tp.partition for tp in revoked]
        pieces.order.pauses += 1
        try:
            async with pieces.detect.busy:
                processed = pieces.order.processed_to
                offsets = {tp: processed[tp.partition] for tp in revoked if tp.partition in processed}
                await pieces.detect.flush_summaries(pieces.order)  # the summaries of what was processed
                pieces.order.revoke(partitions)
                published = await pieces.handover.on_revoked(partitions)
                await pieces.profile_sender.flush()  # the next owner reads them as soon as it is assigned
                await self.app.producer.flush()
        finally:
            pieces.order.pauses -= 1
        self.metrics.accounts_published.inc(published)
        await _commit(self.consumer, offsets)

    async def on_partitions_assigned(self, assigned):
        await self.app.fully_started.wait()  # the group may be joined before Faust's producer runs
        await self.state_topic.maybe_declare()
        pieces = self.app.pieces
        pieces.order.pauses += 1  # the new partitions' messages wait for their accounts' profiles
        try:
            async with pieces.detect.busy:
                self.metrics.accounts_adopted.inc(await pieces.handover.on_assigned(tp.partition for tp in assigned))
                pieces.order.assign({tp.partition: await self.consumer.position(tp) for tp in assigned})
        finally:
            pieces.order.pauses -= 1


async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    """Commit ``offsets`` of partitions still assigned; a rebalance in between leaves them to the next owner."""
    owned = consumer.assignment()
    offsets = {tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items() if tp in owned}
    if not offsets:
        return
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, KafkaError) as error:
        log.warning("offsets not committed (%s): the partitions' next owner re-reads from the last checkpoint", error)


class CampaignCheckpoints(ConsumerRebalanceListener):
    """The campaign stage's state, restored from its checkpoint topic when the stage's partition is
    assigned and checkpointed when it is revoked (see :mod:`detector.stream.checkpoints`)."""

    def __init__(self, app: DetectorApp, settings: Settings, consumer: AIOKafkaConsumer):
        self.app = app
        self.settings = settings
        self.consumer = consumer
        self.owned = False
        self.position = 0
        """The summaries offset after the last message the stage took in."""
        self.generation = 0
        self.busy = asyncio.Lock()
        """Held while a message is taken in and its output handed to the producer: a checkpoint waits."""

    def _partition(self) -> TopicPartition:
        return TopicPartition(self.settings.summaries_topic, 0)

    async def on_partitions_revoked(self, revoked):
        if self.owned and self._partition() in revoked:
            await self.app.fully_started.wait()
            await self.save()
            self.owned = False

    async def on_partitions_assigned(self, assigned):
        if self._partition() not in assigned:
            return
        await self.app.fully_started.wait()
        checkpoint = await self._read()
        step = self.app.pieces.campaign
        step.stage = OrderedCampaigns(step.stage.merger.partitions, step.stage.stages.link.index.policy)
        if checkpoint is None:
            self.position = 0
            log.info("campaign stage: no checkpoint, reading the summaries from the beginning")
        else:
            step.stage.restore(checkpoint.state)
            self.position, self.generation = checkpoint.offset, checkpoint.generation
            log.info(
                "campaign stage: restored checkpoint %d (%d campaigns), resuming at summaries offset %d",
                checkpoint.generation,
                len(step.stage.stages.merge.book.campaigns),
                checkpoint.offset,
            )
        self.consumer.seek(self._partition(), self.position)
        self.owned = True

    async def _read(self) -> Checkpoint | None:
        reader = CheckpointReader()
        partition = TopicPartition(self.settings.campaign_state_topic, 0)
        consumer = groupless_consumer(self.settings)
        await consumer.start()
        try:
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            while True:
                batches = await consumer.getmany(partition, timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        reader.add(message.key, message.value)
                if not batches and await consumer.position(partition) >= end:
                    break
        finally:
            await stop_quietly(consumer)
        return reader.latest()

    async def save(self) -> None:
        """Checkpoint the stage at the position it reached, then commit that offset (for lag)."""
        if not self.owned:
            return
        async with self.busy:
            self.generation += 1
            checkpoint = Checkpoint(self.generation, self.position, self.app.pieces.campaign.stage.snapshot())
            await self.app.producer.flush()  # what the state has sent (alerts, memberships, news) is with the brokers
        topic = self.settings.campaign_state_topic
        for message in checkpoint_messages(checkpoint):  # one batch each: chunks are ~a batch's size
            await self.app.pieces.profile_sender(topic, 0, [message])
        await self.app.pieces.profile_sender.flush()
        await _commit(self.consumer, {self._partition(): checkpoint.offset})


def restored_detector(settings: Settings) -> Detector:
    """A detector with the policy of ``settings``, and the state of the local snapshot if there is one."""
    detector = Detector(settings.policy(), wait_for_campaigns=True)
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
        campaign=CampaignStep(
            OrderedCampaigns(settings.partitions, detector.policy.campaigns), settings, sink, encode_alerts, pacer
        ),
        snapshots=Snapshots(settings, detect, handover, metrics),
        handover=handover,
        profile_sender=profile_sender,
        order=InputOrder(),
        health=WorkerHealth(
            BrokerMonitor(settings, metrics.broker_up),
            InputProgress(metrics.input_lag_records, metrics.input_lag_seconds),
            Watchdog(settings.stall_timeout_s),
        ),
    )
    _run_pieces(app, settings, topics, metrics)
    return app


def _run_pieces(app: DetectorApp, settings: Settings, topics: dict, metrics: DetectorMetrics) -> None:
    """The tasks and timers that feed the pieces."""
    pieces = app.pieces
    consumers: dict[str, AIOKafkaConsumer] = {}
    checkpoints: list[CampaignCheckpoints] = []

    async def detect():
        """The per-account stage reads the input in batches with a plain aiokafka consumer.

        A Faust agent awaits a task and a future per message (~250 µs here): one record per
        message topped out at ~3-4k records/s with the detection core at a fifth of the CPU
        (docs/performance.md, (b)). Messages are taken oldest first across partitions
        (:class:`~detector.stream.steps.InputOrder`); offsets are committed only by checkpoints
        (:func:`checkpoint`) and when a partition leaves.
        """
        consumer = consumers["detect"] = input_consumer(settings)
        consumer.subscribe(
            [settings.input_topic],
            listener=HandOverOnRebalance(app, consumer, topics[settings.state_topic], metrics),
        )
        pieces.health.input.watch(consumer)
        await consumer.start()  # the group join goes on in the background, beside Faust's
        await app.fully_started.wait()
        order, step = pieces.order, pieces.detect
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for source, messages in batches.items():
                    for message in messages:
                        decoded, event_time = step.decode(message.value)
                        order.add(source.partition, message, decoded, event_time)
                for source in consumer.assignment():
                    order.note_position(source.partition, await consumer.position(source), consumer.highwater(source))
                handled = await step.handle_ordered(order, settings.input_topic)
                pieces.health.input.took(order.oldest_waiting(), order.processed_to, handled)
                for source in consumer.assignment():
                    buffered = order.buffered(source.partition)
                    if buffered >= BUFFERED_MESSAGES:
                        consumer.pause(source)
                    elif buffered < BUFFERED_MESSAGES // 2 and source in consumer.paused():
                        consumer.resume(source)
        finally:
            await consumer.stop()

    app.early_tasks.append(detect)

    @app.timer(interval=OBSERVATION_FLUSH_SECONDS)
    async def flush_summaries():
        await pieces.detect.flush_summaries(pieces.order)

    async def campaigns():
        """The campaign stage: one worker at a time owns the summaries partition; its state follows
        the partition through checkpoints, and its offsets are those the checkpoints cover."""
        consumer = input_consumer(settings, settings.campaign_group)
        listener = CampaignCheckpoints(app, settings, consumer)
        checkpoints.append(listener)
        consumer.subscribe([settings.summaries_topic], listener=listener)
        await consumer.start()
        await app.fully_started.wait()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        async with listener.busy:
                            if not listener.owned or message.offset < listener.position:
                                continue  # read before the seek to the checkpoint took effect
                            await pieces.campaign.handle(message.value)
                            listener.position = message.offset + 1
        finally:
            await consumer.stop()

    app.early_tasks.append(campaigns)

    @app.timer(interval=1.0)
    async def send_waiting_campaign_updates():
        await pieces.campaign.send_due()

    @app.task
    async def follow_news():
        """Every worker reads the whole news topic (no consumer group): membership changes, and the
        campaign clock that lets this worker's account alert decisions go out."""
        consumer = groupless_consumer(settings, settings.news_topic)
        await consumer.start()
        try:
            async for message in consumer:
                await pieces.detect.apply_news(message.key, message.value)
        finally:
            await consumer.stop()

    @app.timer(interval=HEALTH_CHECK_SECONDS)
    async def check_health():
        """Broker up or down, input lag; raises (the worker ends, exit status 1) on a stall."""
        await pieces.health.check()

    @app.timer(interval=5.0)
    async def refresh_gauges():
        pieces.detect.refresh_gauges()

    async def checkpoint():
        """The detect stage's checkpoint, then its offsets committed; the campaign stage's checkpoint."""

        async def flush() -> None:
            await app.producer.flush()
            await pieces.profile_sender.flush()

        offsets = await pieces.snapshots.take(pieces.order, flush)
        consumer = consumers.get("detect")
        if consumer is not None:
            await _commit(consumer, {TopicPartition(settings.input_topic, p): o for p, o in offsets.items()})
        for listener in checkpoints:
            await listener.save()

    if settings.snapshot_interval_s:

        @app.timer(interval=settings.snapshot_interval_s)
        async def periodic_checkpoint():
            await checkpoint()

    @app.on_before_shutdown.connect
    async def final_checkpoint(app, **kwargs):
        await pieces.campaign.drain()
        await checkpoint()
        await pieces.profile_sender.stop()
        await pieces.health.broker.close()
        await app.producer.flush()

"""The Faust application: the only module that imports Faust.

Topology (every stage a thin shell around a pure class):

* ``detect`` on ``llm.requests`` (raw bytes: one record, a JSON array or NDJSON; read in batches by
  a Faust task with its own consumer group, ``<app_id>-detect``) → validation →
  :class:`~detector.detection.core.Detector` → account alerts on ``llm.alerts``; rejected records to
  ``llm.requests.dlq`` with their reason and topic/partition/offset; account summaries to the
  internal attributes topic, routed by attribute. Records must be keyed by ``account_id`` so
  each account's records reach one worker, in order.
* ``link`` on the attributes topic → :class:`~detector.detection.campaigns.AttributeIndex` → links to the
  internal one-partition links topic.
* ``merge`` on the links topic → :class:`~detector.detection.campaigns.CampaignBook` → campaign alerts on
  ``llm.alerts`` and membership updates on the compacted ``llm.campaign-members``.
* every worker follows the whole membership topic, so account alerts carry their campaign id.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib

import faust
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError
from aiokafka.helpers import create_ssl_context
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import CollectorRegistry

from detector.detection.alerting import Alert, UpdatePacer
from detector.detection.campaigns import AttributeIndex, AttributeObservation, CampaignBook, Link, Membership, Sweeps
from detector.detection.core import Detector
from detector.detection.records import decode_envelope, rejection_to_dlq
from detector.stream.config import Settings
from detector.stream.handover import AccountHandover
from detector.stream.metrics import DetectorMetrics
from detector.stream.state import load as load_state
from detector.stream.state import snapshot_parts, write_atomically

log = logging.getLogger(__name__)

DETECT_BATCH = 500
"""Input messages per fetch of the detect stage."""
DETECT_SLICE_SECONDS = 0.05
"""The detect stage yields the event loop (heartbeats, timers, the other stages) this often
inside a batch: 500 envelopes of 200 records are seconds of work."""
FETCH_BYTES_PER_PARTITION = 8 * 1024 * 1024
"""Faust's 1 MiB per partition is ~6 envelopes of 200 records: the worker idled 30-45% between
fetches; 8 MiB gave +39% with envelopes in the bench (docs/performance.md)."""
OBSERVATION_BATCH = 1000
OBSERVATION_FLUSH_SECONDS = 0.5
"""Account summaries go to the linking stage in batches: a message per partition per input
message would double Faust's per-message cost; campaigns can wait half a second."""


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


class DetectorService:
    """What the agent does with one input message, apart from Faust: decode, detect, route.

    Kept outside the agent body so its outputs (alerts, dead letters) are plain values the
    agent sends, and the accounting is in one place.
    """

    def __init__(self, settings: Settings, detector: Detector, metrics: DetectorMetrics):
        self.settings = settings
        self.detector = detector
        self.metrics = metrics
        self.outbox: list = []
        """Account summaries waiting to go to the link stage."""
        self.changed: dict[str, int] = {}
        """account → input partition of the accounts changed since their profile was published."""
        self._evicted_reported = detector.stats.accounts_evicted

    def handle(
        self, value: bytes, key: bytes | None, topic: str, partition: int, offset: int
    ) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes | None, bytes]]]:
        """Alerts and dead letters for one message, as (key, value) pairs ready to send.

        Account summaries for the linking stage are left in ``detector.outbox``.
        """
        started = time.perf_counter()
        requests, rejections = decode_envelope(value or b"")
        metrics = self.metrics
        metrics.messages.inc()
        alerts: list[Alert] = []
        changed = self.changed
        for request in requests:
            processed = self.detector.process(request)
            alerts.extend(processed.alerts)
            self.outbox.extend(processed.observations)
            changed[request.account_id] = partition
        if requests:
            metrics.records_accepted.inc(len(requests))
        dead_letters = []
        for rejection in rejections:
            metrics.rejections.labels(rejection.reason).inc()
            dead_letters.append((key, rejection_to_dlq(rejection, topic=topic, partition=partition, offset=offset)))
        out = self.encode_alerts(alerts)
        metrics.batch_seconds.observe(time.perf_counter() - started)
        return out, dead_letters

    def encode_alerts(self, alerts: list[Alert]) -> list[tuple[bytes, bytes]]:
        """Alerts as (key, CloudEvent JSON) pairs, counted in the metrics."""
        out = []
        for alert in alerts:
            self.metrics.alerts.labels(alert.type, alert.status, alert.severity).inc()
            event = alert.to_cloudevent(self.settings.alert_source, self.settings.runbook_url)
            out.append((alert.key, orjson.dumps(event)))
        return out

    def drain_observations(self, partitions: int) -> dict[int, bytes]:
        """Queued account summaries, one JSON array per attributes-topic partition."""
        outbox = self.outbox
        if not outbox:
            return {}
        by_partition: dict[int, list] = {}
        for observation in outbox:
            # Only this app reads the attributes topic: any stable hash routes an attribute to one
            # partition, and crc32 is ~20x cheaper than Kafka's pure-Python murmur2.
            partition = zlib.crc32(observation.attribute.encode()) % partitions
            by_partition.setdefault(partition, []).append(list(observation))
        outbox.clear()
        return {partition: orjson.dumps(batch) for partition, batch in by_partition.items()}

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


def create_app(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    detector: Detector | None = None,
    **faust_overrides,
) -> faust.App:
    """Build the Faust app; ``faust_overrides`` are Faust settings (tests shorten timeouts)."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = DetectorMetrics.create(registry)
    if detector is None:
        detector = Detector(settings.policy())
        if load_state(detector, settings.snapshot_path):
            log.info("restored %d account profiles from %s", len(detector.profiles), settings.snapshot_path)
    service = DetectorService(settings, detector, metrics)
    servers = settings.bootstrap_servers.split(",")
    faust_settings = dict(
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
    faust_settings.update(faust_overrides)
    app = faust.App(settings.app_id, **faust_settings)
    app.detector_service = service
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.metrics_registry = registry

    alerts_topic = app.topic(
        settings.alerts_topic, key_type=bytes, value_type=bytes, partitions=settings.partitions, internal=True
    )
    dlq_topic = app.topic(
        settings.dlq_topic, key_type=bytes, value_type=bytes, partitions=settings.partitions, internal=True
    )
    attributes_topic = app.topic(
        settings.attributes_topic, key_type=bytes, value_type=bytes, partitions=settings.partitions, internal=True
    )
    links_topic = app.topic(settings.links_topic, key_type=bytes, value_type=bytes, partitions=1, internal=True)
    membership_topic = app.topic(
        settings.membership_topic,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        internal=True,
        compacting=True,
    )
    state_topic = app.topic(
        settings.state_topic,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        internal=True,
        compacting=True,
        deleting=True,
        retention=detector.policy.account_ttl_hours * 3600.0,
    )
    profile_sender = ProfileSender(settings)
    handover = AccountHandover(
        detector,
        settings.state_topic,
        settings.partitions,
        send=profile_sender,
        reader=lambda: AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            **aiokafka_security(settings),
        ),
        changed=service.changed,
    )

    class HandOverOnRebalance(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            published = await handover.on_revoked(tp.partition for tp in revoked)
            await profile_sender.flush()  # the next owner reads them as soon as it is assigned
            await app.producer.flush()
            metrics.accounts_published.inc(published)

        async def on_partitions_assigned(self, assigned):
            await state_topic.maybe_declare()
            metrics.accounts_adopted.inc(await handover.on_assigned(tp.partition for tp in assigned))

    index = AttributeIndex()
    book = CampaignBook()

    @app.task
    async def detect():
        """The per-account stage reads the input in batches with a plain aiokafka consumer.

        A Faust agent awaits a task and a future per message (~250 µs here): one record per
        message topped out at ~3-4k records/s with the detection core at a fifth of the CPU
        (docs/performance.md, (b)). Offsets are committed after a batch's alerts and dead
        letters are acknowledged by the brokers: at least once, like the agent it replaces.
        """
        consumer = AIOKafkaConsumer(
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
        consumer.subscribe([settings.input_topic], listener=HandOverOnRebalance())
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                if not batches:
                    continue
                pause_at = time.perf_counter() + DETECT_SLICE_SECONDS
                for partition, messages in batches.items():
                    for message in messages:
                        await handle_message(
                            message.value, message.key, partition.topic, partition.partition, message.offset
                        )
                        if time.perf_counter() > pause_at:  # let heartbeats, timers and other stages run
                            await asyncio.sleep(0)
                            pause_at = time.perf_counter() + DETECT_SLICE_SECONDS
                if len(service.outbox) >= OBSERVATION_BATCH:
                    await send_observations()
                await app.producer.flush()
                try:
                    await consumer.commit()
                except CommitFailedError:  # a rebalance took the partitions: their new owner re-reads the batch
                    log.warning("detect: offsets not committed, partitions were reassigned during the batch")
        finally:
            await consumer.stop()

    async def handle_message(value, key, topic, partition, offset):
        alerts, dead_letters = service.handle(value, key, topic, partition, offset)
        for key, value in alerts:
            await alerts_topic.send(key=key, value=value)
        for key, value in dead_letters:
            await dlq_topic.send(key=key, value=value)

    async def send_observations():
        for partition, value in service.drain_observations(settings.partitions).items():
            await attributes_topic.send(value=value, partition=partition)

    @app.timer(interval=OBSERVATION_FLUSH_SECONDS)
    async def flush_observations():
        await send_observations()

    link_sweeps, merge_sweeps = Sweeps(), Sweeps()

    @app.agent(attributes_topic, name="link")
    async def link(stream):
        """Links to the merge stage, with the event time they reached: the merge stage sees no
        records, and resolves idle campaigns by this clock (sent on each sweep even without links)."""
        async for value in stream:
            links = []
            newest = float("-inf")
            for fields in orjson.loads(value):
                observation = AttributeObservation(*fields)
                links.extend(index.observe(observation))
                newest = max(newest, observation.timestamp)
            swept = link_sweeps.due(newest)
            if swept:
                index.expire(newest)
            if links or swept:
                await links_topic.send(
                    value=orjson.dumps({"links": [list(link) for link in links], "watermark": newest}), partition=0
                )

    @app.agent(links_topic, name="merge")
    async def merge(stream):
        async for value in stream:
            message = orjson.loads(value)
            for fields in message["links"]:
                await publish_campaign_changes(*book.observe(Link(*fields)))
            if merge_sweeps.due(message["watermark"]):
                await publish_campaign_changes(*book.expire_idle(message["watermark"]))

    pacer = UpdatePacer(settings.campaign_update_interval_s, on_superseded=metrics.campaign_updates_superseded.inc)

    async def publish_campaign_changes(alerts, memberships):
        now = time.monotonic()
        await send_campaign_alerts([paced for alert in alerts if (paced := pacer.offer(alert, now)) is not None])
        for membership in memberships:
            await membership_topic.send(
                key=membership.account_id.encode(),
                value=orjson.dumps({"campaign_id": membership.campaign_id, "since": membership.since}),
            )

    async def send_campaign_alerts(alerts: list[Alert]):
        for key, event in service.encode_alerts(alerts):
            await alerts_topic.send(key=key, value=event)

    @app.timer(interval=1.0)
    async def send_waiting_campaign_updates():
        """Campaign updates held back by the pacer go out when their turn comes."""
        await send_campaign_alerts(pacer.due(time.monotonic()))

    @app.task
    async def follow_memberships():
        """Every worker reads the whole membership topic (no consumer group): small, and it
        lets account alerts carry their campaign id whichever worker owns the account."""
        consumer = AIOKafkaConsumer(
            settings.membership_topic,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **aiokafka_security(settings),
        )
        await consumer.start()
        try:
            async for message in consumer:
                update = orjson.loads(message.value)
                service.detector.apply_memberships(
                    [Membership(message.key.decode(), update["campaign_id"], update["since"])]
                )
        finally:
            await consumer.stop()

    @app.timer(interval=5.0)
    async def refresh_gauges():
        service.refresh_gauges()

    async def snapshot() -> None:
        """The local snapshot (restarts on this disk) and the changed profiles (other workers)."""
        parts = []
        for part in snapshot_parts(service.detector):  # ~25 ms each: records flow in between
            parts.append(part)
            await asyncio.sleep(0)
        size = await asyncio.to_thread(write_atomically, settings.snapshot_path, parts)
        published = await handover.publish()
        metrics.accounts_published.inc(published)
        log.info(
            "state snapshot: %d accounts, %d bytes; %d changed profiles published",
            len(service.detector.profiles),
            size,
            published,
        )

    if settings.snapshot_interval_s:

        @app.timer(interval=settings.snapshot_interval_s)
        async def periodic_snapshot():
            await snapshot()

    @app.on_before_shutdown.connect
    async def final_snapshot(app, **kwargs):
        await send_campaign_alerts(pacer.drain())
        await snapshot()
        await profile_sender.stop()
        await app.producer.flush()

    return app

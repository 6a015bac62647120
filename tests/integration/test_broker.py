"""The embedded broker: Kafka clients and a Faust worker use it like any Kafka cluster."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from detector.sim.broker import BrokerError, EmbeddedBroker, acreate_topics, create_topics

pytestmark = pytest.mark.integration

# What docs/faust-notes.md recommends for tests: the broker answers JoinGroup after half the
# session timeout, so a short one makes a worker own its partitions ~1 s after it subscribes.
FAST_FAUST_SETTINGS = dict(
    web_enabled=False,
    store="memory://",
    broker_session_timeout=2.0,
    broker_heartbeat_interval=0.3,
    broker_commit_interval=0.5,
    consumer_auto_offset_reset="earliest",
)


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], **send) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key, **send)
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[tuple[bytes, bytes]]:
    """The first ``count`` (key, value) pairs on ``topic`` from its beginning, or fewer at timeout."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=100
    )
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(received) < count and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=100)).values():
                received.extend((message.key, message.value) for message in messages)
    finally:
        await consumer.stop()
    return received


def test_messages_produced_to_a_created_topic_are_consumed_back_in_order(broker, unique_name):
    topic = f"{unique_name}.events"
    sent = [(b"acct-1", b"first"), (b"acct-2", b"second"), (b"acct-1", b"third")]

    async def round_trip():
        await acreate_topics(broker.bootstrap, {topic: 1})
        await produce(broker.bootstrap, topic, sent)
        return await consume(broker.bootstrap, topic, len(sent))

    assert asyncio.run(round_trip()) == sent


def test_created_topics_have_their_partitions_and_policies_and_creating_again_is_harmless(broker, unique_name):
    requests, memberships = f"{unique_name}.requests", f"{unique_name}.memberships"
    wanted = {requests: 4, memberships: 2}
    create_topics(broker.bootstrap, wanted, compacted={memberships})
    create_topics(broker.bootstrap, wanted, compacted={memberships})

    async def describe():
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        await admin.start()
        try:
            await consumer.topics()
            partitions = {name: consumer.partitions_for_topic(name) for name in wanted}
            response = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted])
        finally:
            await consumer.stop()
            await admin.close()
        policies = {
            resource[3]: dict((entry[0], entry[1]) for entry in resource[4]).get("cleanup.policy")
            for answer in response
            for resource in answer.resources
        }
        return partitions, policies

    partitions, policies = asyncio.run(describe())
    assert partitions == {requests: {0, 1, 2, 3}, memberships: {0, 1}}
    assert policies == {requests: None, memberships: "compact"}


def test_create_topics_works_when_called_from_inside_a_running_event_loop(broker, unique_name):
    topic = f"{unique_name}.alerts"

    async def inside_a_loop():
        create_topics(broker.bootstrap, {topic: 3})
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        await consumer.start()
        try:
            return await consumer.topics(), consumer.partitions_for_topic(topic)
        finally:
            await consumer.stop()

    topics, partitions = asyncio.run(inside_a_loop())
    assert topic in topics
    assert partitions == {0, 1, 2}


def test_a_stopped_broker_is_reaped_and_no_longer_answers(tmp_path):
    own = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    port, pid = own.port, own.pid
    own.stop()

    assert not own.running
    with pytest.raises(ChildProcessError):  # reaped: no longer our child, not even a zombie
        os.waitpid(pid, os.WNOHANG)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert "listening on" in (tmp_path / "tansu.log").read_text()


def test_creating_topics_with_no_broker_behind_the_address_names_the_address(tmp_path):
    own = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    address = own.bootstrap
    own.stop()

    with pytest.raises(BrokerError, match=f"no Kafka broker answered at {address}"):
        create_topics(address, {"orphan": 1})


class FaustInThread:
    """A Faust app started with ``await app.start()`` on its own event loop in a thread.

    In-process rather than ``faust worker`` in a child: no interpreter start or worker
    shutdown grace (~1 s each way), and the app object stays inspectable from the test.
    """

    def __init__(self, make_app, start_timeout: float = 30.0):
        self.make_app = make_app
        self.start_timeout = start_timeout
        self.app: faust.App | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), daemon=True)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.app = self.make_app()
            await self.app.start()
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.app.stop()

    def __enter__(self) -> faust.App:
        self._thread.start()
        if not self._started.wait(self.start_timeout):
            raise AssertionError(f"the Faust app did not start within {self.start_timeout:g} s")
        if self._error is not None:
            raise AssertionError("the Faust app failed to start") from self._error
        return self.app

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the Faust app did not stop within 30 s"


def forwarding_app(app_id: str, bootstrap: str, source: str, sink: str, datadir: Path) -> faust.App:
    """The smallest useful worker: every message on ``source`` goes to ``sink``, upper-cased."""
    app = faust.App(app_id, broker=f"kafka://{bootstrap}", datadir=str(datadir), **FAST_FAUST_SETTINGS)
    source_topic = app.topic(source, key_serializer="raw", value_serializer="raw")
    sink_topic = app.topic(sink, key_serializer="raw", value_serializer="raw")

    @app.agent(source_topic)
    async def forward(stream):
        async for key, value in stream.items():
            await sink_topic.send(key=key, value=value.upper())

    return app


def test_a_faust_worker_forwards_every_message_and_commits_them_when_stopped(broker, unique_name, tmp_path):
    source, sink, app_id = f"{unique_name}.in", f"{unique_name}.out", f"{unique_name}-app"
    create_topics(broker.bootstrap, {source: 2, sink: 1})
    before_start = [(b"k0", b"waiting"), (b"k1", b"in the topic")]
    after_start = [(b"k2", b"sent while"), (b"k3", b"it runs")]
    asyncio.run(produce(broker.bootstrap, source, before_start[:1], partition=0))
    asyncio.run(produce(broker.bootstrap, source, before_start[1:], partition=1))

    with FaustInThread(lambda: forwarding_app(app_id, broker.bootstrap, source, sink, tmp_path)):
        asyncio.run(produce(broker.bootstrap, source, after_start))
        forwarded = asyncio.run(consume(broker.bootstrap, sink, 4))

    assert sorted(forwarded) == sorted((key, value.upper()) for key, value in before_start + after_start)

    async def committed():
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=app_id, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(source, p) for p in (0, 1)]
            ends = await consumer.end_offsets(partitions)
            return {tp.partition: await consumer.committed(tp) for tp in partitions}, {
                tp.partition: offset for tp, offset in ends.items()
            }
        finally:
            await consumer.stop()

    commits, ends = asyncio.run(committed())
    assert commits == ends

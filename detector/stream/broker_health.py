"""The worker and its broker: wait for it, check its topics, notice when it goes and comes back.

* :func:`preflight` runs before Faust starts. It waits for a broker to listen (a log line every few
  seconds, not a crash), tries the credentials (:mod:`detector.stream.security`), then checks the
  internal topics the worker writes to by partition number: one that exists with another partition
  count is a :class:`~detector.errors.ConfigError` naming it (one line, exit status 2), where it
  used to be ``AssertionError('Unrecognized partition')`` deep in a send. A missing topic is left to
  Faust, which creates it with the right count; the request does not ask the broker to create it
  (a broker with ``auto.create.topics.enable`` would, with its default count).
* :class:`BrokerMonitor` asks a broker for those topics every few seconds: ``detector_broker_up``
  says whether one answers, a line is logged when it stops and every few seconds after, and when it
  answers again the topics are checked again (a broker that lost its data may have let a client
  auto-create them with its default count).
* :class:`RateLimitedLog` keeps aiokafka's and Faust's complaints during an outage (~260 lines a
  second) to one line per kind per window.
* :class:`Watchdog` ends a worker that processes nothing while records wait and the broker answers,
  so its supervisor restarts it instead of it stalling silently.
* :class:`WorkerHealth` ties them to the input's :class:`~detector.stream.lag.InputProgress` and is
  what the worker's timer calls.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from prometheus_client import Gauge

from detector.errors import ConfigError, DetectorError
from detector.stream.config import Settings
from detector.stream.lag import InputProgress
from detector.stream.security import acheck_broker_access

__all__ = [
    "BrokerMonitor",
    "RateLimitedLog",
    "Watchdog",
    "WorkerHealth",
    "WorkerStopped",
    "partition_mismatches",
    "preflight",
]

log = logging.getLogger(__name__)

WAIT_LOG_SECONDS = 5.0
"""While the broker cannot be reached, one line this often (at start-up and while running)."""
REQUEST_TIMEOUT_SECONDS = 5.0
_UNKNOWN_TOPIC = 3
_UNREACHABLE = (KafkaError, OSError, TimeoutError)


class WorkerStopped(DetectorError):
    """The worker ends itself, with the reason, so that its supervisor starts it again."""


def partition_mismatches(expected: Mapping[str, int], found: Mapping[str, int | None], partitions: int) -> str | None:
    """The start-up error for internal topics whose partition count differs from the expected one.

    ``found`` maps a topic to its partition count, None when it does not exist (then Faust creates
    it). ``partitions`` is ``DETECTOR_PARTITIONS``, named in the advice where it would help.

    >>> partition_mismatches({"a": 8, "links": 1}, {"a": 4, "links": None}, partitions=8)
    "internal topic 'a' has 4 partitions, the worker needs 8: set DETECTOR_PARTITIONS=4 or recreate it"
    """
    problems = []
    for topic, wanted in expected.items():
        count = found.get(topic)
        if count is None or count == wanted:
            continue
        advice = f"set DETECTOR_PARTITIONS={count} or recreate it" if wanted == partitions else "recreate it"
        problems.append(f"internal topic {topic!r} has {count} partitions, the worker needs {wanted}: {advice}")
    return "; ".join(problems) or None


def broker_client(settings: Settings) -> AIOKafkaClient:
    """A bare Kafka client with the worker's bootstrap servers and security settings."""
    from detector.stream.app import aiokafka_security

    return AIOKafkaClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.app_id}-health",
        request_timeout_ms=int(REQUEST_TIMEOUT_SECONDS * 1000),
        **aiokafka_security(settings),
    )


async def partition_counts(client: AIOKafkaClient, topics: list[str]) -> dict[str, int | None]:
    """Each topic's partition count, None for a topic that does not exist; creates none."""
    node = client.get_random_node()
    if node is None:
        await client.force_metadata_update()
        node = client.get_random_node()
    request = MetadataRequest(topics, allow_auto_topic_creation=False)
    response = await asyncio.wait_for(client.send(node, request), REQUEST_TIMEOUT_SECONDS)
    counts: dict[str, int | None] = {}
    for topic in response.to_object()["topics"]:
        if topic["error_code"] == _UNKNOWN_TOPIC:
            counts[topic["topic"]] = None
        elif topic["error_code"]:
            raise KafkaError(f"metadata of topic {topic['topic']!r}: error {topic['error_code']}")
        else:
            counts[topic["topic"]] = len(topic["partitions"])
    return counts


class _Every:
    """True at most once per ``seconds``: for log lines about a state that lasts."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self._last: float | None = None

    def __call__(self) -> bool:
        now = self.clock()
        if self._last is None or now - self._last >= self.seconds:
            self._last = now
            return True
        return False

    def reset(self) -> None:
        self._last = None


async def _listening(server: str) -> str | None:
    """None if something accepts TCP connections at ``host:port``, else why not."""
    host, _, port = server.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), REQUEST_TIMEOUT_SECONDS)
    except (TimeoutError, OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    writer.close()
    return None


async def wait_for_broker(settings: Settings, pause: float = 1.0) -> None:
    """Return once a bootstrap server accepts connections, logging every few seconds until then."""
    servers = settings.bootstrap_servers.split(",")
    started = time.monotonic()
    due = _Every(WAIT_LOG_SECONDS)
    while True:
        reasons = await asyncio.gather(*(_listening(server) for server in servers))
        if any(reason is None for reason in reasons):
            if time.monotonic() - started > pause:  # logging is not set up yet: a warning reaches stderr
                log.warning("broker reachable after %.0f s; starting", time.monotonic() - started)
            return
        if due():
            log.warning(
                "waiting for a broker (%.0f s so far): %s",
                time.monotonic() - started,
                "; ".join(f"{server}: {reason}" for server, reason in zip(servers, reasons, strict=True)),
            )
        await asyncio.sleep(pause)


async def apreflight(settings: Settings) -> None:
    """Wait for the broker, try the credentials, check the internal topics' partition counts."""
    await wait_for_broker(settings)
    await acheck_broker_access(settings)
    expected = settings.partitioned_topics
    due = _Every(WAIT_LOG_SECONDS)
    while True:
        client = broker_client(settings)
        try:
            await client.bootstrap()
            found = await partition_counts(client, list(expected))
            break
        except _UNREACHABLE as exc:
            if due():
                log.warning("waiting for the broker to describe the internal topics: %r", exc)
            await asyncio.sleep(1.0)
        finally:
            await client.close()
    problem = partition_mismatches(expected, found, settings.partitions)
    if problem:
        raise ConfigError(problem)
    await create_missing_topics(settings)


async def create_missing_topics(settings: Settings) -> None:
    """Create the internal and output topics that do not exist yet, each with its partition count
    and configs (:attr:`Settings.internal_topics`); existing ones are left as they are."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from detector.stream.app import aiokafka_security

    wanted = settings.internal_topics
    client = broker_client(settings)
    try:
        await client.bootstrap()
        found = await partition_counts(client, list(wanted))
    finally:
        await client.close()
    missing = [
        NewTopic(name, partitions, settings.replication_factor, topic_configs=configs)
        for name, (partitions, configs) in wanted.items()
        if found.get(name) is None
    ]
    if not missing:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(REQUEST_TIMEOUT_SECONDS * 1000),
        **aiokafka_security(settings),
    )
    await admin.start()
    try:
        response = await admin.create_topics(missing)
        for name, code, *_ in response.topic_errors:  # 36: created meanwhile by another worker
            if code not in (0, 36):
                raise ConfigError(f"could not create topic {name!r}: Kafka error {code}")
    finally:
        await admin.close()
    log.info("created topics %s", ", ".join(sorted(topic.name for topic in missing)))


def preflight(settings: Settings) -> None:
    """Blocking :func:`apreflight`, for the worker's start before its event loop runs."""
    asyncio.run(apreflight(settings))


class BrokerMonitor:
    """Whether a broker answers, asked every time :meth:`check` is called (a timer).

    The question is the metadata of the internal topics, so the answer also says whether they
    still have their partition counts; a broker that answers again after an outage with other
    counts ends the worker (:class:`WorkerStopped`): every send to such a topic would fail.
    """

    def __init__(
        self,
        settings: Settings,
        up_gauge: Gauge,
        client_factory: Callable[[], AIOKafkaClient] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.up_gauge = up_gauge
        self.client_factory = client_factory or (lambda: broker_client(settings))
        self.clock = clock
        self.up = True
        """Whether the latest question was answered (the preflight saw the broker answer)."""
        self._down_since: float | None = None
        self._due = _Every(WAIT_LOG_SECONDS, clock)
        self._client: AIOKafkaClient | None = None
        up_gauge.set(1)

    async def check(self) -> None:
        expected = self.settings.partitioned_topics
        try:
            if self._client is None:
                client = self.client_factory()
                await client.bootstrap()
                self._client = client
            found = await partition_counts(self._client, list(expected))
        except _UNREACHABLE as exc:
            self._went_down(exc)
            return
        self.up_gauge.set(1)
        self.up = True
        if self._down_since is not None:
            log.warning("broker answers again after %.0f s unreachable", self.clock() - self._down_since)
            self._down_since = None
            self._due.reset()
            problem = partition_mismatches(expected, found, self.settings.partitions)
            if problem:
                raise WorkerStopped(f"the broker came back with other topics: {problem}")

    def _went_down(self, exc: BaseException) -> None:
        self.up_gauge.set(0)
        self.up = False
        now = self.clock()
        if self._down_since is None:
            self._down_since = now
        if self._due():
            log.warning("broker unreachable for %.0f s: %r", now - self._down_since, exc)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class Watchdog:
    """Says when the input has stalled: records wait, the broker answers, and none is processed.

    >>> dog = Watchdog(stall_timeout_s=60)
    >>> dog.check(0.0, progressed=False, pending=10, broker_up=True) is None
    True
    >>> dog.check(61.0, progressed=False, pending=10, broker_up=True)
    'no input record processed for 61 s while 10 wait and the broker answers'
    """

    def __init__(self, stall_timeout_s: float):
        self.stall_timeout_s = stall_timeout_s
        self._stalled_since: float | None = None

    def check(self, now: float, *, progressed: bool, pending: int, broker_up: bool) -> str | None:
        """The reason to end the worker, or None. A broker outage is not a stall: it has its own metric."""
        if progressed or pending == 0 or not broker_up or not self.stall_timeout_s:
            self._stalled_since = None
            return None
        if self._stalled_since is None:
            self._stalled_since = now
        stalled = now - self._stalled_since
        if stalled >= self.stall_timeout_s:
            return f"no input record processed for {stalled:.0f} s while {pending} wait and the broker answers"
        return None


class RateLimitedLog(logging.Filter):
    """A handler filter letting through one warning or error per kind per ``window`` seconds.

    A kind is the logger and the message's template with its numbers blanked, so "Unable connect to
    node with id 1" and "... id 2" are one kind. Only the chatty libraries' records are limited; the
    first one let through after others were held back says how many.
    """

    LIBRARIES = ("aiokafka", "faust", "mode")

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window = window
        self.clock = clock
        self._kinds: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.LIBRARIES):
            return True
        kind = (record.name, record.levelno, re.sub(r"\d+", "#", str(record.msg)))
        now = self.clock()
        shown_at, held = self._kinds.get(kind, (float("-inf"), 0))
        if now - shown_at < self.window:
            self._kinds[kind] = (shown_at, held + 1)
            return False
        self._kinds[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - shown_at:.0f} s]"
        return True


@dataclass
class WorkerHealth:
    """The broker monitor, the input's lag and the watchdog, checked together by one timer."""

    broker: BrokerMonitor
    input: InputProgress
    watchdog: Watchdog
    clock: Callable[[], float] = time.monotonic

    async def check(self) -> None:
        """Raises :class:`WorkerStopped` with the reason when the worker should end."""
        await self.broker.check()
        progressed = await self.input.refresh()
        reason = self.watchdog.check(
            self.clock(), progressed=progressed, pending=self.input.lag.pending, broker_up=self.broker.up
        )
        if reason:
            raise WorkerStopped(reason)

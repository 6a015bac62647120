"""request.v1 records: decode and validate API request logs in one pass.

Every record of the input topic goes through here, so the happy path costs one
msgspec decode (parsing and type checking together, in C) and nothing else.
Bad input is data, not an exception: it comes back as a :class:`Rejection` with
a machine-readable reason, ready for the dead-letter topic, and never takes the
valid records of its batch down with it.

The published contract is ``schemas/request.v1.schema.json``; the Struct below
is its executable twin, and ``tests/unit/test_schemas.py`` checks that the two
agree. Where they intentionally differ is listed in ``schemas/README.md``.

>>> request = decode_request(b'{"event_id": "e1", "timestamp": "2024-05-01T12:00:00Z",'
...     b' "account_id": "acct-1", "model": "m", "input_tokens": 12,'
...     b' "output_tokens": 800, "status_code": 200}')
>>> request.timestamp, request.output_tokens
(1714564800.0, 800)
>>> decode_request(b'{"event_id": "e1"}').reason
'missing_field'
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import orjson
from msgspec import Meta
from msgspec.structs import force_setattr

from detector.errors import DetectorError

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""A message (single record or batch) larger than this is rejected unread as 'too_large'."""

MAX_ORIGINAL_BYTES = 64 * 1024
"""Rejection.original is cut to this size so a dead-letter record stays well under
Kafka's default 1 MB message limit."""

# 9999-12-31T23:59:59Z. An epoch in milliseconds (~1.7e12 today) lands far above it,
# so the most common producer mistake is caught as 'out_of_range' instead of being
# read as a date in the year 55,000.
EPOCH_SECONDS_MAX = 253_402_300_799
# Integers stay exact in every JSON implementation up to 2**53 - 1.
JSON_SAFE_INT_MAX = 2**53 - 1
MIN_YEAR = 1970

_EpochNumber = Annotated[float, Meta(ge=0, le=EPOCH_SECONDS_MAX)]
_AwareDatetime = Annotated[datetime, Meta(tz=True)]
if TYPE_CHECKING:
    # What every reader sees: __post_init__ normalises both wire forms to epoch seconds.
    _Timestamp = float
else:
    _Timestamp = _EpochNumber | _AwareDatetime
_Count = Annotated[int, Meta(ge=0, le=JSON_SAFE_INT_MAX)]
_Id = Annotated[str, Meta(min_length=1, max_length=256)]
_Label = Annotated[str, Meta(max_length=128)]
_Hash = Annotated[str, Meta(max_length=256)]


class RecordError(DetectorError, ValueError):
    """A request broke the request.v1 contract in a way the type system cannot express.

    It is a ValueError so that msgspec turns it into a ValidationError while
    decoding; :func:`decode_request` then reads ``reason`` and ``field`` back.
    """

    def __init__(self, reason: str, field: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field
        self.detail = detail


class Request(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """One LLM API request, as request.v1 describes it.

    ``timestamp`` and ``account_created_at`` arrive as RFC 3339 text with an
    offset or as epoch seconds; after construction they are always a float of
    epoch seconds (UTC), which is what every window and baseline works in.
    (At run time they are annotated with both wire forms so that msgspec
    decodes either; type checkers see the float.) Code that builds a Request
    itself may pass an aware datetime too.
    """

    event_id: _Id
    timestamp: _Timestamp
    account_id: Annotated[str, Meta(min_length=1, max_length=128)]
    model: _Id
    input_tokens: _Count
    output_tokens: _Count
    status_code: Annotated[int, Meta(ge=100, le=599)]
    org_id: Annotated[str, Meta(max_length=256)] | None = None
    api_key_id: Annotated[str, Meta(max_length=256)] | None = None
    operation: Annotated[str, Meta(max_length=64)] | None = None
    max_tokens: Annotated[int, Meta(ge=1, le=JSON_SAFE_INT_MAX)] | None = None
    temperature: Annotated[float, Meta(ge=0)] | None = None
    finish_reason: Annotated[str, Meta(max_length=64)] | None = None
    latency_ms: Annotated[float, Meta(ge=0)] | None = None
    client_ip: Annotated[str, Meta(max_length=45)] | None = None
    user_agent: Annotated[str, Meta(max_length=2048)] | None = None
    conversation_id: Annotated[str, Meta(max_length=256)] | None = None
    turn_index: _Count | None = None
    prompt_text: Annotated[str, Meta(max_length=1_000_000)] | None = None
    system_prompt_hash: _Hash | None = None
    payment_fingerprint: _Hash | None = None
    account_created_at: _Timestamp | None = None
    signup_channel: _Label | None = None
    tls_fingerprint: Annotated[str, Meta(max_length=1024)] | None = None

    def __post_init__(self) -> None:
        # Runs on every decoded record: ~0.1 µs with epoch numbers, ~0.5 µs more per RFC 3339 text.
        if type(self.timestamp) is not float:
            force_setattr(self, "timestamp", _epoch_seconds(self.timestamp, "timestamp"))
        created = self.account_created_at
        if created is not None and type(created) is not float:
            force_setattr(self, "account_created_at", _epoch_seconds(created, "account_created_at"))
        if self.client_ip is not None and not _is_ip_address(self.client_ip):
            raise RecordError(
                "invalid_ip",
                "client_ip",
                f"`client_ip` must be an IPv4 or IPv6 address (no zone id); got {_describe(self.client_ip)}",
            )


def _epoch_seconds(value: Any, field: str) -> float:
    """Epoch seconds of a decoded timestamp (an aware datetime or a number)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise RecordError(
                "invalid_timestamp", field, f"`{field}` has no UTC offset; RFC 3339 needs one (Z or +hh:mm)"
            )
        if value.year < MIN_YEAR:
            raise RecordError("out_of_range", field, f"`{field}` is before {MIN_YEAR}; got year {value.year}")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(
            "wrong_type", field, f"`{field}` must be RFC 3339 text or epoch seconds; got {_describe(value)}"
        )
    return float(value)


def _is_ip_address(text: str) -> bool:
    """Whether text is an IPv4 or IPv6 address without a zone id.

    inet_pton is ~15x faster than ipaddress.ip_address (campaigns rotate through
    proxies, so caching would not help); on glibc it accepts exactly what
    ipaddress does minus zone ids, which is also what JSON Schema's ipv4/ipv6
    formats accept as jsonschema checks them (tests/unit/test_schemas.py).
    """
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except (OSError, ValueError, UnicodeEncodeError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that did not make it into the detector, and why.

    ``original`` holds the record's own bytes with its prompt text redacted
    (see :func:`redact_prompt_text`), cut to MAX_ORIGINAL_BYTES.
    """

    reason: str
    field: str | None
    detail: str
    index: int | None
    original: bytes


_decoder = msgspec.json.Decoder(Request)
_batch_decoder = msgspec.json.Decoder(list[Request])
_raw_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()
# UnicodeDecodeError escapes msgspec when a *known* string field holds bytes that are not UTF-8.
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)


def decode_request(raw: bytes) -> Request | Rejection:
    """Decode one JSON object into a Request, or say why it is not one."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return _too_large(raw)
    return _decode_record(raw, None)


def decode_envelope(payload: bytes) -> tuple[list[Request], list[Rejection]]:
    """Decode a Kafka message value: one object, a JSON array of objects, or NDJSON.

    A bad record inside a batch is rejected alone; the valid records around it
    are always returned. ``Rejection.index`` is the array position, or the
    0-based line number for NDJSON (blank lines count, so it points at the line).
    A valid object or array costs one decode; NDJSON costs one decode per line
    plus a first attempt that stops at the end of the first line.
    """
    if len(payload) > MAX_MESSAGE_BYTES:
        return [], [_too_large(payload)]
    head = payload[:1]
    if head == b"{":
        try:
            return [_decoder.decode(payload)], []
        except msgspec.ValidationError:
            pass
        except msgspec.DecodeError as exc:
            # A valid first object followed by more text: the usual NDJSON batch.
            if "trailing characters" in str(exc) and b"\n" in payload:
                return _decode_lines(payload)
        except UnicodeDecodeError:
            pass
    elif head == b"[":
        try:
            return _batch_decoder.decode(payload), []
        except _DECODE_ERRORS:
            pass
    return _decode_slowly(payload)


def _decode_slowly(payload: bytes) -> tuple[list[Request], list[Rejection]]:
    """Work out the envelope of a message whose fast path failed, record by record."""
    body = payload.strip()
    if body[:1] == b"[":
        return _decode_array(body)
    if b"\n" in body and _is_ndjson(body):
        return _decode_lines(payload)
    result = _decode_record(body, None)
    if isinstance(result, Rejection):
        return [], [result]
    return [result], []


def _decode_array(body: bytes) -> tuple[list[Request], list[Rejection]]:
    try:
        elements = _raw_array_decoder.decode(body)
    except _DECODE_ERRORS:
        # The array itself is broken, so its elements cannot be told apart.
        return [], [_rejection(body, None, *_classify_undecodable(body))]
    return _decode_each((index, bytes(element)) for index, element in enumerate(elements))


def _decode_lines(payload: bytes) -> tuple[list[Request], list[Rejection]]:
    return _decode_each((index, line) for index, line in enumerate(payload.split(b"\n")) if line and not line.isspace())


def _decode_each(records: Iterable[tuple[int, bytes]]) -> tuple[list[Request], list[Rejection]]:
    requests: list[Request] = []
    rejections: list[Rejection] = []
    decode = _decoder.decode
    for index, raw in records:
        try:
            requests.append(decode(raw))
        except _DECODE_ERRORS as exc:
            rejections.append(_reject(raw, index, exc))
    return requests, rejections


def _is_ndjson(body: bytes) -> bool:
    """Whether a multi-line message holds several JSON values rather than one pretty-printed object.

    A message that parses as one value is one value. Otherwise it is NDJSON if
    it holds several values, or if any of its lines is a JSON object on its own
    (a broken pretty-printed request has no such line).
    """
    try:
        _any_decoder.decode(body)
        return False
    except msgspec.DecodeError as exc:
        if "trailing characters" in str(exc):
            return True
    except UnicodeDecodeError:
        pass
    return any(_is_json_object(line) for line in body.split(b"\n"))


def _is_json_object(line: bytes) -> bool:
    line = line.strip()
    if line[:1] != b"{":
        return False
    try:
        return isinstance(_any_decoder.decode(line), dict)
    except _DECODE_ERRORS:
        return False


def _decode_record(raw: bytes, index: int | None) -> Request | Rejection:
    try:
        return _decoder.decode(raw)
    except _DECODE_ERRORS as exc:
        return _reject(raw, index, exc)


def _reject(raw: bytes, index: int | None, exc: Exception) -> Rejection:
    if isinstance(exc, msgspec.ValidationError):
        return _rejection(raw, index, *_classify_invalid(raw, exc))
    return _rejection(raw, index, *_classify_undecodable(raw))


def _rejection(raw: bytes, index: int | None, reason: str, field: str | None, detail: str) -> Rejection:
    original = redact_prompt_text(raw)
    if not original and raw:
        detail = f"{detail} [original withheld: not JSON, it may hold prompt text]"
    if len(original) > MAX_ORIGINAL_BYTES:
        detail = f"{detail} [original cut to {MAX_ORIGINAL_BYTES} of {len(original)} bytes]"
        original = original[:MAX_ORIGINAL_BYTES]
    return Rejection(reason=reason, field=field, detail=detail, index=index, original=original)


def _too_large(payload: bytes) -> Rejection:
    # Not parsed (that is the point of the limit), so nothing of it can be shown safely.
    return Rejection(
        reason="too_large",
        field=None,
        detail=f"message is {len(payload)} bytes; the limit is {MAX_MESSAGE_BYTES} [original withheld]",
        index=None,
        original=b"",
    )


def _classify_undecodable(raw: bytes) -> tuple[str, None, str]:
    """Reason for bytes that are not one JSON value at all."""
    if not raw.strip():
        return "empty_message", None, "expected a JSON object; got an empty message"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "invalid_encoding", None, f"expected UTF-8; byte {exc.start} is not valid UTF-8"
    try:
        _any_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        return "invalid_json", None, f"expected a JSON object; the bytes are not JSON ({exc})"
    # Valid JSON that msgspec could not read as text, e.g. an escaped lone surrogate.
    return "invalid_json", None, "expected a JSON object; the bytes are not JSON"


_MESSAGE = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")
_WRONG_TYPE = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_OUT_OF_RANGE = re.compile(r"^Expected `(?P<expected>[^`]+)` (?P<length>of length )?(?P<bound>[<>]= \S+)$")
_TIMESTAMP = re.compile(r"^Invalid RFC3339 encoded datetime|^Expected `datetime` with a timezone")
_TIMESTAMP_FIELDS = ("timestamp", "account_created_at")
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "null": "null",
    "bool": "a boolean",
    "datetime": "RFC 3339 text with an offset",
    "object": "an object",
    "array": "an array",
}


def _classify_invalid(raw: bytes, exc: msgspec.ValidationError) -> tuple[str, str | None, str]:
    """Map msgspec's message ("Expected `int` >= 0 - at `$.input_tokens`") to (reason, field, detail)."""
    cause = exc.__cause__
    if isinstance(cause, RecordError):
        return cause.reason, cause.field, cause.detail
    parts = _MESSAGE.match(str(exc))
    assert parts is not None  # every part of the pattern is optional: it matches any text
    message = parts["message"]
    field = (parts["path"] or "").lstrip(".") or None
    if (missing := _MISSING.match(message)) is not None:
        name = missing["field"]
        return "missing_field", name, f"required field `{name}` is missing"
    wrong = _WRONG_TYPE.match(message)
    if field is None:
        if wrong is not None:
            return "not_an_object", None, f"expected a JSON object; got {_type_words(wrong['got'])}"
        return "invalid_json", None, f"expected a request.v1 object; {message}"
    if _TIMESTAMP.match(message):
        return (
            "invalid_timestamp",
            field,
            (
                f"`{field}` must be RFC 3339 with an offset (e.g. 2024-05-01T12:00:00Z) or epoch seconds;"
                f" got {_describe_field(raw, field)}"
            ),
        )
    if wrong is not None:
        return (
            "wrong_type",
            field,
            (f"`{field}` must be {_type_words(wrong['expected'])}; got {_describe_field(raw, field)}"),
        )
    if (bound := _OUT_OF_RANGE.match(message)) is not None:
        length = "of length " if bound["length"] else ""
        detail = (
            f"`{field}` must be {_type_words(bound['expected'])} {length}{bound['bound']};"
            f" got {_describe_field(raw, field)}"
        )
        if field in _TIMESTAMP_FIELDS and bound["bound"].startswith("<="):
            detail += " (epoch milliseconds? send seconds)"
        return "out_of_range", field, detail
    if message.startswith("Number out of range"):
        return "out_of_range", field, f"`{field}` holds a number too large to represent"
    return "invalid_value", field, f"`{field}`: {message}"


def _type_words(type_expression: str) -> str:
    """msgspec's `float | null` in words: 'a number or null'."""
    return " or ".join(_TYPE_WORDS.get(name, name) for name in type_expression.split(" | "))


def _describe_field(raw: bytes, field: str) -> str:
    """What arrived in a field, for an error message; prompt text and long strings only by length."""
    try:
        record = _any_decoder.decode(raw)
    except _DECODE_ERRORS:
        return "an unreadable value"
    if not isinstance(record, dict) or field not in record:
        return "an unreadable value"
    value = record[field]
    if field == "prompt_text" and isinstance(value, str):
        return f"a string of {len(value)} characters"
    return _describe(value)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 40 else f"a number of {len(text)} digits"
    if isinstance(value, str):
        return repr(value) if len(value) <= 64 else f"a string of {len(value)} characters"
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def redact_prompt_text(raw: bytes) -> bytes:
    """The record's bytes with every ``prompt_text`` value replaced by ``"[redacted: N chars]"``.

    Prompt text must never leave the worker. If the bytes are JSON, every
    ``prompt_text`` key at any depth is redacted and the record is re-encoded
    (so duplicate keys and escaped key names are covered); a record without one
    is returned unchanged. Bytes that are not JSON are withheld entirely (empty):
    nothing can tell which part of them is prompt text. They stay at their
    topic/partition/offset in the input topic, which the dead letter names.

    >>> redact_prompt_text(b'{"account_id": "a", "prompt_text": "secret"}')
    b'{"account_id":"a","prompt_text":"[redacted: 6 chars]"}'
    >>> redact_prompt_text(b'{"prompt_text": "secret", oops')
    b''
    """
    try:
        record = _any_decoder.decode(raw)
    except _DECODE_ERRORS:
        return b""
    redacted, changed = _redact_value(record)
    return _encoder.encode(redacted) if changed else raw


def _redact_value(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            if key == "prompt_text" and item is not None:
                out[key] = _redaction_marker(item)
                changed = True
            else:
                out[key], item_changed = _redact_value(item)
                changed = changed or item_changed
        return out, changed
    if isinstance(value, list):
        items = [_redact_value(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    return value, False


def _redaction_marker(value: Any) -> str:
    return f"[redacted: {len(value)} chars]" if isinstance(value, str) else "[redacted]"


def request_to_json(request: Request) -> bytes:
    """Canonical request.v1 JSON: absent optionals omitted, timestamps as epoch seconds.

    >>> request_to_json(Request(event_id="e1", timestamp=1714564800, account_id="a", model="m",
    ...     input_tokens=1, output_tokens=2, status_code=200))
    b'{"event_id":"e1","timestamp":1714564800.0,"account_id":"a","model":"m","input_tokens":1,"output_tokens":2,"status_code":200}'
    """
    return _encoder.encode(request)


def rejection_to_dlq(rejection: Rejection, *, topic: str, partition: int | None, offset: int | None) -> bytes:
    """The dead-letter value (schema dlq.v1) for a rejection found at topic/partition/offset.

    Replay passes the file path as ``topic``, None as ``partition`` and the
    line number as ``offset``.

    >>> rejection = decode_request(b'{"prompt_text": "secret"}')
    >>> dlq = orjson.loads(rejection_to_dlq(rejection, topic="requests", partition=0, offset=42))
    >>> dlq["reason"], dlq["field"], dlq["source"]
    ('missing_field', 'event_id', {'topic': 'requests', 'partition': 0, 'offset': 42})
    >>> base64.b64decode(dlq["original_b64"])
    b'{"prompt_text":"[redacted: 6 chars]"}'
    """
    return orjson.dumps(
        {
            "schema": "dlq.v1",
            "reason": rejection.reason,
            "field": rejection.field,
            "detail": rejection.detail,
            "index": rejection.index,
            "source": {"topic": topic, "partition": partition, "offset": offset},
            "original_b64": base64.b64encode(rejection.original).decode("ascii"),
        }
    )

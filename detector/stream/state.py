"""Snapshots of a detector's state, so a restarted worker keeps its baselines.

A detector that forgets everything on each deploy re-enters warm-up and misses campaigns. The
worker writes its whole state to one local file every ``DETECTOR_SNAPSHOT_INTERVAL_S`` seconds
and reads it back at start-up. Write amplification is bounded by design: one sequential write
of ~300 B per tracked account per interval, however many records arrived (a Faust table would
write one changelog record per update, and the embedded broker loses the tail of multi-record
changelog batches on recovery: see docs/faust-notes.md).

What is kept: account profiles, open alerts and their sequence numbers, campaign membership,
model first-use times, the population models and the event-time clock. What is not: the
repeated-prompt filter (16 MB; it refills within hours) and the campaign stages of the worker
(campaigns re-form from the accounts' next summaries).

The worker encodes the profiles 20,000 at a time and lets records through in between (encoding
a million at once stalled its event loop 1.6 s), then writes the file from a thread. The file is
written to a temporary name and renamed, so a crash mid-write leaves the previous snapshot
intact. It is pickled River state and MessagePack, for this worker's own use only: never load a
snapshot from an untrusted source.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from detector.detection.alerting import OpenAlert
from detector.detection.core import Alarm, Decision, Detector
from detector.detection.features.population import SeenPrompts
from detector.detection.profile import AccountProfile
from detector.detection.scoring import Assessment, Evidence
from detector.errors import DetectorError

FORMAT_VERSION = 2
MAGIC = b"detector-snapshot-2\n"
PROFILES_PER_PART = 20_000
"""Profiles encoded at a time: ~25 ms of work here (1M accounts), what the worker's event loop waits
between two parts (the whole state at once stalled it 1.6 s at 1M accounts)."""
_length = struct.Struct(">I")


class SnapshotError(DetectorError):
    """A snapshot file could not be read as this version's snapshot."""


class Header(msgspec.Struct, array_like=True):
    """Everything but the account profiles, taken after them: its clock is never older than they are."""

    version: int
    watermark: float
    started: float | None
    next_sweep: float
    open_alerts: dict[str, OpenAlert]
    alert_sequences: dict[str, int]
    campaign_of: dict[str, str]
    model_first_used: dict[str, float]
    models_started: float | None
    population: bytes
    requests: int
    profile_parts: int
    held_alerts: dict[str, float] = {}
    """Account alerts held before paging (absent from snapshots written before they were)."""
    undecided: list[tuple] = []
    """Alert decisions waiting for the campaign clock (:class:`~detector.detection.core.Decision`)."""
    membership_history: dict[str, list[tuple[float, str | None]]] = {}
    alarmed: list[tuple[float, tuple]] = []
    """Accounts at warning: when they reached it and the review with the highest risk since, in the
    order they reached it; what the sweep releases if they go quiet (absent from older snapshots)."""
    seen_prompts: bytes = b""
    """The repeated-prompt filters, compressed: a restarted worker must not take repeats for novel prompts."""
    seen_contents: bytes = b""


class SnapshotV1(msgspec.Struct, array_like=True):
    """The one-document format of version 1, still read so that an upgrade keeps its baselines."""

    version: int
    watermark: float
    started: float | None
    next_sweep: float
    profiles: list[tuple[str, AccountProfile]]
    open_alerts: dict[str, OpenAlert]
    alert_sequences: dict[str, int]
    campaign_of: dict[str, str]
    model_first_used: dict[str, float]
    models_started: float | None
    population: bytes
    requests: int


_encoder = msgspec.msgpack.Encoder()
_decode_header = msgspec.msgpack.Decoder(Header).decode
_decode_profiles = msgspec.msgpack.Decoder(list[tuple[str, AccountProfile]]).decode
_decode_v1 = msgspec.msgpack.Decoder(SnapshotV1).decode


def snapshot_parts(detector: Detector) -> Iterator[bytes]:
    """The snapshot as length-prefixed MessagePack parts: the magic, profiles in slices of
    :data:`PROFILES_PER_PART` (least recently active first, which eviction relies on), the header.

    The caller may process records between parts (the worker does): the accounts are those
    tracked when it started, each as it was when its slice was encoded.
    """
    yield MAGIC
    profiles = detector.profiles
    accounts = list(profiles)  # the keys only: a million new (account, profile) pairs at once cost a GC pass
    parts = 0
    for start in range(0, len(accounts), PROFILES_PER_PART):
        part = [
            (account, profile)
            for account in accounts[start : start + PROFILES_PER_PART]
            if (profile := profiles.get(account)) is not None
        ]  # None: evicted since the snapshot began
        yield _framed(_encoder.encode(part))
        parts += 1
    del accounts
    alerts, models = detector.alerts.snapshot(), detector.models.snapshot()
    yield _framed(
        _encoder.encode(
            Header(
                version=FORMAT_VERSION,
                watermark=detector.watermark,
                started=detector.started,
                next_sweep=detector.sweeps.snapshot(),
                open_alerts=alerts["open"],
                alert_sequences=alerts["sequences"],
                campaign_of=detector.campaign_of,
                model_first_used=models["first_used"],
                models_started=models["started"],
                population=detector.population.snapshot(),
                requests=detector.stats.requests,
                profile_parts=parts,
                held_alerts=alerts["held"],
                undecided=[_undecided(decision) for decision in detector.undecided or ()],
                alarmed=[(alarm.since, _undecided(alarm.review)) for alarm in detector.alarmed.values()],
                membership_history=detector.membership_history,
                seen_prompts=_filter_bytes(detector.seen_prompts),
                seen_contents=_filter_bytes(detector.seen_contents),
            )
        )
    )


def _decision(fields: tuple) -> Decision:
    """A :class:`Decision` from its snapshot form (:func:`_undecided`)."""
    time, account_id, risk, severity, evidence, first_seen, last_seen, requests, *release = fields
    if account_id is None:
        return Decision(time, None, None)
    assessment = Assessment.frozen(risk, severity, [Evidence(*e) for e in evidence])
    return Decision(time, account_id, assessment, first_seen, last_seen, requests, bool(release and release[0]))


def _undecided(decision: Decision) -> tuple:
    assessment = decision.assessment
    if assessment is None:
        return (decision.time, None, 0.0, "", [], 0.0, 0.0, 0)
    return (
        decision.time,
        decision.account_id,
        assessment.risk,
        assessment.severity,
        assessment.evidence,
        decision.first_seen,
        decision.last_seen,
        decision.requests,
        decision.release,
    )


def _filter_bytes(seen: SeenPrompts) -> bytes:
    return zlib.compress(_encoder.encode(seen.snapshot()), 1)


def _restore_filter(seen: SeenPrompts, data: bytes) -> None:
    if data:
        seen.restore(msgspec.msgpack.decode(zlib.decompress(data)))


def _framed(data: bytes) -> bytes:
    return _length.pack(len(data)) + data


def snapshot_bytes(detector: Detector) -> bytes:
    """The whole snapshot at once (tests, benchmarks; the worker writes it part by part)."""
    return b"".join(snapshot_parts(detector))


def restore(detector: Detector, data: bytes) -> Detector:
    """Load a snapshot into a freshly built ``detector`` (its policy is kept)."""
    try:
        if data.startswith(MAGIC):
            profiles, header = _read_parts(memoryview(data)[len(MAGIC) :])
        else:
            header = _decode_v1(data)
            profiles = header.profiles
    except (msgspec.DecodeError, struct.error) as error:
        raise SnapshotError(f"restore: expected a version {FORMAT_VERSION} snapshot; got {error}") from None
    if header.version not in (1, FORMAT_VERSION):
        raise SnapshotError(f"restore: expected snapshot version {FORMAT_VERSION}; got {header.version}")
    detector.watermark = header.watermark
    detector.started = header.started
    detector.sweeps.restore(header.next_sweep)
    # the least recently active go first if the snapshot holds more accounts than the cap
    detector.profiles = dict(profiles[max(0, len(profiles) - detector.policy.max_accounts) :])
    held = getattr(header, "held_alerts", {})
    detector.alerts.restore({"open": header.open_alerts, "sequences": header.alert_sequences, "held": held})
    detector.campaign_of = header.campaign_of
    detector.models.restore({"first_used": header.model_first_used, "started": header.models_started})
    detector.population.restore(header.population)
    detector.stats.requests = header.requests
    detector.stats.accounts_tracked = len(detector.profiles)
    if header.version == FORMAT_VERSION:
        _restore_waiting(detector, header)
    return detector


def _restore_waiting(detector: Detector, header: Header) -> None:
    """The decisions waiting for the campaign clock, the membership history they read, the filters."""
    if detector.undecided is not None:
        detector.undecided.clear()
        detector._undecided_accounts.clear()
        for decision in map(_decision, header.undecided):
            detector.queue(decision)
    reviews = ((since, _decision(fields)) for since, fields in header.alarmed)
    detector.alarmed = {
        review.account_id: Alarm(since, review.assessment.risk, review)
        for since, review in reviews
        if review.account_id is not None and review.assessment is not None
    }
    detector.membership_history = {account: list(changes) for account, changes in header.membership_history.items()}
    _restore_filter(detector.seen_prompts, header.seen_prompts)
    _restore_filter(detector.seen_contents, header.seen_contents)


def _read_parts(data: memoryview) -> tuple[list[tuple[str, AccountProfile]], Header]:
    parts = []
    offset = 0
    while offset < len(data):
        (size,) = _length.unpack_from(data, offset)
        offset += _length.size
        if offset + size > len(data):
            raise SnapshotError(f"restore: the snapshot is cut short ({len(data) - offset} of {size} bytes of a part)")
        parts.append(data[offset : offset + size])
        offset += size
    if not parts:
        raise SnapshotError("restore: the snapshot has no header")
    header = _decode_header(parts[-1])
    if header.profile_parts != len(parts) - 1:
        raise SnapshotError(
            f"restore: the snapshot has {len(parts) - 1} profile parts; its header says {header.profile_parts}"
        )
    profiles: list[tuple[str, AccountProfile]] = []
    for part in parts[:-1]:
        profiles.extend(_decode_profiles(part))
    return profiles, header


def save(detector: Detector, path: str | Path) -> int:
    """Write the snapshot atomically; its size in bytes."""
    return write_atomically(path, snapshot_parts(detector))


def write_atomically(path: str | Path, parts: Iterable[bytes]) -> int:
    """Write ``parts`` to a temporary file, sync it and rename it to ``path``; bytes written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    size = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                out.write(part)
                size += len(part)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return size


def load(detector: Detector, path: str | Path) -> bool:
    """Restore ``detector`` from ``path`` if the file exists; whether it did."""
    path = Path(path)
    if not path.exists():
        return False
    restore(detector, path.read_bytes())
    return True

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

The file is written to a temporary name and renamed, so a crash mid-write leaves the previous
snapshot intact. It is pickled River state and MessagePack, for this worker's own use only:
never load a snapshot from an untrusted source.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import msgspec

from detector.alerting import OpenAlert
from detector.core import Detector
from detector.errors import DetectorError
from detector.profile import AccountProfile

FORMAT_VERSION = 1


class SnapshotError(DetectorError):
    """A snapshot file could not be read as this version's snapshot."""


class Snapshot(msgspec.Struct, array_like=True):
    version: int
    watermark: float
    started: float | None
    next_sweep: float
    profiles: list[tuple[str, AccountProfile]]
    """In least-recently-active order, which eviction relies on."""
    open_alerts: dict[str, OpenAlert]
    alert_sequences: dict[str, int]
    campaign_of: dict[str, str]
    model_first_used: dict[str, float]
    models_started: float | None
    population: bytes
    requests: int


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Snapshot)


def snapshot_bytes(detector: Detector) -> bytes:
    """The detector's state as one MessagePack document."""
    return _encoder.encode(Snapshot(
        version=FORMAT_VERSION,
        watermark=detector.watermark,
        started=detector.started,
        next_sweep=detector.sweeps.next_boundary,
        profiles=list(detector.profiles.items()),
        open_alerts=detector.alerts.open,
        alert_sequences=detector.alerts._sequences,
        campaign_of=detector.campaign_of,
        model_first_used=detector.models._first_used,
        models_started=detector.models._started,
        population=pickle.dumps(detector.population, protocol=pickle.HIGHEST_PROTOCOL),
        requests=detector.stats.requests,
    ))


def restore(detector: Detector, data: bytes) -> Detector:
    """Load a snapshot into a freshly built ``detector`` (its policy and linking mode are kept)."""
    try:
        snapshot = _decoder.decode(data)
    except msgspec.DecodeError as error:
        raise SnapshotError(f"restore: expected a version {FORMAT_VERSION} snapshot; got {error}") from None
    if snapshot.version != FORMAT_VERSION:
        raise SnapshotError(f"restore: expected snapshot version {FORMAT_VERSION}; got {snapshot.version}")
    detector.watermark = snapshot.watermark
    detector.started = snapshot.started
    detector.sweeps.next_boundary = snapshot.next_sweep
    detector.profiles = dict(snapshot.profiles)
    detector.alerts.open = snapshot.open_alerts
    detector.alerts._sequences = snapshot.alert_sequences
    detector.campaign_of = snapshot.campaign_of
    detector.models._first_used = snapshot.model_first_used
    detector.models._started = snapshot.models_started
    detector.population = pickle.loads(snapshot.population)
    detector.stats.requests = snapshot.requests
    detector.stats.accounts_tracked = len(detector.profiles)
    return detector


def save(detector: Detector, path: str | Path) -> int:
    """Write the snapshot atomically; its size in bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = snapshot_bytes(detector)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(data)


def load(detector: Detector, path: str | Path) -> bool:
    """Restore ``detector`` from ``path`` if the file exists; whether it did."""
    path = Path(path)
    if not path.exists():
        return False
    restore(detector, path.read_bytes())
    return True

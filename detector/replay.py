"""``detector replay``: the detection stages over a file of request.v1 JSON lines.

Each line is decoded like a Kafka message: one record, or a JSON array of records (a batched
envelope); a bad record inside an array is rejected alone, its index in the dead letter.

What teams run first, on their own historical logs, before going live: the same stage handlers
as the worker (:mod:`detector.detection.stages`), chained in one process, so the same records
give the same alerts.

With ``workers > 1`` the detect stage runs in that many processes, each detecting for its share of
the accounts (each account goes to the shard given the fewest records when its first record comes:
:class:`_Router`), and this process routes each line to its shard and runs the link and merge stages
over their outputs in input order. It fires the same dedup keys as one worker, but not byte for byte
the same events, for the reasons a worker with several input partitions differs from replay:

* each shard's population models (River quantiles, ``HalfSpaceTrees``) learn from its accounts
  only, and its clock is the newest of its own records: scores can move by a little;
* a shard's alert decisions wait for the campaign stages here (as the worker's wait for the
  campaign step: :meth:`Detector.decide <detector.detection.core.Detector.decide>`): membership news
  reaches a shard a few chunks of lines later (:data:`CHUNKS_IN_FLIGHT`), so a decision is taken when
  the news of its time has come, judged with the campaign its account was in then, and its alert
  goes out with the shard's next reply, after alerts of later lines;
* a shard sweeps idle alerts when its own clock crosses a boundary, so a resolution can carry a
  slightly different time.

The outputs are deterministic for a given file and number of workers: the shards process the same
chunks of lines in lock-step and their outputs are merged by line number.
"""

from __future__ import annotations

import gc
import gzip
import heapq
import itertools
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

import msgspec
import orjson

from detector.detection.alerting import DEFAULT_RUNBOOK, DEFAULT_SOURCE, Alert
from detector.detection.campaigns import AttributeObservation, Membership
from detector.detection.core import Detector
from detector.detection.policy import DetectionPolicy
from detector.detection.stages import CampaignStages, DeadLetter, DetectStage, Split, encode_membership
from detector.errors import DetectorError

CHUNK_LINES = 1024
"""Lines each shard detects before the link and merge stages take in their outputs."""
CHUNKS_IN_FLIGHT = 4
"""Chunks a shard may be ahead of the link and merge stages, so that a shard with more work in one
chunk does not stall the others: membership news reaches the shards this many chunks late, and
their alert decisions wait for it."""


@dataclass
class ReplaySummary:
    """What a replay did, for the one-line summary and for tests.

    ``--members`` gets the membership stream as the worker's compacted topic would hold it:
    one line per change, the last line of an account being its current campaign.
    """

    lines: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    alerts: Counter = field(default_factory=Counter)
    alerted_accounts: set = field(default_factory=set)
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.lines / self.seconds if self.seconds else 0.0
        reasons = ", ".join(f"{reason} {count}" for reason, count in self.rejected.most_common()) or "none"
        return (
            f"replay: {self.lines:,} lines, {self.accepted:,} records accepted, "
            f"{sum(self.rejected.values()):,} rejected "
            f"({reasons}); {self.alerts['firing']:,} firing and {self.alerts['resolved']:,} resolved alerts "
            f"on {len(self.alerted_accounts):,} accounts; {self.seconds:.1f} s ({rate:,.0f} lines/s)"
        )


def open_input(path: str, stack: ExitStack) -> BinaryIO:
    """A binary stream of ``path``: ``-`` is stdin, ``.gz`` is decompressed."""
    if path == "-":
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return stack.enter_context(gzip.open(path, "rb"))
    return stack.enter_context(open(path, "rb", buffering=1 << 20))


def open_output(path: str | None, stack: ExitStack) -> BinaryIO:
    """A binary sink: ``None`` or ``-`` is stdout, ``.gz`` is compressed."""
    if path in (None, "-"):
        return sys.stdout.buffer
    if path.endswith(".gz"):
        return stack.enter_context(gzip.open(path, "wb"))
    return stack.enter_context(open(path, "wb"))


class _Outputs:
    """The replay's sinks, and the summary's counts of what went into them."""

    def __init__(
        self, summary: ReplaySummary, alerts_out: BinaryIO, dlq_out: BinaryIO | None, members_out: BinaryIO | None
    ):
        self.summary = summary
        self.alerts_out = alerts_out
        self.dlq_out = dlq_out
        self.members_out = members_out

    def alert(self, status: str, account_ids: tuple[str, ...], event: bytes) -> None:
        self.summary.alerts[status] += 1
        self.summary.alerted_accounts.update(account_ids)
        self.alerts_out.write(event + b"\n")

    def dead_letters(self, dead_letters: Sequence[DeadLetter]) -> None:
        for dead_letter in dead_letters:
            self.summary.rejected[dead_letter.reason] += 1
            if self.dlq_out is not None:
                self.dlq_out.write(dead_letter.value + b"\n")

    def memberships(self, memberships: Sequence[Membership]) -> None:
        if self.members_out is not None:
            self.members_out.writelines(encode_membership(membership) + b"\n" for membership in memberships)

    def detected(
        self,
        alerts: Sequence[Alert],
        dead_letters: Sequence[DeadLetter],
        memberships: Sequence[Membership],
        event_kwargs: dict,
    ) -> None:
        """What the detect stage made of a line (or of the end of the input), when campaigns run here."""
        if dead_letters:
            self.dead_letters(dead_letters)
        if alerts:
            for encoded in _encoded(alerts, event_kwargs):
                self.alert(*encoded)
        if memberships:
            self.memberships(memberships)


def _encoded(alerts: Sequence[Alert], event_kwargs: dict) -> list[tuple[str, tuple[str, ...], bytes]]:
    return [(alert.status, alert.account_ids, orjson.dumps(alert.to_cloudevent(**event_kwargs))) for alert in alerts]


def replay(
    detector: Detector,
    source: BinaryIO,
    alerts_out: BinaryIO,
    dlq_out: BinaryIO | None = None,
    members_out: BinaryIO | None = None,
    *,
    source_name: str = "-",
    progress: bool = False,
    alert_source: str = DEFAULT_SOURCE,
    runbook_url: str = DEFAULT_RUNBOOK,
) -> ReplaySummary:
    """Run the three stages in this process over every line of ``source``; alerts as JSON lines to ``alerts_out``."""
    summary = ReplaySummary()
    outputs = _Outputs(summary, alerts_out, dlq_out, members_out)
    started = time.perf_counter()
    bar = _progress_bar() if progress else None
    event_kwargs = {"source": alert_source, "runbook_url": runbook_url}
    stage = DetectStage(detector, CampaignStages(detector.policy.campaigns))
    handle = stage.handle
    lines = accepted = 0  # counted in locals, not on the summary: this loop runs per record
    for number, line in enumerate(source, start=1):
        if bar is not None and number % 8192 == 0:
            bar.update(number - bar.n)
        if line.isspace():
            continue
        lines += 1
        requests, alerts, dead_letters, _, memberships, _ = handle(
            line.rstrip(b"\r\n"), topic=source_name, partition=None, offset=number
        )
        accepted += len(requests)
        if dead_letters or alerts or memberships:
            outputs.detected(alerts, dead_letters, memberships, event_kwargs)
    drained = stage.drain()
    outputs.detected(drained.alerts, drained.dead_letters, drained.memberships, event_kwargs)
    summary.lines, summary.accepted = lines, accepted
    if bar is not None:
        bar.update(lines - bar.n)
        bar.close()
    summary.seconds = time.perf_counter() - started
    return summary


class _Keyed(msgspec.Struct):
    account_id: str


_account_of = msgspec.json.Decoder(_Keyed).decode
_ACCOUNT_KEY = b'"account_id":"'
# Observations cross the process boundary as MessagePack: ~5x cheaper than pickling NamedTuples.
_encode_observations = msgspec.msgpack.Encoder().encode
_decode_observations = msgspec.msgpack.Decoder(list[AttributeObservation]).decode


_SPLIT, _BLANK = 255, 254
"""A line's owner when its records may belong to several shards (each takes its own), and when it is blank:
owners are bytes, so that each shard's selection of a chunk is one :meth:`bytes.translate`."""
MAX_WORKERS = _BLANK
"""The most shards a replay can route lines to: shard indexes and the two codes above fit a byte."""


NEW_ACCOUNT_WORK = 16
"""What a shard spends on an account beyond its records' count, in records: its profile is made and
its early requests each send summaries to the link stage (fitted from shards' CPU: docs/performance.md)."""


MAX_ROUTED_ACCOUNTS = 4_000_000
"""Accounts the router remembers (~100 B each); those first seen after go by a stable hash of their id,
so an account's records still all go to one shard, whatever the lines before it."""


class _Router:
    """Which shard detects each account: the one given the least work so far, when the account's
    first record comes.

    A stable hash of the account id (as Kafka keying splits accounts between partitions) left the
    shards as uneven as the heaviest accounts make them (docs/performance.md). This choice depends
    only on the lines before, so a replay of a file is repeatable.
    """

    def __init__(self, workers: int):
        self.shard_of: dict[bytes, int] = {}
        """account id (UTF-8) → its shard"""
        self.work = [0] * workers
        """the work given to each shard, in records"""

    def owner(self, account: bytes) -> int:
        """The shard of ``account``'s next record."""
        shard = self.shard_of.get(account)
        if shard is None:
            shard = self._new(account)
        self.work[shard] += 1
        return shard

    def _new(self, account: bytes) -> int:
        work = self.work
        if len(self.shard_of) >= MAX_ROUTED_ACCOUNTS:  # a file of millions of made-up ids: memory stays bounded
            return zlib.crc32(account) % len(work)
        shard = self.shard_of[account] = work.index(min(work))
        work[shard] += NEW_ACCOUNT_WORK
        return shard

    def line_owners(self, lines: list[bytes]) -> bytes:
        """The shard of the one account each line's records belong to, :data:`_SPLIT` if they may be
        several accounts', :data:`_BLANK` if the line is blank.

        It runs once for every line of the input: a byte search finds the key of a compact record
        (``"account_id":"...`` once, no escapes) in a fraction of a decode; anything else is decoded.
        Inside a JSON string the pattern cannot occur (its quotes would be escaped).
        """
        owner, key, after = self.owner, _ACCOUNT_KEY, len(_ACCOUNT_KEY)
        owners = bytearray()
        for line in lines:
            start = line.find(key) + after
            end = line.find(b'"', start)
            if start >= after and end > 0 and line.find(b"\\", start, end) < 0 and line.find(key, end) < 0:
                owners.append(owner(line[start:end]))
            elif line.isspace():
                owners.append(_BLANK)
            else:
                try:
                    owners.append(owner(_account_of(line).account_id.encode("utf-8", "surrogatepass")))
                except (msgspec.DecodeError, msgspec.ValidationError):  # an envelope, or a bad record
                    owners.append(_SPLIT)
        return bytes(owners)

    def record_owners(self, line: bytes) -> bytes:
        """The shard of each valid record of a :data:`_SPLIT` line, in order (as the shards decode it)."""
        requests, _ = DetectStage.decode(line)
        return bytes([self.owner(request.account_id.encode("utf-8", "surrogatepass")) for request in requests])


class _Chunk(NamedTuple):
    """The next :data:`CHUNK_LINES` lines of the input as the shards get them: the last chunk is the
    one with fewer lines (none, when the input ends at a chunk's end)."""

    selected: list[bytes]
    """For each shard, per line of the chunk: 1 if it detects over that line."""
    split: dict[int, bytes]
    """The numbers of the lines whose records may belong to several shards (each takes its own), and
    the shard of each of their valid records."""
    lines: int
    """The lines that are not blank."""


def _routed_chunks(source: BinaryIO, workers: int) -> Iterator[_Chunk]:
    """The input in chunks, each line routed to its shard.

    One process routes the lines, so that no shard looks into the lines of another: each skips
    them in C (:func:`itertools.compress`).
    """
    router = _Router(workers)
    # per shard, a table of owner → 1 if the shard detects over the owner's line
    selections = [bytes(owner in (index, _SPLIT) for owner in range(256)) for index in range(workers)]
    first = 1
    while True:
        chunk = list(itertools.islice(source, CHUNK_LINES))
        owners = router.line_owners(chunk)
        selected = [owners.translate(selection) for selection in selections]
        split = {}
        if _SPLIT in owners:
            split = {
                first + place: router.record_owners(line)
                for place, (line, owner) in enumerate(zip(chunk, owners, strict=True))
                if owner == _SPLIT
            }
        yield _Chunk(selected, split, len(chunk) - owners.count(_BLANK))
        if len(chunk) < CHUNK_LINES:
            return
        first += CHUNK_LINES


# Items a shard returns per line, merged across shards by (line number, phase, shard): the clock
# reaches the campaign stages before the line's observations, as in one process.
_TICK, _OBSERVATIONS, _ALERTS, _DEAD_LETTERS = range(4)


def _shard_main(
    connection, path: str, source_name: str, shard: int, workers: int, policy: DetectionPolicy, event_kwargs: dict
) -> None:
    """A detect shard: per request from the parent, apply the membership news it carries and take the
    alert decisions whose time the campaign clock has passed, then detect over its lines of the next
    chunk (a :class:`_Chunk`'s ``selected`` and ``split``; none at the end of the input); reply with
    the decisions' alerts and the chunk's items, line by line, the records accepted and its clock."""
    detector = Detector(policy, wait_for_campaigns=True)
    stage = DetectStage(detector)
    with ExitStack() as stack:
        numbered = enumerate(open_input(path, stack), start=1)
        first = 1
        while (request := connection.recv()) is not None:
            memberships, announced, campaign_clock, selected, splits = request
            detector.apply_memberships(memberships, announced)
            items: list[tuple] = []
            if decided := detector.decide(campaign_clock):  # before the chunk's lines: merged first
                items.append((first - 1, _ALERTS, shard, _encoded(decided, event_kwargs)))
            accepted = 0
            if selected is not None:
                for number, line in itertools.compress(itertools.islice(numbered, len(selected)), selected):
                    split = None
                    if splits and (owners := splits.get(number)) is not None:
                        split = Split(bytes([owner == shard for owner in owners]), number % workers == shard)
                    boundary = detector.sweeps.next_boundary
                    detected = stage.handle(
                        line.rstrip(b"\r\n"), topic=source_name, partition=None, offset=number, split=split
                    )
                    accepted += len(detected.requests)
                    _shard_items(items, number, shard, detector, boundary, detected, event_kwargs)
                first += len(selected)
                if len(selected) < CHUNK_LINES:  # after the last line: records still waiting, held records' verdict
                    boundary = detector.sweeps.next_boundary
                    _shard_items(items, first, shard, detector, boundary, stage.drain(), event_kwargs)
            connection.send((items, accepted, detector.watermark))
    connection.close()


def _shard_items(
    items: list[tuple], number: int, shard: int, detector: Detector, boundary: float, detected, event_kwargs: dict
) -> None:
    """A shard's items of line ``number``: the clock's tick if it crossed a sweep ``boundary``, then its outputs."""
    if detector.sweeps.next_boundary != boundary:
        items.append((number, _TICK, shard, detector.watermark))
    if detected.observations:
        now = max(observation.timestamp for observation in detected.observations)
        items.append((number, _OBSERVATIONS, shard, _encode_observations(detected.observations), now))
    if detected.alerts:
        items.append((number, _ALERTS, shard, _encoded(detected.alerts, event_kwargs)))
    if detected.dead_letters:
        items.append((number, _DEAD_LETTERS, shard, detected.dead_letters))


_MERGING_GC_THRESHOLDS = (200_000, 20, 20)
"""The cyclic collector's thresholds in the process that merges the shards' replies: each reply is a
burst of objects that dies once merged, and the campaign state only grows, so at the default
thresholds its collector kept walking both; it runs seldom, and the replies are gone by then."""


def replay_sharded(
    policy: DetectionPolicy,
    path: str,
    workers: int,
    alerts_out: BinaryIO,
    dlq_out: BinaryIO | None = None,
    members_out: BinaryIO | None = None,
    *,
    source_name: str | None = None,
    progress: bool = False,
    alert_source: str = DEFAULT_SOURCE,
    runbook_url: str = DEFAULT_RUNBOOK,
) -> ReplaySummary:
    """The detect stage in ``workers`` processes over the file at ``path``, the link and merge stages here;
    ``source_name`` names the input in dead letters (default: ``path``)."""
    if workers > MAX_WORKERS:
        raise DetectorError(f"replay: --workers must be at most {MAX_WORKERS}; got {workers}")
    summary = ReplaySummary()
    outputs = _Outputs(summary, alerts_out, dlq_out, members_out)
    started = time.perf_counter()
    event_kwargs = {"source": alert_source, "runbook_url": runbook_url}
    context = multiprocessing.get_context("fork")  # the shards start in milliseconds, the code already loaded
    gc.freeze()  # what is loaded lives on: no process's collector walks it, nor copies its pages by marking them
    connections, processes = [], []
    for index in range(workers):
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_shard_main,
            args=(child_end, path, source_name or path, index, workers, policy, event_kwargs),
            name=f"replay-shard-{index}",
            daemon=True,
        )
        process.start()
        child_end.close()
        connections.append(parent_end)
        processes.append(process)
    bar = _progress_bar() if progress else None
    campaigns = CampaignStages(policy.campaigns)
    with ExitStack() as stack:  # this process reads the input too, to route its lines
        stack.callback(gc.set_threshold, *gc.get_threshold())
        gc.set_threshold(*_MERGING_GC_THRESHOLDS)
        chunks = _routed_chunks(open_input(path, stack), workers)
        in_flight: deque[int] = deque()  # lines of each chunk the shards are detecting
        memberships: list[Membership] = []  # the news not yet sent to the shards,
        announced: list[float] = []  # the event time each change was made,
        campaign_clock = float("-inf")  # and the time up to which every shard's summaries were taken

        def request(chunk: _Chunk | None) -> None:
            """A chunk (None: the end of the input) to every shard, with the news it is to apply first."""
            for index, connection in enumerate(connections):
                selected = chunk.selected[index] if chunk is not None else None
                split = chunk.split if chunk is not None else None
                connection.send((memberships, announced, campaign_clock, selected, split))
            memberships.clear()
            announced.clear()

        def merge(replies: list[tuple]) -> None:
            """The shards' items in line order through the link and merge stages, and to the outputs."""
            for item in heapq.merge(*(reply[0] for reply in replies)):
                phase = item[1]
                if phase in (_TICK, _OBSERVATIONS):
                    observations, now = ((), item[3]) if phase == _TICK else (_decode_observations(item[3]), item[4])
                    merged = campaigns.handle(observations, now)
                    for encoded in _encoded(merged.alerts, event_kwargs):
                        outputs.alert(*encoded)
                    if merged.memberships:
                        outputs.memberships(merged.memberships)
                        memberships.extend(merged.memberships)
                        announced.extend([now] * len(merged.memberships))
                elif phase == _ALERTS:
                    for encoded in item[3]:
                        outputs.alert(*encoded)
                else:
                    outputs.dead_letters(item[3])

        try:
            for chunk in itertools.islice(chunks, CHUNKS_IN_FLIGHT):  # the shards work while this process merges
                in_flight.append(chunk.lines)
                request(chunk)
            while in_flight:
                replies = [connection.recv() for connection in connections]
                summary.lines += in_flight.popleft()
                summary.accepted += sum(reply[1] for reply in replies)
                merge(replies)
                # a shard's summaries to come are of its records to come: none older than its clock
                campaign_clock = max(campaign_clock, min(reply[2] for reply in replies))
                if bar is not None:
                    bar.update(summary.lines - bar.n)
                if (chunk := next(chunks, None)) is not None:
                    in_flight.append(chunk.lines)
                    request(chunk)
            campaign_clock = float("inf")  # the end of the input: every decision still waiting is taken
            request(None)
            merge([connection.recv() for connection in connections])
        finally:
            for connection in connections:
                with suppress(BrokenPipeError, OSError):
                    connection.send(None)
            for process in processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.terminate()
    if bar is not None:
        bar.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _progress_bar():
    from tqdm import tqdm

    return tqdm(unit=" lines", unit_scale=True, desc="replay", file=sys.stderr, mininterval=0.5)


def replay_file(
    policy: DetectionPolicy,
    input_path: str,
    output: str | None = None,
    dlq: str | None = None,
    members: str | None = None,
    *,
    workers: int = 1,
    **kwargs,
) -> ReplaySummary:
    """:func:`replay` (or :func:`replay_sharded`) with paths; a progress bar on stderr when it is a terminal.

    Shards read the input themselves: standard input is first copied to a temporary file.
    """
    with ExitStack() as stack:
        alerts_out = open_output(output, stack)
        dlq_out = open_output(dlq, stack) if dlq else None
        members_out = open_output(members, stack) if members else None
        progress = sys.stderr.isatty()
        if workers <= 1:
            source = open_input(input_path, stack)
            summary = replay(
                Detector(policy),
                source,
                alerts_out,
                dlq_out,
                members_out,
                source_name=input_path,
                progress=progress,
                **kwargs,
            )
        else:
            path = input_path
            if input_path == "-":
                spooled = stack.enter_context(tempfile.NamedTemporaryFile(prefix="replay-stdin-", suffix=".jsonl"))
                shutil.copyfileobj(sys.stdin.buffer, spooled)
                spooled.flush()
                path = spooled.name
            summary = replay_sharded(
                policy,
                path,
                workers,
                alerts_out,
                dlq_out,
                members_out,
                source_name=input_path,
                progress=progress,
                **kwargs,
            )
        alerts_out.flush()
    return summary


def default_workers() -> int:
    """One detect shard per core of this machine."""
    return os.cpu_count() or 1

"""``detector replay``: the detection core over a file of request.v1 JSON lines.

Each line is decoded like a Kafka message: one record, or a JSON array of records (a batched
envelope); a bad record inside an array is rejected alone, its index in the dead letter.

What teams run first, on their own historical logs, before going live: the same
:class:`~detector.detection.core.Detector` as the worker, so the same records give the same alerts.
"""

from __future__ import annotations

import gzip
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import BinaryIO

import orjson

from detector.detection.alerting import rfc3339
from detector.detection.core import Detector
from detector.detection.records import decode_envelope, rejection_to_dlq


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


def replay(
    detector: Detector,
    source: BinaryIO,
    alerts_out: BinaryIO,
    dlq_out: BinaryIO | None = None,
    members_out: BinaryIO | None = None,
    *,
    source_name: str = "-",
    progress: bool = False,
    alert_source: str = "urn:distillation-detector",
    runbook_url: str | None = None,
) -> ReplaySummary:
    """Run ``detector`` over every line of ``source``; alerts as JSON lines to ``alerts_out``."""
    summary = ReplaySummary()
    started = time.perf_counter()
    bar = _progress_bar() if progress else None
    event_kwargs = {"source": alert_source} | ({"runbook_url": runbook_url} if runbook_url else {})
    process = detector.process
    lines = accepted = 0  # counted in locals, not on the summary: this loop runs per record
    for number, line in enumerate(source, start=1):
        if bar is not None and number % 8192 == 0:
            bar.update(number - bar.n)
        if line.isspace():
            continue
        lines += 1
        requests, rejections = decode_envelope(line.rstrip(b"\r\n"))
        if rejections:
            for rejection in rejections:
                summary.rejected[rejection.reason] += 1
                if dlq_out is not None:
                    dlq_out.write(rejection_to_dlq(rejection, topic=source_name, partition=None, offset=number) + b"\n")
        accepted += len(requests)
        for request in requests:
            for alert in process(request):
                summary.alerts[alert.status] += 1
                summary.alerted_accounts.update(alert.account_ids)
                alerts_out.write(orjson.dumps(alert.to_cloudevent(**event_kwargs)) + b"\n")
        if detector.membership_updates:
            if members_out is not None:
                for update in detector.membership_updates:
                    members_out.write(
                        orjson.dumps(
                            {
                                "account_id": update.account_id,
                                "campaign_id": update.campaign_id,
                                "since": rfc3339(update.since),
                            }
                        )
                        + b"\n"
                    )
            detector.membership_updates.clear()
    summary.lines, summary.accepted = lines, accepted
    if bar is not None:
        bar.update(lines - bar.n)
        bar.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _progress_bar():
    from tqdm import tqdm

    return tqdm(unit=" lines", unit_scale=True, desc="replay", file=sys.stderr, mininterval=0.5)


def replay_file(
    detector: Detector,
    input_path: str,
    output: str | None = None,
    dlq: str | None = None,
    members: str | None = None,
    **kwargs,
) -> ReplaySummary:
    """:func:`replay` with paths; a progress bar on stderr when it is a terminal."""
    with ExitStack() as stack:
        source = open_input(input_path, stack)
        alerts_out = open_output(output, stack)
        dlq_out = open_output(dlq, stack) if dlq else None
        members_out = open_output(members, stack) if members else None
        summary = replay(
            detector,
            source,
            alerts_out,
            dlq_out,
            members_out,
            source_name=input_path,
            progress=sys.stderr.isatty(),
            **kwargs,
        )
        alerts_out.flush()
    return summary

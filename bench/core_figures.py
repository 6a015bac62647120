"""(d) The detection core over a JSON-lines file, against parsing the same file and nothing else.

``detector replay`` is the core with no broker in the way, so it is the ceiling of what one
worker process can do per core; parsing alone is the ceiling of any Python consumer of JSON.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import orjson

from detector.detection.core import Detector
from detector.detection.records import decode_request
from detector.replay import replay


def parse_only(path: Path) -> float:
    """Seconds to read and ``orjson.loads`` every line: the floor under any JSON consumer."""
    started = time.perf_counter()
    loads = orjson.loads
    with open(path, "rb", buffering=1 << 20) as source:
        for line in source:
            if line.strip():
                loads(line)
    return time.perf_counter() - started


def decode_only(path: Path) -> float:
    """Seconds to read and validate every line into a ``Request`` (msgspec), without detecting."""
    started = time.perf_counter()
    with open(path, "rb", buffering=1 << 20) as source:
        for line in source:
            if line.strip():
                decode_request(line.rstrip(b"\r\n"))
    return time.perf_counter() - started


def replay_core(path: Path) -> tuple[float, int]:
    """Seconds for :func:`detector.replay.replay` with a fresh detector, and the alerts it wrote."""
    with open(path, "rb", buffering=1 << 20) as source, open(os.devnull, "wb") as sink:
        summary = replay(Detector(), source, sink)
    return summary.seconds, sum(summary.alerts.values())


def measure(path: Path, records: int, repeat: int) -> dict:
    """Medians of ``repeat`` runs of each loop, as records/s, and the core's ratio to parsing."""
    parse = [parse_only(path) for _ in range(repeat)]
    decode = [decode_only(path) for _ in range(repeat)]
    core_runs = [replay_core(path) for _ in range(repeat)]
    core = [seconds for seconds, _ in core_runs]
    parse_rate = records / statistics.median(parse)
    core_rate = records / statistics.median(core)
    return {
        "records": records,
        "repeat": repeat,
        "parse_only_records_per_s": parse_rate,
        "decode_request_records_per_s": records / statistics.median(decode),
        "core_records_per_s": core_rate,
        "core_runs_records_per_s": [records / seconds for seconds in core],
        "core_to_parse_ratio": core_rate / parse_rate,
        "alerts": core_runs[0][1],
    }

"""``detector replay --workers N``: the speed-up of N detect shards over one, on the same file.

Runs of one and of N workers alternate (``1, N, 1, N, ...``), each in a fresh ``detector replay``
process, so a neighbour who takes a core for a while slows both alike; the figure is the median of
the pairs' ratios (each pair's two runs are next to each other in time, so a machine whose speed
drifts between pairs, as this VM's does by up to 40 %, moves the figure less than the ratio of the
medians, which is reported beside it). It also checks what makes the figure honest: both fire the
same dedup keys.

With ``--one-core`` it also runs both pinned to one core, alternated the same way: there the N
shards and the process that routes and links take turns, and the ratio of their wall times is the
work the split adds (routing, messages, N population models), apart from what a neighbour does to
two cores at once.

    python bench/replay_workers.py RECORDS.jsonl [--workers 2] [--rounds 5] [--one-core]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_replay(records: Path, workers: int, alerts: Path, core: int | None = None) -> tuple[float, float]:
    """Wall seconds of one ``detector replay`` process (start-up included), and the CPU seconds
    it and its shards used: on a shared machine the second says whether a slow run lacked a core.
    With ``core``, the process and its shards run on that core only."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "detector.cli", "replay", str(records), "-o", str(alerts), "--workers", str(workers)],
        check=True,
        capture_output=True,
        preexec_fn=None if core is None else lambda: os.sched_setaffinity(0, {core}),
    )
    return time.perf_counter() - started, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dedup_keys(alerts: Path) -> set[str]:
    return {json.loads(line)["data"]["dedup_key"] for line in alerts.read_text().splitlines()}


def alternated(
    records: Path, workers: int, rounds: int, folder: Path, core: int | None = None
) -> tuple[dict[int, list[float]], dict[int, list[float]], dict[int, Path]]:
    """Wall and CPU seconds of ``rounds`` alternating runs of one worker and of ``workers``, and their alerts."""
    runs: dict[int, list[float]] = {1: [], workers: []}
    cpu: dict[int, list[float]] = {1: [], workers: []}
    outputs = {count: folder / f"alerts-{count}-{core}.jsonl" for count in runs}
    for _ in range(rounds):
        for count in runs:
            seconds, cpu_seconds = run_replay(records, count, outputs[count], core)
            runs[count].append(seconds)
            cpu[count].append(cpu_seconds)
    return runs, cpu, outputs


def measure(records: Path, workers: int = 2, rounds: int = 5, one_core: bool = False) -> dict:
    """Medians of ``rounds`` alternating runs of one worker and of ``workers``; lines per second and speed-up
    (the median of the pairs' ratios); with ``one_core``, also the ratio of the two pinned to one core
    (the work the split adds)."""
    lines = sum(1 for line in records.open("rb") if line.strip())
    load_at_start = os.getloadavg()
    pinned: dict = {}
    with tempfile.TemporaryDirectory(prefix="replay-workers-") as folder:
        runs, cpu, outputs = alternated(records, workers, rounds, Path(folder))
        same_keys = dedup_keys(outputs[1]) == dedup_keys(outputs[workers])
        if one_core:
            core = min(os.sched_getaffinity(0))
            # a reference figure, not a goal's: three pairs keep `make bench` under a quarter of an hour
            on_one, _, _ = alternated(records, workers, min(rounds, 3), Path(folder), core)
            pinned = {
                "one_core_seconds_1": on_one[1],
                f"one_core_seconds_{workers}": on_one[workers],
                "one_core_work_ratio": statistics.median(on_one[workers]) / statistics.median(on_one[1]),
            }
    one, many = statistics.median(runs[1]), statistics.median(runs[workers])
    pairs = [single / split for single, split in zip(runs[1], runs[workers], strict=True)]
    return pinned | {
        "lines": lines,
        "workers": workers,
        "rounds": rounds,
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "seconds_1": runs[1],
        f"seconds_{workers}": runs[workers],
        "cpu_seconds_1": cpu[1],
        f"cpu_seconds_{workers}": cpu[workers],
        "lines_per_s_1": lines / one,
        f"lines_per_s_{workers}": lines / many,
        "pair_speed_ups": pairs,
        "speed_up": statistics.median(pairs),
        "ratio_of_medians": one / many,
        "same_dedup_keys": same_keys,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one-core", action="store_true", help="also both pinned to one core: the work the split adds")
    args = parser.parse_args()
    result = measure(args.records, args.workers, args.rounds, args.one_core)
    print(json.dumps(result, indent=2))
    print(
        f"replay: 1 worker {result['lines_per_s_1']:,.0f} lines/s, {args.workers} workers "
        f"{result[f'lines_per_s_{args.workers}']:,.0f} lines/s: {result['speed_up']:.2f} x "
        f"(median of {args.rounds} alternating pairs, {min(result['pair_speed_ups']):.2f}-"
        f"{max(result['pair_speed_ups']):.2f}; ratio of the medians {result['ratio_of_medians']:.2f} x; "
        f"same dedup keys: {result['same_dedup_keys']}; "
        f"load average {result['load_average_at_start'][0]:.1f} at start)"
    )
    if args.one_core:
        print(f"on one core, {args.workers} workers take {result['one_core_work_ratio']:.2f} x the time of one")
    return 0 if result["same_dedup_keys"] else 1


if __name__ == "__main__":
    sys.exit(main())

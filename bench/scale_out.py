"""Scale-out: the same backlog drained by one worker and by two workers of one group, alternated.

    python bench/scale_out.py                      # 400k records in NDJSON envelopes of 200, 8 partitions
    python bench/scale_out.py --rounds 5 --records 600000

The records are in the input topic before any worker starts, so no producer shares the CPU with
the workers while they are timed. Each run is timed from the moment every worker has processed a
record (the group has settled: a worker sees records only once it holds partitions) to the last
record, so both drain the same records but for the first worker's head start, which is left out.
The tail counts: accounts do not spread evenly over partitions, and a worker whose partitions run
dry early idles, as it would in production (8 partitions, the default, spread them better than 4).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import kafka_figures  # noqa: E402
import workload  # noqa: E402

from detector.sim.broker import EmbeddedBroker  # noqa: E402
from detector.sim.produce import produce_records  # noqa: E402
from tests.integration.harness import Topics  # noqa: E402

POLL_SECONDS = 0.25


async def drain(
    bootstrap: str, work: workload.Workload, *, workers: int, partitions: int, batch: int, name: str, work_dir: Path
) -> dict:
    """Records/s of ``workers`` workers of one group, from all of them running to the backlog done."""
    topics = Topics(name, partitions)
    await topics.create(bootstrap)
    await produce_records((orjson.loads(line) for line in work.lines), bootstrap, topics.input, rate=1e12, batch=batch)
    records = work.records
    running = [kafka_figures.worker(bootstrap, topics, name, work_dir) for _ in range(workers)]
    try:
        window_start = None
        deadline = time.monotonic() + 120 + records / 2_000
        while True:
            for worker in running:
                if worker.process.poll() is not None:
                    raise RuntimeError(f"worker exited with {worker.process.returncode}:\n{worker.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{workers} worker(s) did not drain {records:,} records in time")
            seen = await asyncio.gather(*(asyncio.to_thread(worker.records_seen) for worker in running))
            now, done = time.perf_counter(), sum(seen)
            if window_start is None and min(seen) >= 1:
                window_start = (now, done)
            if window_start is not None and done >= records:
                break
            await asyncio.sleep(POLL_SECONDS)
    finally:
        for worker in running:
            worker.stop()
    started, done_at_start = window_start
    return {
        "workers": workers,
        "records_per_s": (done - done_at_start) / (now - started),
        "window_records": done - done_at_start,
        "window_seconds": now - started,
        "records_per_worker": seen,
    }


async def compare(records: int, rounds: int, partitions: int, batch: int, work_dir: Path) -> None:
    work = workload.build(records).head(records)
    print(
        f"scale-out: {work.records:,} records ({work.mean_bytes:,.0f} B mean), NDJSON {batch} records/msg, "
        f"{partitions} partitions, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rates: dict[int, list[float]] = {1: [], 2: []}
    busiest_shares = []
    with EmbeddedBroker(log_path=work_dir / "tansu.log") as broker:
        for round_number in range(rounds):
            for workers in (1, 2):
                result = await drain(
                    broker.bootstrap,
                    work,
                    workers=workers,
                    partitions=partitions,
                    batch=batch,
                    name=f"scale-{workers}-{round_number}-{os.getpid()}",
                    work_dir=work_dir,
                )
                rates[workers].append(result["records_per_s"])
                if workers > 1:
                    busiest_shares.append(max(result["records_per_worker"]) / sum(result["records_per_worker"]))
                split = " / ".join(f"{seen:,.0f}" for seen in result["records_per_worker"])
                print(
                    f"round {round_number + 1}: {workers} worker(s) {result['records_per_s']:9,.0f} records/s "
                    f"({result['window_records']:,.0f} records in {result['window_seconds']:.1f} s; "
                    f"per worker {split})",
                    flush=True,
                )
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    pairs = [b / a for a, b in zip(rates[1], rates[2], strict=True)]
    print(
        f"medians: 1 worker {one:,.0f} records/s, 2 workers {two:,.0f} records/s: {two / one:.2f} x "
        f"(pairwise {min(pairs):.2f}-{max(pairs):.2f} x); load average {os.getloadavg()[0]:.2f}"
    )
    busiest = statistics.median(busiest_shares)
    print(
        f"the busier of two workers had {busiest:.0%} of the records (accounts by partition): "
        f"{1 / busiest:.2f} x is the most two workers could do with this split"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--batch", type=int, default=200, help="records per NDJSON envelope")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="detector-scale-") as work_dir:
        asyncio.run(compare(args.records, args.rounds, args.partitions, args.batch, Path(work_dir)))


if __name__ == "__main__":
    main()

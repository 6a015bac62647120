"""Worker throughput of two source trees, alternated on one embedded broker: an A/B of a change.

    git worktree add /tmp/before HEAD~1
    python bench/worker_ab.py /tmp/before . --records 30000 --batch 1 --pairs 3

Each worker runs ``python -m detector.cli worker`` with its tree first on ``PYTHONPATH``; the
figure is (b) or (c) of ``bench/run.py`` (records/s from the first produce to the last record
counted), so a busy machine moves both sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import kafka_figures  # noqa: E402
import workload  # noqa: E402

from detector.sim.broker import EmbeddedBroker  # noqa: E402


async def compare(trees: list[Path], records: int, batch: int, pairs: int, partitions: int) -> None:
    work = workload.build(records + 1)
    runs: dict[Path, list[float]] = {tree: [] for tree in trees}
    with (
        tempfile.TemporaryDirectory(prefix="detector-ab-") as folder,
        EmbeddedBroker(log_path=Path(folder) / "tansu.log") as broker,
    ):
        os.chdir(folder)  # `python -m` puts the working directory before PYTHONPATH
        for pair in range(pairs):
            for side, tree in enumerate(trees):
                os.environ["PYTHONPATH"] = str(tree)
                result = await kafka_figures.worker_throughput(
                    broker.bootstrap,
                    work,
                    batch=batch,
                    partitions=partitions,
                    name=f"ab{side}-{pair}",
                    work_dir=Path(folder),
                )
                runs[tree].append(result["records_per_s"])
                print(
                    f"{tree}  {result['records_per_s']:9,.0f} records/s  worker CPU {result['worker_cpu_share']:.0%}",
                    flush=True,
                )
    first = statistics.median(runs[trees[0]])
    for tree, values in runs.items():
        median = statistics.median(values)
        print(
            f"{tree}: median {median:,.0f} records/s ({median / first:.2f}x)  runs "
            + ", ".join(f"{value:,.0f}" for value in values)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", type=Path, nargs=2, help="source trees (each holds detector/)")
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=1, help="records per message (1, or NDJSON envelopes)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(compare([tree.resolve() for tree in args.trees], args.records, args.batch, args.pairs, args.partitions))


if __name__ == "__main__":
    main()

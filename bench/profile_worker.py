"""Where the worker's time goes: py-spy on a real worker while it works through (c)'s workload.

    pip install -e '.[bench]'    # py-spy
    python bench/profile_worker.py [--records 300000] [--batch 200] [--rate 200]

Starts the embedded broker and a worker as ``make bench`` does, attaches ``py-spy record`` to the
worker once it has processed its first record, feeds the records, and prints the share of the
worker's main thread spent in each stage. py-spy needs ``ptrace`` rights on some machines (root,
or ``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kafka_figures
import workload

from detector.sim.broker import EmbeddedBroker

STAGES = (  # the first frame found in a sample names its stage
    ("Detector.process", "Detector.process (the core)"),
    ("decode_envelope", "decode_envelope (msgspec)"),
    ("CampaignStep.handle", "campaign stage (link and merge)"),
    ("DetectStep.flush_summaries", "flush_summaries"),
    ("DetectStep.decode", "decode (before ordering)"),
    ("AlertEncoder.__call__", "alert encoding"),
    ("state.snapshot_parts", "snapshot"),
    ("AccountHandover.publish", "profile publishing"),
)
IDLE = ("EpollSelector.select", "_PollLikeSelector.select")
PY_SPY = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def shares(raw_path: Path) -> tuple[int, Counter]:
    """Samples of the worker's main thread, and how many fell in each stage."""
    by_stage: Counter = Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [frame.split(" (")[0] for frame in stack.split(";")]
        if "run_worker" not in frames:  # Faust's consumer thread, the metrics server
            continue
        total += int(count)
        stage = next((name for frame, name in STAGES if frame in frames), None)
        if stage is None:
            stage = "idle" if frames[-1] in IDLE else "Kafka clients, event loop, the rest"
        by_stage[stage] += int(count)
    return total, by_stage


async def profile(records: int, batch: int, rate: int, out: Path) -> dict:
    work = workload.build(records + 1)
    work_dir = Path(tempfile.mkdtemp(prefix="detector-profile-"))
    spy: list[subprocess.Popen] = []
    start_warm = kafka_figures.start_warm

    async def start_warm_and_attach(*args, **kwargs):
        running, seconds = await start_warm(*args, **kwargs)
        spy.append(
            subprocess.Popen(
                [PY_SPY, "record", "-r", str(rate), "-f", "raw", "-o", str(out), "--pid", str(running.process.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        await asyncio.sleep(1.0)
        return running, seconds

    kafka_figures.start_warm = start_warm_and_attach
    with EmbeddedBroker(log_path=work_dir / "tansu.log") as broker:
        measured = await kafka_figures.worker_throughput(
            broker.bootstrap, work, batch=batch, partitions=4, name="profile", work_dir=work_dir
        )
    for process in spy:
        process.wait(timeout=60)
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=200, help="records per message (1: single-record)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--output", type=Path, default=Path("bench/results/worker-profile.txt"))
    args = parser.parse_args()
    if PY_SPY is None:
        parser.error("py-spy is not installed: pip install -e '.[bench]'")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    measured = asyncio.run(profile(args.records, args.batch, args.rate, args.output))
    total, by_stage = shares(args.output)
    print(
        f"worker: {measured['records']:,} records, {measured['records_per_s']:,.0f} rec/s, "
        f"{measured['worker_cpu_share']:.0%} of a core; {total:,} samples of its main thread ({args.output})"
    )
    for stage, count in by_stage.most_common():
        print(f"{count / total:7.1%}  {stage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

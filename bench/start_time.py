"""Time from launching ``detector worker`` to its first record processed: fresh, and after ``kill -9``.

    python bench/start_time.py                          # production defaults, 3 rounds
    python bench/start_time.py --rounds 5 --set session_timeout_s=6

Each round creates fresh topics and a fresh app id, puts records in the input topic, launches a
worker and polls its metrics until it has processed a record (fresh start). It then SIGKILLs the
worker once its offsets are committed, adds records, and launches a new worker with the same app
id and data directory, as a supervisor would after a crash (restart after a crash). The worker is
configured only through ``DETECTOR_*`` variables: production defaults but for ``--set``.

Beside each time, the milestones of the worker's log (seconds from launch): its first log line
(interpreter and imports), each consumer group joined, and the first record.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent)]

from detector.sim.broker import EmbeddedBroker  # noqa: E402
from detector.sim.scenario import Scenario  # noqa: E402
from detector.sim.traffic import generate  # noqa: E402
from detector.stream.config import Settings  # noqa: E402
from tests.integration.harness import Topics, Worker, produce  # noqa: E402

POLL_SECONDS = 0.05
RECORDS = 200
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
_JOINED = re.compile(r"Joined group '([^']+)'")


def log_milestones(log_path: Path, launched_at: float) -> dict[str, float]:
    """Seconds from launch to the first log line and to each consumer group's first join."""
    milestones: dict[str, float] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        stamp = _LOG_TIME.match(line)
        if not stamp:
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - launched_at
        milestones.setdefault("first log line", at)
        joined = _JOINED.search(line)
        if joined:
            milestones.setdefault(f"joined {joined.group(1)}", at)
    return milestones


def until_first_record(worker: Worker, launched_at: float, already: float, timeout: float = 180.0) -> float:
    """Seconds from launch until the worker's metrics count more than ``already`` records."""
    deadline = time.monotonic() + timeout
    while worker.records_seen() <= already:
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.process.returncode}:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no record processed within {timeout:.0f} s:\n{worker.log_tail()}")
        time.sleep(POLL_SECONDS)
    return time.time() - launched_at


def launch(bootstrap: str, topics: Topics, app_id: str, work_dir: Path, settings: dict[str, str]):
    launched_at = time.time()
    worker = Worker(bootstrap, topics, app_id, work_dir, data_dir=work_dir / f"data-{app_id}", **settings)
    return worker, launched_at


def one_round(bootstrap: str, messages: list, name: str, work_dir: Path, settings: dict[str, str]) -> dict:
    topics = Topics(name, 4)
    half = len(messages) // 2
    asyncio.run(topics.create(bootstrap))
    asyncio.run(produce(bootstrap, topics.input, messages[:half]))
    app_id = f"{name}-app"
    worker, launched_at = launch(bootstrap, topics, app_id, work_dir, settings)
    result = {"fresh": until_first_record(worker, launched_at, 0.0)}
    result["fresh milestones"] = log_milestones(worker.log_path, launched_at)
    while worker.records_seen() < half:
        time.sleep(0.2)
    time.sleep(3.0)  # the detect stage commits after each batch; let a commit land
    worker.process.send_signal(signal.SIGKILL)
    worker.stop()
    asyncio.run(produce(bootstrap, topics.input, messages[half:]))
    worker, launched_at = launch(bootstrap, topics, app_id, work_dir, settings)
    try:
        result["after kill -9"] = until_first_record(worker, launched_at, 0.0)
        result["after kill -9 milestones"] = log_milestones(worker.log_path, launched_at)
    finally:
        worker.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a DETECTOR_* setting")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    # the production default, not the test harness's 3 s
    settings.setdefault("session_timeout_s", str(Settings().session_timeout_s))
    records = list(itertools.islice(generate(Scenario.demo(seed=3)), RECORDS))
    messages = [(record["account_id"].encode(), orjson.dumps(record)) for record in records]
    work_dir = Path(tempfile.mkdtemp(prefix="detector-start-"))
    print(f"settings {settings}; logs in {work_dir}")
    results = []
    with EmbeddedBroker(log_path=work_dir / "tansu.log") as broker:
        for number in range(args.rounds):
            result = one_round(broker.bootstrap, messages, f"start-{number}-{int(time.time())}", work_dir, settings)
            results.append(result)
            for kind in ("fresh", "after kill -9"):
                steps = ", ".join(f"{k} {v:.1f}" for k, v in result[f"{kind} milestones"].items())
                print(f"round {number + 1}: {kind:>13}: first record after {result[kind]:5.1f} s  ({steps})")
    for kind in ("fresh", "after kill -9"):
        times = [result[kind] for result in results]
        print(f"{kind:>13}: median {statistics.median(times):.1f} s, range {min(times):.1f}-{max(times):.1f} s")


if __name__ == "__main__":
    main()

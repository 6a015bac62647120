"""Alert latency (figure g) at several steady rates, to see what it depends on.

    python bench/latency_sweep.py 250 500 1000                    # records/s of single-record messages
    python bench/latency_sweep.py 1000 --fetch-max-wait-ms 1500   # with Faust's own fetch wait

Faust settings that have an environment name can be tried without code changes, e.g.
``CONSUMER_MAX_FETCH_SIZE=8388608 python bench/latency_sweep.py 1000``: the worker inherits them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import kafka_figures  # noqa: E402
import workload  # noqa: E402

from detector.sim.broker import EmbeddedBroker  # noqa: E402


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


async def sweep(rates: list[float], duration: float, partitions: int, work_dir: Path) -> None:
    print(
        "rate_sent  alerts  p50_all  p99_all  p50_account  p99_account  p50_campaign  p99_campaign  worker_cpu  drain_s"
    )
    with EmbeddedBroker(log_path=work_dir / "tansu.log") as broker:
        for rate in rates:
            work = workload.build(int(rate * duration) + 1, hours=6.0)
            result = await kafka_figures.alert_latency(
                broker.bootstrap,
                work,
                rate,
                partitions=partitions,
                name=f"sweep-{int(rate)}-{os.getpid()}",
                work_dir=work_dir,
            )
            every, account, campaign = result["all"], result["account"], result["campaign"]
            print(
                f"{result['rate_sent']:9,.0f}  {every['n']:6}  {seconds(every['p50']):>7}  {seconds(every['p99']):>7}  "
                f"{seconds(account['p50']):>11}  {seconds(account['p99']):>11}  {seconds(campaign['p50']):>12}  "
                f"{seconds(campaign['p99']):>12}  {result['worker_cpu_share']:10.0%}  {result['drain_seconds']:7.2f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rates", type=float, nargs="+", help="records/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--fetch-max-wait-ms", type=int, help="the worker's DETECTOR_FETCH_MAX_WAIT_MS")
    args = parser.parse_args()
    if args.fetch_max_wait_ms:
        kafka_figures.WORKER_SETTINGS["fetch_max_wait_ms"] = str(args.fetch_max_wait_ms)
    with tempfile.TemporaryDirectory(prefix="detector-latency-") as work_dir:
        asyncio.run(sweep(args.rates, args.seconds, args.partitions, Path(work_dir)))


if __name__ == "__main__":
    main()

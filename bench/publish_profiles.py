"""Publishing changed profiles to the account-state topic: batches against one send per profile.

    python bench/publish_profiles.py [--accounts 100000] [--repeat 3]

Both go through :meth:`detector.stream.handover.AccountHandover.publish` to the embedded broker and wait
for the brokers' acknowledgement; A and B alternate. The worker does this every snapshot interval
for the accounts that changed, on its event loop, between records.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaProducer

from detector.detection.core import Detector
from detector.detection.profile import AccountProfile
from detector.sim.broker import EmbeddedBroker, acreate_topics
from detector.stream.app import ProfileSender
from detector.stream.config import Settings
from detector.stream.handover import AccountHandover

PARTITIONS = 4


async def measure(bootstrap: str, accounts: int, repeat: int) -> dict[str, list[float]]:
    """µs per profile, each way, ``repeat`` times."""
    await acreate_topics(bootstrap, {"state": PARTITIONS})
    detector = Detector()
    for index in range(accounts):
        detector.profiles[f"acct_{index:016x}"] = AccountProfile(first_seen=1.0, last_seen=2.0, requests=index)
    batched = ProfileSender(Settings(broker_url=f"kafka://{bootstrap}"))
    single = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await single.start()

    async def one_send_each(topic, partition, messages):
        for key, value in messages:
            await single.send(topic, value, key=key, partition=partition)

    ways = (("batches (ProfileSender)", batched, batched.flush), ("one send per profile", one_send_each, single.flush))
    results: dict[str, list[float]] = {name: [] for name, _, _ in ways}
    try:
        for _ in range(repeat):
            for name, send, flush in ways:
                changed = {account: n % (2 * PARTITIONS) for n, account in enumerate(detector.profiles)}
                handover = AccountHandover(detector, "state", PARTITIONS, send, reader=None, changed=changed)
                started = time.perf_counter()
                published = await handover.publish()
                await flush()
                results[name].append((time.perf_counter() - started) / published * 1e6)
    finally:
        await batched.stop()
        await single.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with EmbeddedBroker(log_path=Path(tempfile.mkdtemp(prefix="detector-publish-")) / "tansu.log") as broker:
        results = asyncio.run(measure(broker.bootstrap, args.accounts, args.repeat))
    medians = {name: statistics.median(runs) for name, runs in results.items()}
    for name, runs in results.items():
        print(f"{name:24} {medians[name]:6.1f} µs a profile (median; runs {', '.join(f'{r:.1f}' for r in runs)})")
    batch, single = medians.values()
    print(f"one send per profile / batches: {single / batch:.2f} ×")
    return 0


if __name__ == "__main__":
    sys.exit(main())

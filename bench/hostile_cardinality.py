"""Cost of hostile cardinality in the pure stages: a flood of fresh accounts, one attribute on a million.

    python bench/hostile_cardinality.py [--accounts 1000000]

Prints, for one attribute shared by ``--accounts`` accounts, the link stage's microseconds per
observation below and beyond ``attribute_member_cap``; for a flood of fresh accounts (one request
each, fresh IP, user agent and prompt template) through the three chained stages with the default
caps lowered to 20,000 accounts and 50,000 attributes, microseconds per record and resident memory
every 100,000 records. The assertions live in tests/unit/detection/test_cardinality.py; this only
measures.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.detection.campaigns import AttributeIndex
from detector.detection.core import Detector
from detector.detection.policy import CampaignPolicy, DetectionPolicy
from detector.detection.stages import CampaignStages, ChainedStages
from tests.unit.detection.test_cardinality import flood, observation, rss_mib


def shared_attribute(accounts: int) -> None:
    index = AttributeIndex()
    cap = index.policy.attribute_member_cap
    for below, (first, last) in ((True, (0, cap)), (False, (cap, accounts))):
        started = time.perf_counter()
        for n in range(first, last):
            index.observe(observation("user_agent:popular-sdk", f"acct-{n}", 1e9 + n))
        per = (time.perf_counter() - started) / (last - first) * 1e6
        print(f"one attribute, accounts {first:,}-{last:,} ({'below' if below else 'beyond'} the cap): {per:.2f} µs")


def fresh_accounts(accounts: int) -> None:
    stages = ChainedStages(
        Detector(DetectionPolicy(max_accounts=20_000)), CampaignStages(CampaignPolicy(max_attributes=50_000))
    )
    started = time.perf_counter()
    for n, record in enumerate(flood(), start=1):
        stages.process(record)
        if n % 100_000 == 0:
            now = time.perf_counter()
            gc.collect()
            print(f"flood, records {n - 100_000:,}-{n:,}: {(now - started) / 100_000 * 1e6:.0f} µs a record, "
                  f"RSS {rss_mib():.0f} MiB")  # fmt: skip
            started = time.perf_counter()
        if n >= accounts:
            break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    args = parser.parse_args()
    shared_attribute(args.accounts)
    fresh_accounts(args.accounts)


if __name__ == "__main__":
    main()

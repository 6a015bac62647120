"""A 25,000-account campaign at the publicly reported rate through `detector replay`.

Reports peak RSS, records/s and how many campaigns the cluster became (it should be one).
Run: .venv/bin/python bench/campaign_scale.py [--accounts 25000] [--hours 30]
"""

from __future__ import annotations

import argparse
import collections
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from detector.sim.scenario import Scenario
from detector.sim.traffic import write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=25_000)
    parser.add_argument("--hours", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    low_and_slow = {
        "wording": ("reasoning",), "capability": ("math", "coding"), "paraphrase": "fixed_templates",
        "wrapper": "bare", "language": "english", "client": "popular_sdk", "egress": "datacenter",
        "network_sharing": "shared", "payment": "hundreds_per_card", "creation": "batched", "account_age": "fresh",
        "size": "thousands", "rate": "steady", "schedule": "synchronized_shifts", "cover": "none", "pivot": "none",
        "accounts": args.accounts, "requests_per_account_day": 26.0,
    }  # fmt: skip
    scenario = Scenario(
        seed=args.seed,
        duration_hours=args.hours,
        scale=1.0,
        campaigns=1,
        plans=(low_and_slow,),
        campaign_start_hours=6.0,
        new_model_release_hours=20.0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        records, labels_path = Path(tmp) / "records.jsonl", Path(tmp) / "labels.json"
        summary = write(scenario, records, labels_path)
        alerts, members = Path(tmp) / "alerts.jsonl", Path(tmp) / "members.jsonl"
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "detector.cli",
                "replay",
                str(records),
                "-o",
                str(alerts),
                "--members",
                str(members),
            ],
            check=True,
        )
        seconds = time.perf_counter() - started
        peak_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        truth = orjson.loads(labels_path.read_bytes())["accounts"]
        latest = {}
        for line in members.read_bytes().splitlines():
            update = orjson.loads(line)
            latest[update["account_id"]] = update["campaign_id"]
        campaigns = collections.Counter(c for c in latest.values() if c)
        cluster = {a for a, label in truth.items() if label["family"] == "low_and_slow"}
        in_campaigns = {a for a, c in latest.items() if c}
        benign = sum(1 for a in in_campaigns if truth[a]["label"] == "benign")
        firing = collections.Counter()
        for line in alerts.read_bytes().splitlines():
            event = orjson.loads(line)
            if event["type"].endswith("campaign.alert.v1") and event["data"]["status"] == "firing":
                firing[event["data"]["dedup_key"]] += 1
    print(
        f"records {summary.records:,}; replay {seconds:.1f} s ({summary.records / seconds:,.0f} records/s); "
        f"peak RSS {peak_rss_mib:,.0f} MiB"
    )
    print(
        f"campaigns {len(campaigns)} (sizes {sorted(campaigns.values(), reverse=True)[:5]}); "
        f"cluster members linked {len(in_campaigns & cluster):,} / {len(cluster):,}; benign linked {benign}; "
        f"campaign alert keys {len(firing)}"
    )


if __name__ == "__main__":
    main()

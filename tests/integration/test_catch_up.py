"""The worker gives replay's answer however it is fed: a backlog read by one worker, by two with a
rebalance midway, and a worker killed with SIGKILL at random points and restarted.

Replay (the detection stages in one process, record after record) is the reference. Compared: the
dedup keys that fired and how each ended (firing or resolved), the accounts paged on their own, and
the final campaign membership. The input is produced whole before any worker starts, as after an
outage; a drawn scenario (three campaigns, ~30,000 records over 24 h) spread over four partitions.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter

import orjson
import pytest

from detector.detection.alerting import ACCOUNT_ALERT_TYPE
from detector.detection.records import decode_request
from detector.detection.stages import ChainedStages
from detector.sim.produce import partition_of
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate
from tests.integration.harness import Topics, Worker, committed_offsets, produce, read_all, wait_for_commits

pytestmark = pytest.mark.integration
PARTITIONS = 4
SCENARIO = Scenario(seed=42, duration_hours=24, scale=0.12, campaigns=3)


class Outcome:
    """What on-call and the platform see at the end: which alerts fired and how each ended, the
    accounts paged on their own, and who is in a campaign."""

    def __init__(self, events: list[dict], members: dict[str, str | None]):
        last: dict[str, str] = {}
        for event in events:
            last[event["data"]["dedup_key"]] = event["data"]["status"]
        self.final_status = last
        self.paged_accounts = {
            event["subject"]
            for event in events
            if event["type"] == ACCOUNT_ALERT_TYPE and event["data"]["status"] == "firing"
        }
        self.members = {account for account, campaign in members.items() if campaign}
        self.events = len(events)
        self.distinct_events = len({event["id"] for event in events})

    def differences(self, other: Outcome) -> list[str]:
        out = []
        for name in ("final_status", "paged_accounts", "members"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                if isinstance(mine, dict):
                    keys = set(mine) | set(theirs)
                    diff = {k: (mine.get(k), theirs.get(k)) for k in keys if mine.get(k) != theirs.get(k)}
                else:
                    diff = {"only here": sorted(mine - theirs), "only in replay": sorted(theirs - mine)}
                out.append(f"{name}: {diff}")
        return out


@pytest.fixture(scope="module")
def backlog():
    records = list(generate(SCENARIO))
    stages = ChainedStages()
    events = [alert.to_cloudevent() for r in records for alert in stages.process(decode_request(orjson.dumps(r)))]
    reference = Outcome(events, dict(stages.detector.campaign_of))
    assert len(reference.final_status) >= 3 and reference.members  # campaigns and accounts to compare
    messages = [(r["account_id"].encode(), orjson.dumps(r)) for r in records]
    ends = dict(Counter(partition_of(r["account_id"], PARTITIONS) for r in records))
    return messages, ends, reference


async def _outcome(bootstrap: str, topics: Topics, membership_topic: str) -> Outcome:
    events = [m["value"] for m in await read_all(bootstrap, topics.alerts, settle=6.0)]
    members: dict[str, str | None] = {}
    for message in await read_all(bootstrap, membership_topic, settle=2.0):
        members[message["key"].decode()] = message["value"]["campaign_id"]
    return Outcome(events, members)


def _settings(name: str) -> dict[str, str]:
    return {"membership_topic": f"{name}.members", "snapshot_interval_s": "2"}


async def _drain(bootstrap, name, tmp_path, messages, ends, start_workers) -> Outcome:
    """Produce the whole input, run ``start_workers`` until every record is checkpointed, read the outcome."""
    topics = Topics(name, PARTITIONS)
    await topics.create(bootstrap)
    await produce(bootstrap, topics.input, messages)
    running: list[Worker] = []
    try:
        await start_workers(topics, running)
        await wait_for_commits(bootstrap, f"{name}-app-detect", topics.input, ends, running)
        return await _outcome(bootstrap, topics, f"{name}.members")
    finally:
        for worker in running:
            worker.stop()


def test_one_worker_draining_a_backlog_alerts_what_replay_alerts(broker, tmp_path, backlog, unique_name):
    messages, ends, reference = backlog

    async def start(topics, running):
        running.append(Worker(broker.bootstrap, topics, f"{unique_name}-app", tmp_path, **_settings(unique_name)))

    outcome = asyncio.run(_drain(broker.bootstrap, unique_name, tmp_path, messages, ends, start))
    assert outcome.differences(reference) == []


def test_two_workers_with_a_rebalance_midway_alert_what_replay_alerts(broker, tmp_path, backlog, unique_name):
    """The second worker joins when the first has read about a quarter of the backlog: partitions,
    their profiles and their progress move while the campaign stage waits for the slowest."""
    messages, ends, reference = backlog

    async def start(topics, running):
        settings = _settings(unique_name)
        running.append(Worker(broker.bootstrap, topics, f"{unique_name}-app", tmp_path, **settings))
        while running[0].records_seen() < len(messages) / 4:
            assert running[0].process.poll() is None, running[0].log_tail()
            await asyncio.sleep(0.2)
        running.append(Worker(broker.bootstrap, topics, f"{unique_name}-app", tmp_path, **settings))

    outcome = asyncio.run(_drain(broker.bootstrap, unique_name, tmp_path, messages, ends, start))
    assert outcome.differences(reference) == []


def test_a_worker_killed_at_random_points_ends_with_replays_alerts(broker, tmp_path, backlog, unique_name):
    """SIGKILL twice, at points drawn at random (the draw is printed), then a restart on the same disk:
    state resumes where the committed offsets stand, and the end is replay's."""
    messages, ends, reference = backlog
    seed = int(os.environ.get("KILL_POINTS_SEED", random.randrange(1 << 30)))
    print(f"kill points drawn with seed {seed} (KILL_POINTS_SEED={seed} draws them again)")
    draw = random.Random(seed)
    data_dir = tmp_path / "worker-data"

    async def start(topics, running):
        settings = _settings(unique_name)
        for _ in range(2):
            committed = await committed_offsets(broker.bootstrap, f"{unique_name}-app-detect", topics.input, PARTITIONS)
            left = len(messages) - sum(max(offset, 0) for offset in committed.values())
            worker = Worker(broker.bootstrap, topics, f"{unique_name}-app", tmp_path, data_dir=data_dir, **settings)
            kill_at = draw.uniform(0.1, 0.6) * left  # of the records it reads (from the committed offsets)
            while worker.records_seen() < kill_at:
                assert worker.process.poll() is None, worker.log_tail()
                await asyncio.sleep(0.05)
            await asyncio.sleep(draw.uniform(0.0, 3.0))
            worker.process.kill()
            worker.stop()
        running.append(Worker(broker.bootstrap, topics, f"{unique_name}-app", tmp_path, data_dir=data_dir, **settings))

    outcome = asyncio.run(_drain(broker.bootstrap, unique_name, tmp_path, messages, ends, start))
    print(
        f"killed run: {outcome.events} alert events ({outcome.distinct_events} distinct ids), "
        f"{len(outcome.final_status)} dedup keys, {len(outcome.members)} campaign members; replay: "
        f"{reference.events} events, {len(reference.final_status)} keys, {len(reference.members)} members"
    )
    assert outcome.differences(reference) == []

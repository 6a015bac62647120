"""The real worker against the embedded broker: alerts, dead letters, and agreement with replay."""

from __future__ import annotations

import asyncio
import base64

import orjson
import pytest

from detector.detection.alerting import ACCOUNT_ALERT_TYPE, CAMPAIGN_ALERT_TYPE
from detector.detection.records import decode_request
from detector.detection.stages import ChainedStages
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate, labels
from tests.integration.harness import Topics, Worker, produce, run_workers, wait_for_records

pytestmark = pytest.mark.integration

CANARY = "CANARY-PROMPT-TEXT-7731"
MALFORMED = [
    (b"bad-0", b"not json at all " + CANARY.encode()),
    (b"bad-1", b'{"event_id": "x", "account_id": "acct_bad", "prompt_text": "' + CANARY.encode() + b'"}'),
    (
        b"bad-2",
        b'{"event_id": "y", "timestamp": "2026-03-02T00:00:00", "account_id": "a", "model": "m",'
        b' "input_tokens": 1, "output_tokens": 1, "status_code": 200}',
    ),
]


@pytest.fixture(scope="module")
def traffic():
    """The demo scenario's records (with a canary in one prompt) and their labels."""
    scenario = Scenario.demo(seed=11)
    records = list(generate(scenario))
    records[100]["prompt_text"] = f"{CANARY} " + (records[100].get("prompt_text") or "")
    return records, labels(scenario)["accounts"]


def replay_events(records: list[dict]) -> tuple[list[dict], set[str]]:
    """Replay's alert events, and the accounts it put in campaigns."""
    detector = ChainedStages()
    events = []
    for record in records:
        for alert in detector.process(decode_request(orjson.dumps(record))):
            events.append(alert.to_cloudevent())
    return events, set(detector.detector.campaign_of)


def alerted(events: list[dict]) -> set[str]:
    return {
        account for event in events if event["data"]["status"] == "firing" for account in event["data"]["account_ids"]
    }


def campaign_events(events: list[dict]) -> list[tuple]:
    return [
        (e["id"], e["data"]["status"], e["data"]["account_count"]) for e in events if e["type"] == CAMPAIGN_ALERT_TYPE
    ]


def account_events(events: list[dict], campaign_members: set[str]) -> list[tuple]:
    """Account alerts of accounts outside campaigns. A member's own alert depends on when its
    membership reaches the worker (a separate stage): it may open before, replay's never does."""
    return [
        (e["id"], e["data"]["status"], e["data"]["severity"])
        for e in events
        if e["type"] == ACCOUNT_ALERT_TYPE and e["subject"] not in campaign_members
    ]


def run_worker(broker, tmp_path, name: str, partitions: int, messages, expected_records: int):
    """The alerts and dead letters of one worker fed ``messages``."""
    topics = Topics(name, partitions)
    out = run_workers(
        broker.bootstrap,
        topics,
        f"{name}-app",
        tmp_path,
        messages,
        expected_records,
        read={topics.alerts: 5.0, topics.dlq: 1.0},
    )
    return out[topics.alerts], out[topics.dlq]


def test_one_partition_worker_alerts_what_replay_alerts(broker, tmp_path, traffic):
    """Fed through the broker on one partition, the worker emits replay's alerts, event for event
    (campaign alerts, and the account alerts of accounts outside campaigns)."""
    records, truth = traffic
    messages = MALFORMED + [(r["account_id"].encode(), orjson.dumps(r)) for r in records]
    alerts, dead_letters = run_worker(broker, tmp_path, "one-partition", 1, messages, len(messages))

    expected, members = replay_events(records)
    worker_events = [m["value"] for m in alerts]
    assert campaign_events(worker_events) == campaign_events(expected) != []
    assert account_events(worker_events, members) == account_events(expected, members) != []
    flagged = alerted(worker_events)
    blatant = {a for a, label in truth.items() if label["family"] == "blatant_extractor"}
    assert blatant and blatant <= flagged
    assert not {a for a in flagged if truth[a]["label"] == "benign"}
    assert all(m["key"] == m["value"]["subject"].encode() for m in alerts)

    reasons = {m["value"]["source"]["offset"]: m["value"]["reason"] for m in dead_letters}
    assert reasons == {0: "invalid_json", 1: "missing_field", 2: "invalid_timestamp"}
    assert all(m["value"]["source"]["topic"] == "one-partition.requests" for m in dead_letters)
    leaked = [
        m
        for m in alerts + dead_letters
        if CANARY.encode() in orjson.dumps(m["value"])
        or CANARY.encode() in base64.b64decode(m["value"].get("original_b64", ""))
    ]
    assert not leaked, "prompt text left the worker"


def test_batched_envelope_keeps_valid_records_around_a_bad_one(broker, tmp_path, traffic):
    """An NDJSON envelope with a bad line in the middle: the others are processed, the bad one dead-lettered."""
    records, _ = traffic
    lines = [orjson.dumps(r) for r in records[:50]]
    lines.insert(
        20,
        b'{"event_id": "broken", "timestamp": 1772409600, "account_id": "a", "model": "m",'
        b' "input_tokens": -1, "output_tokens": 1, "status_code": 200}',
    )
    messages = [(None, b"\n".join(lines))]
    _, dead_letters = run_worker(broker, tmp_path, "envelope", 1, messages, 51)
    assert [(m["value"]["reason"], m["value"]["index"]) for m in dead_letters] == [("out_of_range", 20)]


def test_a_restarted_worker_resumes_with_its_account_baselines(broker, tmp_path, traffic):
    """Stopped cleanly and started again on the same data directory, the worker still knows every account."""
    records, _ = traffic
    topics = Topics("restart", 2)
    data_dir = tmp_path / "worker-data"

    async def scenario():
        await topics.create(broker.bootstrap)
        first = Worker(broker.bootstrap, topics, "restart-app", tmp_path, data_dir=data_dir)
        try:
            await produce(
                broker.bootstrap, topics.input, [(r["account_id"].encode(), orjson.dumps(r)) for r in records]
            )
            await wait_for_records([first], len(records))
            await asyncio.sleep(6)  # the gauges refresh every 5 s
            tracked_before = first.gauge("detector_accounts_tracked")
        finally:
            first.stop()
        second = Worker(broker.bootstrap, topics, "restart-app", tmp_path, data_dir=data_dir)
        try:
            deadline = asyncio.get_running_loop().time() + 30
            tracked_after = None
            while asyncio.get_running_loop().time() < deadline:
                tracked_after = second.gauge("detector_accounts_tracked")
                if tracked_after:
                    break
                await asyncio.sleep(0.5)
            accepted_after = second.gauge("detector_records_accepted_total")
        finally:
            second.stop()
        return tracked_before, tracked_after, accepted_after

    tracked_before, tracked_after, accepted_after = asyncio.run(scenario())
    assert tracked_before == len({r["account_id"] for r in records})
    assert tracked_after == tracked_before
    assert accepted_after == 0  # nothing was re-read: the baselines came from the snapshot


def test_accounts_move_with_their_partitions_to_a_worker_that_joins_and_then_takes_over(broker, tmp_path, traffic):
    """A second worker on another disk gets the baselines of the partitions it is given, through Kafka."""
    records, _ = traffic
    topics = Topics("handover", 4)
    accounts = {r["account_id"] for r in records}

    async def scenario():
        await topics.create(broker.bootstrap)
        first = Worker(broker.bootstrap, topics, "handover-app", tmp_path, data_dir=tmp_path / "first-data")
        second = None
        try:
            await produce(
                broker.bootstrap, topics.input, [(r["account_id"].encode(), orjson.dumps(r)) for r in records]
            )
            await wait_for_records([first], len(records))
            second = Worker(broker.bootstrap, topics, "handover-app", tmp_path, data_dir=tmp_path / "second-data")
            shared = await wait_for_gauge(second, "detector_accounts_adopted_total", lambda value: value > 0)
        finally:
            first.stop()
        try:
            taken_over = await wait_for_gauge(
                second, "detector_accounts_adopted_total", lambda value: value >= len(accounts)
            )
            await asyncio.sleep(6)  # the gauges refresh every 5 s
            return (
                shared,
                taken_over,
                second.gauge("detector_accounts_tracked"),
                second.gauge("detector_records_accepted_total"),
            )
        finally:
            second.stop()

    shared, taken_over, tracked, accepted = asyncio.run(scenario())
    assert 0 < shared < len(accounts)  # joining, it got some of the four partitions
    assert taken_over == len(accounts)  # after the first left, all of them: each account once
    assert tracked == len(accounts)
    assert accepted == 0  # no record was read again: the baselines came through the state topic


async def wait_for_gauge(worker: Worker, name: str, done, timeout: float = 60.0) -> float:
    """The metric's value once ``done(value)`` holds (its last value if the timeout passes first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = None
    while loop.time() < deadline:
        value = worker.gauge(name)
        if value is not None and done(value):
            break
        await asyncio.sleep(0.5)
    return value

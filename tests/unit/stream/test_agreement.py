"""Two workers' detect steps and the campaign step in one process, fed as unevenly as a backlog feeds
them: whatever the lag between the workers, what on-call receives is replay's, event for event.

No broker: the pieces of ``detector/stream/steps.py`` hand each other the messages a broker would
carry (summaries to the campaign step, its news to every detect step), in the worst order.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detector.detection.alerting import ACCOUNT_ALERT_TYPE, UpdatePacer
from detector.detection.core import Detector
from detector.detection.records import decode_request
from detector.detection.stages import ChainedStages, DetectStage, OrderedCampaigns
from detector.sim.produce import partition_of
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate
from detector.stream.config import Settings
from detector.stream.metrics import DetectorMetrics
from detector.stream.steps import AlertEncoder, CampaignStep, DetectStep, InputOrder, RecordingSink

PARTITIONS = 4
SETTINGS = Settings(partitions=PARTITIONS)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(generate(Scenario(seed=42, duration_hours=24, scale=0.12, campaigns=3)))


def replay_events(records: list[dict]) -> list[dict]:
    stages = ChainedStages()
    return [alert.to_cloudevent() for r in records for alert in stages.process(decode_request(orjson.dumps(r)))]


class Worker:
    """One worker's detect step over its partitions, and what it sent."""

    def __init__(self, partitions: list[int], records: list[dict]):
        metrics = DetectorMetrics.create(CollectorRegistry())
        self.sink = RecordingSink()
        self.step = DetectStep(
            DetectStage(Detector(wait_for_campaigns=True)),
            SETTINGS,
            metrics,
            self.sink,
            AlertEncoder(SETTINGS, metrics),
        )
        self.order = InputOrder()
        for partition in partitions:
            mine = [r for r in records if partition_of(r["account_id"], PARTITIONS) == partition]
            self.order.assign({partition: 0})
            for offset, record in enumerate(mine):
                message = SimpleNamespace(value=orjson.dumps(record), key=record["account_id"].encode(), offset=offset)
                self.order.add(partition, message, *self.step.decode(message.value))
            self.order.note_position(partition, len(mine), len(mine))

    async def drain(self) -> None:
        await self.step.handle_ordered(self.order, "llm.requests")
        await self.step.flush_summaries(self.order)


def run_pipeline(records: list[dict], workers: list[Worker]) -> list[dict]:
    """The workers read their backlogs one after the other, each one's summaries reaching the campaign
    stage before the next has read a record; then the news reaches them all. The alert events sent."""
    metrics = DetectorMetrics.create(CollectorRegistry())
    campaign_sink = RecordingSink()
    campaigns = CampaignStep(
        OrderedCampaigns(PARTITIONS), SETTINGS, campaign_sink, AlertEncoder(SETTINGS, metrics), UpdatePacer(0.0)
    )

    async def run():
        for worker in workers:
            await worker.drain()
            for message in worker.sink.to(SETTINGS.summaries_topic):
                await campaigns.handle(message.value)
        for message in campaign_sink.to(SETTINGS.news_topic):
            for worker in workers:
                await worker.step.apply_news(message.key, message.value)

    asyncio.run(run())
    sinks = [campaign_sink] + [worker.sink for worker in workers]
    return [orjson.loads(message.value) for sink in sinks for message in sink.to(SETTINGS.alerts_topic)]


def outcome(events: list[dict]) -> tuple[dict, set]:
    """How each alert (dedup key) ended, and the accounts paged on their own."""
    final = {event["data"]["dedup_key"]: event["data"]["status"] for event in events}
    paged = {e["subject"] for e in events if e["type"] == ACCOUNT_ALERT_TYPE and e["data"]["status"] == "firing"}
    return final, paged


def test_one_worker_whose_news_comes_only_at_the_end_sends_replays_alert_events(records):
    """Every alert decision waits for the campaign clock and reads the membership of its own time: the
    same events, ids included, as replay, though no membership reached the worker while it read."""
    sent = run_pipeline(records, [Worker([0, 1, 2, 3], records)])
    expected = replay_events(records)
    assert len(expected) > 5
    assert sorted(e["id"] for e in sent) == sorted(e["id"] for e in expected)


def test_a_worker_hours_ahead_of_the_other_ends_with_replays_alerts(records):
    """Each worker's population models see only its accounts, so scores (and which updates go out) can
    differ by a little from replay's; which alerts fired and how each ended, and who was paged, cannot."""
    for first, second in (([0, 1], [2, 3]), ([2, 3], [0, 1])):
        sent = run_pipeline(records, [Worker(first, records), Worker(second, records)])
        assert outcome(sent) == outcome(replay_events(records))

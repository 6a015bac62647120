"""The real worker against records stamped in the future: its clock stays, no one else's alert changes."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from detector.sim.scenario import Scenario
from detector.sim.traffic import generate
from tests.integration.harness import Topics, Worker, produce, read_all, wait_for_records
from tests.integration.test_worker import account_events, campaign_events, replay_events

pytestmark = pytest.mark.integration

Y2099 = "2099-12-31T00:00:00Z"


def test_a_record_stamped_2099_changes_no_alert_and_the_event_time_lag_stays_sane(broker, tmp_path, unique_name):
    """Issue 14: in the worker, one 2099 record kept the watermark in 2099 (lag -2.3e9 s for the rest of the
    run), evicted idle accounts and blocked resolutions. Now it is dead-lettered and changes nothing."""
    records = list(generate(Scenario.demo(seed=11)))
    stray = {**records[1500], "event_id": "stray-2099", "account_id": "gateway-2099", "timestamp": Y2099}
    messages = [(r["account_id"].encode(), orjson.dumps(r)) for r in records]
    messages.insert(1500, (b"gateway-2099", orjson.dumps(stray)))
    topics = Topics(unique_name, 1)

    async def scenario():
        await topics.create(broker.bootstrap)
        worker = Worker(broker.bootstrap, topics, f"{unique_name}-app", tmp_path)
        try:
            await produce(broker.bootstrap, topics.input, messages)
            await wait_for_records([worker], len(messages))
            gauges: dict[str, float] = {}
            for _ in range(40):  # the gauges are refreshed every 5 s
                gauges = worker.metrics()
                if gauges.get("detector_watermark_timestamp_seconds", 0.0) > 0:
                    break
                await asyncio.sleep(0.5)
            wall = time.time()
            alerts = await read_all(broker.bootstrap, topics.alerts, settle=5.0)
            dead_letters = await read_all(broker.bootstrap, topics.dlq, settle=1.0)
            return gauges, wall, alerts, dead_letters
        finally:
            worker.stop()

    gauges, wall, alerts, dead_letters = asyncio.run(scenario())
    expected, members = replay_events(records)
    worker_events = [m["value"] for m in alerts]
    assert campaign_events(worker_events) == campaign_events(expected) != []
    assert account_events(worker_events, members) == account_events(expected, members) != []

    assert [(m["value"]["reason"], m["value"]["field"]) for m in dead_letters] == [("future_timestamp", "timestamp")]
    assert gauges['detector_records_rejected_total{reason="future_timestamp"}'] == 1.0
    newest = max(r["timestamp"] for r in records)
    assert gauges["detector_watermark_timestamp_seconds"] == pytest.approx(newest, abs=0.01)
    # main exports the event-time lag; the health branch (issue 13) replaces it with the input lag
    if "detector_event_time_lag_seconds" in gauges:
        assert 0 < gauges["detector_event_time_lag_seconds"] <= wall - newest  # was -2.3e9 with the 2099 record

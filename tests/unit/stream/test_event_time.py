"""The detect step and the event-time guard: an idle worker still processes the records it held back."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from detector.detection.core import Detector
from detector.detection.policy import DetectionPolicy
from detector.detection.records import request_to_json
from detector.detection.stages import DetectStage
from detector.stream.config import Settings
from detector.stream.metrics import DetectorMetrics
from detector.stream.steps import AlertEncoder, DetectStep, RecordingSink
from tests.unit.detection.test_core import T0, extractor

SETTINGS = Settings(partitions=2)


def test_records_held_for_reordering_reach_the_detector_once_the_worker_idled_the_tolerance():
    wall = [T0]
    detector = Detector(DetectionPolicy(reorder_seconds=30.0))
    metrics = DetectorMetrics.create(CollectorRegistry())
    sink = RecordingSink()
    step = DetectStep(
        DetectStage(detector, wall_clock=lambda: wall[0]), SETTINGS, metrics, sink, AlertEncoder(SETTINGS, metrics)
    )
    records = list(extractor("script", T0 - 120.0, 20, every=4.0, client_ip="203.0.113.9"))

    async def feed():
        for offset, record in enumerate(records):
            await step.handle(request_to_json(record), b"script", "llm.requests", 0, offset)
        held = len(records) - detector.stats.requests
        await step.flush_observations()  # the idle timer, before the tolerance passed
        still_held = len(records) - detector.stats.requests
        wall[0] += 31.0
        await step.flush_observations()
        return held, still_held

    held, still_held = asyncio.run(feed())
    assert held == still_held > 0
    assert detector.stats.requests == len(records)
    assert sink.to(SETTINGS.attributes_topic)  # the released records' summaries went on

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


def test_the_worker_leaves_reordering_to_its_input_order_and_holds_no_record_back():
    """The worker takes its partitions oldest first (``InputOrder``) and keys each record's summaries
    by its place in its message: a record held back by ``reorder_seconds`` would lose that place, so
    the worker's stage admits records at once, whatever the policy file says."""
    detector = Detector(DetectionPolicy(reorder_seconds=30.0))
    metrics = DetectorMetrics.create(CollectorRegistry())
    sink = RecordingSink()
    step = DetectStep(
        DetectStage(detector, wall_clock=lambda: T0), SETTINGS, metrics, sink, AlertEncoder(SETTINGS, metrics)
    )
    records = list(extractor("script", T0 - 120.0, 20, every=4.0, client_ip="203.0.113.9"))

    async def feed():
        for offset, record in enumerate(records):
            await step.handle(request_to_json(record), b"script", "llm.requests", 0, offset)

    asyncio.run(feed())
    assert detector.stats.requests == len(records)
    assert step.pending  # their summaries wait for the campaign stage
    # replay keeps the tolerance
    assert DetectStage(Detector(DetectionPolicy(reorder_seconds=30.0))).guard._reorder == 30.0

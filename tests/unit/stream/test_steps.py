"""The worker's pieces without a broker: what each sends where, given the bytes of a message."""

from __future__ import annotations

import asyncio
import zlib
from types import SimpleNamespace

import orjson
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from detector.detection.alerting import CAMPAIGN_ALERT_TYPE, UpdatePacer
from detector.detection.campaigns import AttributeObservation, CampaignPolicy, Membership
from detector.detection.core import Detector
from detector.detection.records import request_to_json
from detector.detection.stages import DetectStage, LinkStage, MergeStage, encode_membership
from detector.stream.config import Settings
from detector.stream.handover import AccountHandover
from detector.stream.metrics import DetectorMetrics
from detector.stream.state import load
from detector.stream.steps import (
    AlertEncoder,
    DetectStep,
    LinkStep,
    MergeStep,
    RecordingSink,
    Snapshots,
    decode_observations,
    encode_observations,
)
from tests.unit.detection.test_core import HOUR, T0, background, extractor

SETTINGS = Settings(partitions=4)


def detect_step(sink: RecordingSink, detector: Detector | None = None) -> DetectStep:
    metrics = DetectorMetrics.create(CollectorRegistry())
    return DetectStep(DetectStage(detector or Detector()), SETTINGS, metrics, sink, AlertEncoder(SETTINGS, metrics))


def traffic() -> list:
    return sorted(background(hours=4) + list(extractor("script", T0 + 2 * HOUR, 600)), key=lambda r: r.timestamp)


def test_the_detect_step_sends_an_extractors_alert_keyed_by_its_account_and_dead_letters_with_the_message_key():
    sink = RecordingSink()
    step = detect_step(sink)

    async def feed():
        for offset, request in enumerate(traffic()):
            await step.handle(request_to_json(request), request.account_id.encode(), "llm.requests", 2, offset)
        await step.handle(b'{"event_id": "x"}', b"k", "llm.requests", 1, 99)

    asyncio.run(feed())
    alerts = sink.to(SETTINGS.alerts_topic)
    assert {message.key for message in alerts} == {b"script"}
    assert orjson.loads(alerts[0].value)["data"]["status"] == "firing"
    [dead_letter] = sink.to(SETTINGS.dlq_topic)
    assert dead_letter.key == b"k"
    assert orjson.loads(dead_letter.value)["source"] == {"topic": "llm.requests", "partition": 1, "offset": 99}
    assert step.changed["script"] == 2


def test_account_summaries_go_to_the_attributes_partition_of_their_attribute_when_flushed():
    sink = RecordingSink()
    step = detect_step(sink)
    asyncio.run(step.handle(request_to_json(next(extractor("a", T0, 1, client_ip="203.0.113.9"))), b"a", "t", 0, 0))
    assert step.pending and not sink.sent
    asyncio.run(step.flush_observations())
    assert not step.pending
    for message in sink.to(SETTINGS.attributes_topic):
        for observation in decode_observations(message.value):
            assert zlib.crc32(observation.attribute.encode()) % SETTINGS.partitions == message.partition


def test_a_batch_of_input_messages_is_detected_message_by_message():
    sink = RecordingSink()
    step = detect_step(sink)
    source = TopicPartition("llm.requests", 3)
    messages = [
        SimpleNamespace(value=request_to_json(request), key=None, offset=n)
        for n, request in enumerate(extractor("script", T0, 5))
    ]
    asyncio.run(step.handle_batch({source: messages}))
    assert step.detector.profiles["script"].requests == 5 and step.changed == {"script": 3}


def test_membership_news_reaches_the_detector_in_both_wire_forms():
    """membership.v1, and the form of the release before it that a compacted topic still holds."""
    step = detect_step(RecordingSink())
    step.apply_membership(b"a", encode_membership(Membership("a", "cmp_0123456789ab", T0)))
    step.apply_membership(b"b", orjson.dumps({"campaign_id": "cmp_ba9876543210", "since": T0}))
    step.apply_membership(b"c", b"not json")
    assert step.detector.campaign_of == {"a": "cmp_0123456789ab", "b": "cmp_ba9876543210"}
    step.apply_membership(b"a", encode_membership(Membership("a", None, T0 + 1)))
    assert step.detector.campaign_of == {"b": "cmp_ba9876543210"}


def test_link_and_merge_steps_turn_shared_payment_summaries_into_one_campaign_alert_and_its_members():
    sink = RecordingSink()
    metrics = DetectorMetrics.create(CollectorRegistry())
    clock = [100.0]
    link = LinkStep(LinkStage(), SETTINGS, sink)
    merge = MergeStep(
        MergeStage(), SETTINGS, sink, AlertEncoder(SETTINGS, metrics), UpdatePacer(30.0), clock=lambda: clock[0]
    )
    summaries = [AttributeObservation("payment:p1", f"a{n}", T0 + n * 60, 4, 4, 4, T0) for n in range(40)]

    async def run():
        for start in (0, 30):  # two messages: the campaign alerts, then grows
            await link.handle(encode_observations(summaries[start : start + 30]))
        for message in sink.to(SETTINGS.links_topic):
            assert message.partition == 0
            await merge.handle(message.value)

    asyncio.run(run())
    campaign_alerts = [orjson.loads(m.value) for m in sink.to(SETTINGS.alerts_topic)]
    assert [a["type"] for a in campaign_alerts] == [CAMPAIGN_ALERT_TYPE]
    members = sink.to(SETTINGS.membership_topic)
    assert {m.key for m in members} == {f"a{n}".encode() for n in range(40)}
    assert all(orjson.loads(m.value)["campaign_id"] == campaign_alerts[0]["data"]["campaign_id"] for m in members)
    # formed at its fourth account (T0 + 3 min), held 20 min (to T0 + 23 min, 24 accounts): paged then
    assert [a["data"]["account_count"] for a in campaign_alerts] == [24]
    # grown to 34 ten event-time minutes after its first alert, the campaign is re-sent, but within
    # 30 s of wall time of the first one: the update waits for its turn. When it comes, the links have
    # paused, so the idle sweep has sent the whole list (40), which replaced the waiting update
    clock[0] += 30.0
    asyncio.run(merge.send_due())
    counts = [orjson.loads(m.value)["data"]["account_count"] for m in sink.to(SETTINGS.alerts_topic)]
    assert counts == [24, 40]


def test_a_snapshot_is_written_to_disk_and_the_changed_profiles_handed_over(tmp_path):
    sink = RecordingSink()
    step = detect_step(sink)
    for n, request in enumerate(extractor("script", T0, 10)):
        asyncio.run(step.handle(request_to_json(request), None, "t", 5, n))
    sent = []

    async def send(topic, partition, messages):
        sent.append((topic, partition, [key for key, _ in messages]))

    settings = Settings(data_dir=str(tmp_path))
    handover = AccountHandover(step.detector, "state", 4, send=send, reader=None, changed=step.changed)
    metrics = DetectorMetrics.create(CollectorRegistry())
    asyncio.run(Snapshots(settings, step, handover, metrics).take())
    assert sent == [("state", 1, [b"script"])]
    restored = Detector()
    assert load(restored, settings.snapshot_path) and restored.profiles == step.detector.profiles


def test_when_links_stop_coming_the_merge_step_sends_the_last_growth_of_a_campaign():
    """Members that join late in event time (a partition that lags) do not re-send the campaign on
    their own, and a feed that ends leaves no later sweep to do it: after a quiet spell the merge step
    sweeps at the newest event time it saw, and the grown campaign's update goes out."""
    sink = RecordingSink()
    metrics = DetectorMetrics.create(CollectorRegistry())
    clock = [100.0]
    link = LinkStep(LinkStage(), SETTINGS, sink)
    merge = MergeStep(MergeStage(), SETTINGS, sink, AlertEncoder(SETTINGS, metrics), UpdatePacer(0.0), lambda: clock[0])
    hold = CampaignPolicy().campaign_alert_hold_minutes * 60
    alerted = [AttributeObservation("payment:p1", f"a{n}", T0, 4, 4, 4, T0) for n in range(25)]

    def elsewhere(t: float) -> list[AttributeObservation]:  # the clock moves on
        return [AttributeObservation("network:n9", "b", t, 4, 0, 0, T0)]

    late = [AttributeObservation("payment:p1", f"a{n}", T0 + hold + 60, 4, 4, 4, T0) for n in range(25, 30)]

    def sizes() -> list[int]:
        return [orjson.loads(m.value)["data"]["account_count"] for m in sink.to(SETTINGS.alerts_topic)]

    async def run():
        # the campaign alerts at the sweep that ends its hold; the clock moves ten minutes on, and then
        # its last members' links arrive, late in event time
        for observations in (alerted, elsewhere(T0 + hold), elsewhere(T0 + hold + 600), late):
            await link.handle(encode_observations(observations))
        for message in sink.to(SETTINGS.links_topic):
            await merge.handle(message.value)
        await merge.send_due()  # not quiet long enough yet
        before = sizes()
        clock[0] += 10.0
        await merge.send_due()
        return before, sizes()

    before, after = asyncio.run(run())
    assert before == [25]
    assert after == [25, 30]

"""The worker's pieces without a broker: what each sends where, given the bytes of a message."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
from prometheus_client import CollectorRegistry

from detector.detection.alerting import CAMPAIGN_ALERT_TYPE, UpdatePacer
from detector.detection.campaigns import AttributeObservation, Membership
from detector.detection.core import Detector
from detector.detection.ordering import Progress, SummaryKey, record_position
from detector.detection.policy import CampaignPolicy
from detector.detection.records import request_to_json
from detector.detection.stages import DetectStage, OrderedCampaigns
from detector.stream.config import Settings
from detector.stream.handover import AccountHandover
from detector.stream.metrics import DetectorMetrics
from detector.stream.state import load
from detector.stream.steps import (
    SUMMARIES_MESSAGE_BYTES,
    AlertEncoder,
    CampaignStep,
    DetectStep,
    InputOrder,
    RecordingSink,
    Snapshots,
    decode_news,
    decode_summaries,
    encode_news_clock,
    encode_news_membership,
    encode_summaries,
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


def messages_of(requests, first_offset: int = 0) -> list[SimpleNamespace]:
    """Requests as the consumer hands them out, one record a message."""
    return [
        SimpleNamespace(value=request_to_json(request), key=request.account_id.encode(), offset=first_offset + n)
        for n, request in enumerate(requests)
    ]


def fill(order: InputOrder, step: DetectStep, partition: int, messages, highwater: int | None = None) -> None:
    """Messages fetched from ``partition``; ``highwater``: the broker's end offset (None: not known yet)."""
    order.assign({partition: messages[0].offset if messages else 0})
    for message in messages:
        decoded, event_time = step.decode(message.value)
        order.add(partition, message, decoded, event_time)
    order.note_position(partition, messages[-1].offset + 1 if messages else 0, highwater)


def test_input_messages_are_handed_out_oldest_first_and_wait_for_a_partition_that_holds_unread_records():
    step = detect_step(RecordingSink())
    order = InputOrder()
    early = messages_of(extractor("early", T0, 3))
    late = messages_of(extractor("late", T0 + HOUR, 3))
    fill(order, step, 0, late, highwater=3)
    fill(order, step, 1, early[:2], highwater=3)  # one record of partition 1 not fetched yet
    taken = []
    while (item := order.next()) is not None:
        taken.append((item[0], item[1].offset))
    # partition 1's third record may be older than partition 0's: nothing of partition 0 goes first
    assert taken == [(1, 0), (1, 1)]
    order.add(1, early[2], *step.decode(early[2].value))
    order.note_position(1, 3, 3)
    while (item := order.next()) is not None:
        taken.append((item[0], item[1].offset))
    assert taken == [(1, 0), (1, 1), (1, 2), (0, 0), (0, 1), (0, 2)]
    assert order.processed_to == {0: 3, 1: 3} and order.drained(0) and order.drained(1)


def test_a_drained_partition_holds_nobody_back_and_a_paused_order_hands_out_nothing():
    step = detect_step(RecordingSink())
    order = InputOrder()
    fill(order, step, 0, messages_of(extractor("a", T0, 2)), highwater=2)
    fill(order, step, 1, [], highwater=0)
    order.pauses += 1
    assert order.next() is None
    order.pauses -= 1
    assert [order.next()[1].offset, order.next()[1].offset, order.next()] == [0, 1, None]


def test_summaries_and_progress_go_to_the_campaign_stage_in_one_message_when_flushed():
    sink = RecordingSink()
    step = detect_step(sink)
    order = InputOrder()
    fill(order, step, 2, messages_of(extractor("a", T0, 1, client_ip="203.0.113.9")), highwater=1)
    asyncio.run(step.handle_ordered(order, "t"))
    assert step.pending and not sink.sent
    asyncio.run(step.flush_summaries(order))
    assert not step.pending
    [message] = sink.to(SETTINGS.summaries_topic)
    summaries, progress = decode_summaries(message.value)
    assert message.partition == 0
    assert [key for key, _ in summaries] == [SummaryKey(T0, 2, record_position(0, 0))]
    assert {o.account_id for _, observations in summaries for o in observations} == {"a"}
    assert progress == [Progress(2, T0, True)]


class FullBatchSink(RecordingSink):
    """A producer whose batch for the summaries partition is full at the first message: that message
    waits for the batch to drain (``room``) while later ones find room at once."""

    def __init__(self) -> None:
        super().__init__()
        self.room = asyncio.Event()
        self._first = True

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None) -> None:
        if topic == SETTINGS.summaries_topic and self._first:
            self._first = False
            await self.room.wait()
        await super().send(topic, value, key=key, partition=partition)


def test_a_full_batch_of_summaries_goes_out_in_messages_a_producer_accepts_in_order_progress_last():
    """A thousand summaries of twenty attributes each pass a producer's 1 MiB request limit in one
    message (the worker stopped on it under ``make bench``): they go in several, in order, each under
    the limit, and only the last carries the progress."""
    sink = RecordingSink()
    step = detect_step(sink)
    order = InputOrder()
    fill(order, step, 2, messages_of(extractor("a", T0, 1)), highwater=1)
    observations = [
        AttributeObservation(f"pair:{n:08x}", f"acct_{'x' * 40}", T0, 9, 9, 9, T0, True, True, T0 + 1800.0)
        for n in range(20)
    ]
    step.pending = [(SummaryKey(T0 + n, 2, n), observations) for n in range(1000)]
    asyncio.run(step.flush_summaries(order))
    sent = sink.to(SETTINGS.summaries_topic)
    assert len(sent) > 1 and all(len(message.value) <= SUMMARIES_MESSAGE_BYTES for message in sent)
    decoded = [decode_summaries(message.value) for message in sent]
    assert [key.position for summaries, _ in decoded for key, _ in summaries] == list(range(1000))
    assert [bool(progress) for _, progress in decoded] == [False] * (len(sent) - 1) + [True]


def test_summaries_reach_the_campaign_stage_in_the_order_they_were_taken_however_the_producer_waits():
    """The timer's flush and the batch's overlap. If a later message, with progress further on, went
    out before an earlier one waiting for room, the campaign stage would move its clock past
    summaries it has not seen yet (the catch-up test's campaign members paged alone)."""
    sink = FullBatchSink()
    step = detect_step(sink)
    order = InputOrder()
    first = messages_of(extractor("a", T0, 3, client_ip="203.0.113.9"))
    later = messages_of(extractor("b", T0 + HOUR, 3, client_ip="203.0.113.9"), first_offset=3)
    fill(order, step, 2, first, highwater=6)

    async def run():
        await step.handle_ordered(order, "t")
        waiting = asyncio.create_task(step.flush_summaries(order))  # its message waits for room
        await asyncio.sleep(0)
        for message in later:
            order.add(2, message, *step.decode(message.value))
        order.note_position(2, 6, 6)
        await step.handle_ordered(order, "t")
        taken_after = asyncio.create_task(step.flush_summaries(order))
        await asyncio.sleep(0)
        sink.room.set()
        await asyncio.gather(waiting, taken_after)

    asyncio.run(run())
    messages = [decode_summaries(message.value) for message in sink.to(SETTINGS.summaries_topic)]
    assert [progress[0].watermark for _, progress in messages] == [T0 + 8.0, T0 + HOUR + 8.0]
    times = [key.timestamp for summaries, _ in messages for key, _ in summaries]
    assert times == sorted(times) and times[0] == T0


def test_campaign_news_reaches_the_detector_and_its_clock_releases_the_alert_decisions_it_covers():
    sink = RecordingSink()
    step = detect_step(sink, Detector(wait_for_campaigns=True))
    order = InputOrder()
    requests = traffic()
    fill(order, step, 0, messages_of(requests), highwater=len(requests))
    asyncio.run(step.handle_ordered(order, "t"))
    assert not sink.to(SETTINGS.alerts_topic) and step.detector.undecided  # decisions wait for the clock

    async def news(*pairs):
        for key, value in pairs:
            await step.apply_news(key, value)

    asyncio.run(news(encode_news_membership(Membership("other", "cmp_0123456789ab", T0), T0), encode_news_clock(T0)))
    assert step.detector.campaign_of == {"other": "cmp_0123456789ab"} and not sink.to(SETTINGS.alerts_topic)
    asyncio.run(news(encode_news_clock(T0 + 5 * HOUR)))
    alerts = [orjson.loads(m.value)["data"] for m in sink.to(SETTINGS.alerts_topic)]
    assert [(a["account_ids"], a["status"]) for a in alerts] == [(["script"], "firing")]
    assert not step.detector.undecided


def campaign_step(sink: RecordingSink, pace: float = 30.0, clock=lambda: 100.0, partitions: int = 1) -> CampaignStep:
    metrics = DetectorMetrics.create(CollectorRegistry())
    return CampaignStep(
        OrderedCampaigns(partitions), SETTINGS, sink, AlertEncoder(SETTINGS, metrics), UpdatePacer(pace), clock=clock
    )


def summaries_message(observations, partition: int = 0, drained: bool = False) -> bytes:
    """Each observation as one record's summary, and the partition's progress to the newest of them."""
    keyed = [(SummaryKey(o.timestamp, partition, n), [o]) for n, o in enumerate(observations)]
    newest = max(o.timestamp for o in observations)
    return encode_summaries(keyed, [Progress(partition, newest, drained)])


def test_the_campaign_step_turns_shared_payment_summaries_into_one_campaign_alert_its_members_and_news():
    sink = RecordingSink()
    clock = [100.0]
    step = campaign_step(sink, clock=lambda: clock[0])
    summaries = [AttributeObservation("payment:p1", f"a{n}", T0 + n * 60, 4, 4, 4, T0) for n in range(40)]

    async def run():
        for start in (0, 30):  # two messages: the campaign alerts, then grows
            await step.handle(summaries_message(summaries[start : start + 30], drained=start == 30))

    asyncio.run(run())
    campaign_alerts = [orjson.loads(m.value) for m in sink.to(SETTINGS.alerts_topic)]
    assert [a["type"] for a in campaign_alerts] == [CAMPAIGN_ALERT_TYPE]
    members = sink.to(SETTINGS.membership_topic)
    assert {m.key for m in members} == {f"a{n}".encode() for n in range(40)}
    assert all(orjson.loads(m.value)["campaign_id"] == campaign_alerts[0]["data"]["campaign_id"] for m in members)
    # formed at its third account (T0 + 2 min: a card links from three), held 20 min (to T0 + 22 min,
    # 23 accounts): paged then
    assert [a["data"]["account_count"] for a in campaign_alerts] == [23]
    # the news: every membership change, each message's clock after the changes it covers
    news = [decode_news(m.key, m.value) for m in sink.to(SETTINGS.news_topic)]
    assert {n[0].account_id for n in news if isinstance(n, tuple)} == {f"a{n}" for n in range(40)}
    clocks = [(i, n) for i, n in enumerate(news) if isinstance(n, float)]
    assert [n for _, n in clocks] == [T0 + 29 * 60, T0 + 39 * 60] and clocks[-1][0] == len(news) - 1
    # grown to 33 ten event-time minutes after its first alert, the campaign is re-sent, but within
    # 30 s of wall time of the first one: the update waits for its turn. When it comes, the summaries
    # have paused, so the idle sweep has sent the whole list (40), which replaced the waiting update
    clock[0] += 30.0
    asyncio.run(step.send_due())
    counts = [orjson.loads(m.value)["data"]["account_count"] for m in sink.to(SETTINGS.alerts_topic)]
    assert counts == [23, 40]


def test_the_campaign_step_holds_summaries_until_every_partition_has_passed_their_time():
    sink = RecordingSink()
    step = campaign_step(sink, pace=0.0, partitions=2)
    ahead = [AttributeObservation("payment:p1", f"a{n}", T0 + n * 60, 4, 4, 4, T0) for n in range(30)]
    asyncio.run(step.handle(summaries_message(ahead, partition=0)))
    assert not sink.sent  # partition 1 has not reported: it may hold older summaries
    asyncio.run(step.handle(encode_summaries([], [Progress(1, T0 + 10 * 60, False)])))
    news = [decode_news(m.key, m.value) for m in sink.to(SETTINGS.news_topic)]
    assert news == [T0 + 10 * 60]  # taken up to the slower partition: not yet a campaign to announce
    asyncio.run(step.handle(encode_summaries([], [Progress(1, T0 + 40 * 60, False)])))
    news = [decode_news(m.key, m.value) for m in sink.to(SETTINGS.news_topic)]
    assert news[-1] == T0 + 29 * 60  # now partition 0 is the slower one
    assert {m.key for m in sink.to(SETTINGS.membership_topic)} == {f"a{n}".encode() for n in range(30)}


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
    order = InputOrder()
    order.assign({5: 10})
    flushed = []

    async def flush():
        flushed.append(len(sent))

    offsets = asyncio.run(Snapshots(settings, step, handover, metrics).take(order, flush))
    assert offsets == {5: 10}
    assert sent == [("state", 1, [b"script"])]
    assert flushed == [0, 1]  # before the snapshot is in place, and after the profiles are published
    restored = Detector()
    assert load(restored, settings.snapshot_path) and restored.profiles == step.detector.profiles


def test_when_summaries_stop_coming_the_campaign_step_sends_the_last_growth_of_a_campaign():
    """Members that join late in event time (a partition that lags) do not re-send the campaign on
    their own, and a feed that ends leaves no later sweep to do it: after a quiet spell the campaign
    step sweeps at the newest event time it saw, and the grown campaign's update goes out."""
    sink = RecordingSink()
    clock = [100.0]
    step = campaign_step(sink, pace=0.0, clock=lambda: clock[0])
    hold = CampaignPolicy().campaign_alert_hold_minutes * 60
    alerted = [AttributeObservation("payment:p1", f"a{n}", T0, 4, 4, 4, T0) for n in range(25)]

    def elsewhere(t: float) -> list[AttributeObservation]:  # the clock moves on
        return [AttributeObservation("network:n9", "b", t, 4, 0, 0, T0)]

    late = [AttributeObservation("payment:p1", f"a{n}", T0 + hold + 660, 4, 4, 4, T0) for n in range(25, 30)]

    def sizes() -> list[int]:
        return [orjson.loads(m.value)["data"]["account_count"] for m in sink.to(SETTINGS.alerts_topic)]

    async def run():
        # the campaign alerts at the sweep that ends its hold; the clock moves ten minutes on, and then
        # its last members' summaries arrive
        for observations in (alerted, elsewhere(T0 + hold), elsewhere(T0 + hold + 600), late):
            await step.handle(summaries_message(observations, drained=True))
        await step.send_due()  # not quiet long enough yet
        before = sizes()
        clock[0] += 10.0
        await step.send_due()
        return before, sizes()

    before, after = asyncio.run(run())
    assert before[0] == 25 and before[-1] < 30
    assert after[-1] == 30

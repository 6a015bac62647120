"""The stage handlers: what each returns, and that each can stop and start again from its snapshot."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from detector.detection.core import Detector
from detector.detection.ordering import SummaryKey, record_position
from detector.detection.records import decode_request
from detector.detection.stages import CampaignStages, ChainedStages, DetectStage, LinkStage, MergeStage, Split
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate
from tests.unit.detection.test_core import T0


@pytest.fixture(scope="module")
def summaries():
    """The account summaries of the demo scenario, with the event time of the record that made each."""
    detector = Detector()
    out = []
    for record in generate(Scenario.demo(seed=3)):
        processed = detector.process(decode_request(orjson.dumps(record)))
        out.append((processed.observations, record_time(record)))
    return out


def record_time(record: dict) -> float:
    return decode_request(orjson.dumps(record)).timestamp


def run_campaign_stages(stages: CampaignStages, summaries) -> list[bytes]:
    return [
        orjson.dumps(alert.to_cloudevent())
        for observations, now in summaries
        for alert in stages.handle(observations, now).alerts
    ]


def test_link_and_merge_stages_restored_from_plain_data_continue_as_if_never_stopped(summaries):
    half = len(summaries) // 2
    uninterrupted = CampaignStages()
    expected = run_campaign_stages(uninterrupted, summaries)
    assert any(b"campaign.alert" in event for event in expected)

    first = CampaignStages()
    before = run_campaign_stages(first, summaries[:half])
    # through MessagePack: the snapshots are plain data, fit for a file or a topic
    link_state = msgspec.msgpack.decode(msgspec.msgpack.encode(first.link.snapshot()))
    merge_state = msgspec.msgpack.decode(msgspec.msgpack.encode(first.merge.snapshot()))
    restarted = CampaignStages()
    restarted.link.restore(link_state)
    restarted.merge.restore(merge_state)
    assert before + run_campaign_stages(restarted, summaries[half:]) == expected


def test_the_link_stage_reports_a_sweep_even_without_links():
    """The merge stage resolves idle campaigns by the clock the link stage passes on."""
    stage = LinkStage()
    assert stage.handle([], T0) == ([], T0, False)  # the first time only starts the clock
    assert stage.handle([], T0 + 60) == ([], T0 + 60, False)
    assert stage.handle([], T0 + 3600) == ([], T0 + 3600, True)


def test_the_merge_stage_sweeps_when_the_clock_it_is_given_crosses_a_boundary():
    stage = MergeStage()
    stage.handle([], T0)
    assert stage.sweeps.next_boundary > T0
    before = stage.sweeps.next_boundary
    stage.handle([], before)
    assert stage.sweeps.next_boundary > before


def test_the_detect_stage_returns_alerts_dead_letters_and_summaries_of_one_message():
    stage = DetectStage(Detector())
    good = [orjson.dumps(_record("a", T0 + n)) for n in range(3)]
    message = b"[" + b",".join(good) + b', {"event_id": "x"}]'
    detected = stage.handle(message, topic="llm.requests", partition=3, offset=42)
    assert [r.account_id for r in detected.requests] == ["a", "a", "a"]
    assert [d.reason for d in detected.dead_letters] == ["missing_field"]
    dead_letter = orjson.loads(detected.dead_letters[0].value)
    assert dead_letter["source"] == {"topic": "llm.requests", "partition": 3, "offset": 42}
    assert dead_letter["index"] == 3
    # its first summaries, for the campaign stage, under the key it orders them by: time, partition,
    # place in the partition (the message's offset and the record's index in it)
    key, observations = detected.summaries[0]
    assert key == SummaryKey(T0, 3, record_position(42, 0)) and {o.account_id for o in observations} == {"a"}
    assert detected.observations == detected.memberships == ()
    # read again by a restarted worker (from a checkpoint older than the profile it restored; its
    # guard's window of event ids starts empty), the records are skipped: their account holds them
    again = DetectStage(stage.detector).handle(message, topic="llm.requests", partition=3, offset=42)
    assert all(not observations for _, observations in again.summaries)  # (a sweep tick: its key is taken)
    assert stage.detector.profiles["a"].requests == 3 and stage.detector.duplicates == 3


def test_a_shard_detects_only_its_part_of_a_split_message_and_one_shard_reports_its_dead_letters():
    accounts = [f"acct_{n}" for n in range(20)]
    message = b"[" + b",".join(orjson.dumps(_record(a, T0)) for a in accounts) + b', {"event_id": "x"}]'
    owners = [n % 3 for n in range(20)]
    splits = [Split(bytes([owner == shard for owner in owners]), shard == 1) for shard in range(3)]
    results = [DetectStage(Detector()).handle(message, topic="t", partition=None, offset=7, split=s) for s in splits]
    assert [[r.account_id for r in result.requests] for result in results] == [accounts[i::3] for i in range(3)]
    assert [len(result.dead_letters) for result in results] == [0, 1, 0]


def test_chained_stages_put_campaign_members_on_account_alerts():
    """With the link and merge stages in the same process, an account hears of its campaign before
    it is reviewed, as ``detector replay`` relies on."""
    chained = ChainedStages()
    for record in generate(Scenario.demo(seed=3)):
        chained.process(decode_request(orjson.dumps(record)))
    assert chained.detector.campaign_of
    assert chained.detector.campaign_of.items() <= chained.campaigns.merge.book.campaign_of.items()


def _record(account: str, timestamp: float) -> dict:
    return {
        "event_id": f"{account}-{timestamp}",
        "timestamp": timestamp,
        "account_id": account,
        "model": "m",
        "input_tokens": 10,
        "output_tokens": 20,
        "status_code": 200,
        "payment_fingerprint": "card-1",
    }

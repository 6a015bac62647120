"""detector replay: the core over files, the outputs teams read before going live."""

from __future__ import annotations

import dataclasses
import gzip
import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from detector import replay as replay_module
from detector.detection.core import Detector
from detector.detection.policy import DetectionPolicy
from detector.detection.records import decode_envelope
from detector.detection.stages import ChainedStages
from detector.errors import DetectorError
from detector.replay import CHUNK_LINES, MAX_WORKERS, replay, replay_sharded
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate

SCHEMAS = Path(__file__).parents[2] / "schemas"
BAD_LINES = [
    b"{not json",
    b'{"event_id": "e", "account_id": "a"}',
    b'[{"event_id": "x", "timestamp": 1, "account_id": "a", "model": "m", "input_tokens": -1,'
    b' "output_tokens": 1, "status_code": 200}]',
]


def replay_command(source: Path, folder: Path, workers: int = 1) -> subprocess.CompletedProcess:
    """``detector replay SOURCE`` with every output in ``folder``."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "detector.cli",
            "replay",
            str(source),
            "-o",
            str(folder / "alerts.jsonl"),
            "--dlq",
            str(folder / "dlq.jsonl"),
            "--members",
            str(folder / "members.jsonl"),
            "--workers",
            str(workers),
        ],
        capture_output=True,
        check=True,
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """The demo scenario (gzip) with three bad lines, replayed through the real command."""
    folder = tmp_path_factory.mktemp("replay")
    records = [orjson.dumps(r) for r in generate(Scenario.demo(seed=3))]
    records[10:10] = BAD_LINES
    source = folder / "records.jsonl.gz"
    source.write_bytes(gzip.compress(b"\n".join(records) + b"\n"))
    result = replay_command(source, folder)
    read = lambda name: [orjson.loads(line) for line in (folder / name).read_bytes().splitlines()]  # noqa: E731
    return read("alerts.jsonl"), read("dlq.jsonl"), read("members.jsonl"), result.stderr.decode(), len(records)


def test_every_alert_validates_against_the_published_schema(replayed):
    alerts = replayed[0]
    validator = Draft202012Validator(
        json.loads((SCHEMAS / "alert.v1.schema.json").read_text()), format_checker=FormatChecker()
    )
    assert {a["type"].split(".")[-3] for a in alerts} == {"account", "campaign"}
    for alert in alerts:
        validator.validate(alert)


def test_bad_lines_are_reported_with_their_reasons_and_line_numbers(replayed):
    _, dead_letters, _, stderr, _ = replayed
    assert [(d["reason"], d["source"]["offset"], d["index"]) for d in dead_letters] == [
        ("invalid_json", 11, None),
        ("missing_field", 12, None),
        ("out_of_range", 13, 0),
    ]
    assert "3 rejected (invalid_json 1, missing_field 1, out_of_range 1)" in stderr


def test_the_summary_line_counts_every_line(replayed):
    *_, stderr, lines = replayed
    assert f"replay: {lines:,} lines, {lines - 3:,} records accepted" in stderr


def test_campaign_members_are_written_as_a_membership_stream(replayed):
    alerts, _, members, _, _ = replayed
    campaign_ids = {a["data"]["campaign_id"] for a in alerts if a["type"].endswith("campaign.alert.v1")}
    assert members and {m["campaign_id"] for m in members} <= campaign_ids | {None}
    listed = {acct for a in alerts if a["type"].endswith("campaign.alert.v1") for acct in a["data"]["account_ids"]}
    assert listed <= {m["account_id"] for m in members}


def test_stdin_gives_the_same_alerts_as_a_file(tmp_path):
    records = b"\n".join(orjson.dumps(r) for r in generate(Scenario.demo(seed=3))) + b"\n"
    (tmp_path / "in.jsonl").write_bytes(records)
    from_file = subprocess.run(
        [sys.executable, "-m", "detector.cli", "replay", str(tmp_path / "in.jsonl")], capture_output=True, check=True
    ).stdout
    from_stdin = subprocess.run(
        [sys.executable, "-m", "detector.cli", "replay", "-"], input=records, capture_output=True, check=True
    ).stdout
    assert from_file == from_stdin and from_file


def test_the_same_records_give_the_same_outputs_in_every_process(tmp_path):
    """Python hashes strings with a per-process seed, so a set of account ids iterates in another
    order in each run. Campaign membership once followed that order: two replays of one file wrote
    the members of a campaign in different orders. Which accounts join, and when, must not depend
    on it (80,000 records of the full benign mix and the demo's campaigns over 8 event-time hours:
    owned-TLS joins are among them)."""
    demo = Scenario.demo(seed=7)
    cluster = {**demo.plans[1], "accounts": 800}
    scenario = dataclasses.replace(demo, duration_hours=8.0, scale=0.5, plans=(demo.plans[0], cluster))
    source = tmp_path / "records.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(r) for r in itertools.islice(generate(scenario), 80_000)) + b"\n")
    outputs = []
    for seed in ("1", "2"):
        alerts, members = tmp_path / f"alerts-{seed}.jsonl", tmp_path / f"members-{seed}.jsonl"
        subprocess.run(
            [sys.executable, "-m", "detector.cli", "replay", str(source), "-o", str(alerts), "--members", str(members)],
            check=True,
            capture_output=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        )
        outputs.append((alerts.read_bytes(), members.read_bytes()))
    assert outputs[0][1].count(b"\n") > 100  # campaigns formed
    assert outputs[0] == outputs[1]


@pytest.fixture(scope="module")
def one_and_two_workers(tmp_path_factory):
    """Eight event-time hours of the full mix (campaigns form), with bad lines and an envelope of
    several accounts' records, replayed by one worker and by two; the outputs of each as bytes."""
    folder = tmp_path_factory.mktemp("workers")
    records = [orjson.dumps(r) for r in itertools.islice(generate(Scenario().scaled(0.5, hours=8.0)), 40_000)]
    records[10:10] = BAD_LINES
    records[5000:5000] = [b"[" + b",".join(records[5000:5004]) + b', {"event_id": "x"}]']
    source = folder / "records.jsonl"
    source.write_bytes(b"\n".join(records) + b"\n")
    outputs = {}
    for workers in (1, 2):
        (folder / str(workers)).mkdir()
        replay_command(source, folder / str(workers), workers)
        outputs[workers] = {
            name: (folder / str(workers) / f"{name}.jsonl").read_bytes() for name in ("alerts", "dlq", "members")
        }
    return source, outputs


def test_one_worker_writes_what_the_stages_chained_record_by_record_write(one_and_two_workers):
    """Replay feeds whole lines through the detect stage; eval feeds requests one at a time: same events."""
    source, outputs = one_and_two_workers
    chained = ChainedStages()
    events = []
    for line in source.read_bytes().splitlines():
        requests, _ = decode_envelope(line)
        for request in requests:
            events += [orjson.dumps(alert.to_cloudevent()) + b"\n" for alert in chained.process(request)]
    assert b"".join(events) == outputs[1]["alerts"]


def test_two_workers_fire_the_same_dedup_keys_for_the_same_accounts_as_one(one_and_two_workers):
    _, outputs = one_and_two_workers
    one, two = ([orjson.loads(line) for line in outputs[n]["alerts"].splitlines()] for n in (1, 2))
    keys = lambda alerts: {a["data"]["dedup_key"] for a in alerts}  # noqa: E731
    assert "campaign" in {key.split("/")[1] for key in keys(one)}  # campaign members' own alerts fold into it
    assert keys(one) == keys(two)
    assert alerted(one) == alerted(two)


def test_two_workers_whose_membership_news_comes_only_at_the_end_fire_the_same_dedup_keys_as_one(monkeypatch, tmp_path):
    """Issue 11: a shard learns campaign membership some chunks of lines late; an account alert
    decided in between fired on its own, though in one process the account was already a member and
    its alert folded into the campaign's (here five members did). With the whole input in one chunk no
    news reaches the shards before the end: their decisions wait for it, and each alert ends as one
    worker's does."""
    source = tmp_path / "records.jsonl"
    records = generate(Scenario(seed=42, duration_hours=24, scale=0.12, campaigns=3))
    source.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    one, two = io.BytesIO(), io.BytesIO()
    with source.open("rb") as lines:
        replay(Detector(DetectionPolicy()), lines, one)
    monkeypatch.setattr(replay_module, "CHUNK_LINES", 1 << 20)
    replay_sharded(DetectionPolicy(), str(source), 2, two)
    assert {key.split("/")[1] for key in final_states(one.getvalue())} == {"account", "campaign"}
    assert final_states(two.getvalue()) == final_states(one.getvalue())


def final_states(alerts: bytes) -> dict[str, str]:
    """Each dedup key's last status in a replay's alert lines."""
    return {event["data"]["dedup_key"]: event["data"]["status"] for event in map(orjson.loads, alerts.splitlines())}


def test_two_workers_report_every_bad_record_once_and_the_same_campaign_members(one_and_two_workers):
    """The envelope repeats the four lines after it: those come again as duplicates of admitted events."""
    _, outputs = one_and_two_workers
    reasons = [orjson.loads(line)["reason"] for line in outputs[1]["dlq"].splitlines()]
    bad_lines = ["invalid_json", "missing_field", "out_of_range", "missing_field"]  # the last: {"event_id": "x"}
    assert sorted(reasons) == sorted([*bad_lines, *["duplicate_event"] * 4])
    assert outputs[2]["dlq"] == outputs[1]["dlq"]
    assert outputs[2]["members"] == outputs[1]["members"] and outputs[1]["members"]


def test_two_workers_see_the_end_of_an_input_that_ends_at_a_chunk_end(tmp_path):
    """Shards learn that the input ended from a chunk shorter than the others: here an empty one.
    Blank lines count as no line and go to no shard; the bad one is reported once."""
    records = [orjson.dumps(r) for r in itertools.islice(generate(Scenario.demo(seed=3)), 2 * CHUNK_LINES - 3)]
    records[5:5] = [b"", b"   ", b"{bad"]
    source = tmp_path / "records.jsonl"
    source.write_bytes(b"\n".join(records) + b"\n")
    outputs = {}
    for workers in (1, 2):
        folder = tmp_path / str(workers)
        folder.mkdir()
        summary = replay_command(source, folder, workers).stderr.decode().split(";")[0]
        keys = {orjson.loads(line)["data"]["dedup_key"] for line in (folder / "alerts.jsonl").read_bytes().splitlines()}
        outputs[workers] = summary, keys, (folder / "dlq.jsonl").read_bytes(), (folder / "members.jsonl").read_bytes()
    lines, accepted = 2 * CHUNK_LINES - 2, 2 * CHUNK_LINES - 3
    assert outputs[1][0] == f"replay: {lines:,} lines, {accepted:,} records accepted, 1 rejected (invalid_json 1)"
    assert outputs[1][1] and outputs[2] == outputs[1]


def test_more_workers_than_a_byte_can_route_to_is_refused_before_any_starts(tmp_path):
    with pytest.raises(DetectorError, match=f"at most {MAX_WORKERS}; got {MAX_WORKERS + 1}"):
        replay_sharded(DetectionPolicy(), str(tmp_path / "unread.jsonl"), MAX_WORKERS + 1, io.BytesIO())


def alerted(alerts: list[dict]) -> set[str]:
    return {account for a in alerts if a["data"]["status"] == "firing" for account in a["data"]["account_ids"]}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_record_stamped_2099_changes_no_alert_of_anyone_else(tmp_path, workers):
    """Issue 14: one far-future record among ordinary ones blinded replay (66 firing keys fell to 14)."""
    records = [orjson.dumps(r) for r in generate(Scenario.demo(seed=3))]
    stray = dict(orjson.loads(records[2000]), event_id="stray", account_id="gateway-in-2099")
    stray["timestamp"] = "2099-12-31T00:00:00Z"
    outputs = {}
    for name, lines in (("clean", records), ("stray", [*records[:2000], orjson.dumps(stray), *records[2000:]])):
        (tmp_path / name).mkdir()
        source = tmp_path / name / "records.jsonl"
        source.write_bytes(b"\n".join(lines) + b"\n")
        replay_command(source, tmp_path / name, workers)
        outputs[name] = {
            part: (tmp_path / name / f"{part}.jsonl").read_bytes() for part in ("alerts", "dlq", "members")
        }
    assert outputs["stray"]["alerts"] == outputs["clean"]["alerts"]
    assert (
        b"distillation/account/" in outputs["clean"]["alerts"]
        and b"distillation/campaign/" in outputs["clean"]["alerts"]
    )
    assert outputs["stray"]["members"] == outputs["clean"]["members"]
    [dead_letter] = [orjson.loads(line) for line in outputs["stray"]["dlq"].splitlines()]
    assert (dead_letter["reason"], dead_letter["source"]["offset"]) == ("future_timestamp", 2001)


def test_shards_get_as_much_work_whatever_accounts_their_ids_hash_to():
    """A heavy account first, then light ones one after another: each account stays on one shard, the
    light ones fill the other shard up to the heavy one's work, then share both (a hash of the ids
    split them at random), and the same lines are routed the same way again."""
    lines = [orjson.dumps({"account_id": "heavy", "n": n}) for n in range(600)]
    lines += [orjson.dumps({"account_id": f"light-{n // 6}", "n": n}) for n in range(600)]
    routings = []
    for _ in range(2):
        router = replay_module._Router(2)
        owners = router.line_owners(lines)
        routings.append(owners)
        heavy = owners[0]
        assert set(owners[:600]) == {heavy} and set(owners[600:]) == {0, 1}
        shard_of = {orjson.loads(line)["account_id"]: owner for line, owner in zip(lines, owners, strict=True)}
        assert len(shard_of) == 101  # one shard per account
        assert abs(router.work[0] - router.work[1]) <= replay_module.NEW_ACCOUNT_WORK + 6
    assert routings[0] == routings[1]


def test_accounts_past_what_the_router_remembers_go_by_a_hash_and_stay_on_one_shard(monkeypatch):
    """A file of millions of made-up account ids must not grow the routing process without bound."""
    monkeypatch.setattr(replay_module, "MAX_ROUTED_ACCOUNTS", 3)
    lines = [orjson.dumps({"account_id": f"acct-{n % 40}", "n": n}) for n in range(400)]
    router = replay_module._Router(2)
    owners = router.line_owners(lines)
    assert len(router.shard_of) == 3
    shard_of = {}
    for line, owner in zip(lines, owners, strict=True):
        assert shard_of.setdefault(orjson.loads(line)["account_id"], owner) == owner
    assert set(owners) == {0, 1}

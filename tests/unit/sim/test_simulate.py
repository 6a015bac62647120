"""The traffic generator: deterministic, time-ordered, valid request.v1, labelled, and its tactics do what they say."""

import dataclasses
import gzip
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import jsonschema
import orjson
import pytest

from detector.cli import main
from detector.errors import ConfigError
from detector.sim.attacks import ATTACK_FAMILIES, family_of
from detector.sim.benign import BENIGN_FAMILIES
from detector.sim.scenario import MODEL_NEW, TACTICS, Scenario
from detector.sim.traffic import describe, generate, labels, population, write

TINY = Scenario(seed=3, duration_hours=14.0, scale=0.03, campaign_start_hours=2.0, new_model_release_hours=5.0)


def small(**changes) -> Scenario:
    """A tiny window with two campaigns whose accounts start at once: fast, and every campaign sends."""
    return dataclasses.replace(TINY, campaigns=2, **changes)


def traffic(scenario: Scenario) -> tuple[dict, dict[str, list[dict]]]:
    """Labels, and the records grouped by family."""
    truth = labels(scenario)
    grouped: dict[str, list[dict]] = defaultdict(list)
    for record in generate(scenario):
        grouped[truth["accounts"][record["account_id"]]["family"]].append(record)
    return truth, grouped


def attack_records(scenario: Scenario) -> list[dict]:
    truth = labels(scenario)
    return [r for r in generate(scenario) if truth["accounts"][r["account_id"]]["label"] == "attack"]


@pytest.fixture(scope="module")
def tiny():
    return traffic(TINY)


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    outputs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write(dataclasses.replace(TINY, seed=seed), tmp_path / f"{name}.jsonl.gz", tmp_path / f"{name}.json")
        outputs.append((tmp_path / f"{name}.jsonl.gz").read_bytes() + (tmp_path / f"{name}.json").read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_write_summary_matches_the_file_and_labels(tmp_path):
    summary = write(TINY, tmp_path / "r.jsonl.gz", tmp_path / "l.json")
    lines = gzip.decompress((tmp_path / "r.jsonl.gz").read_bytes()).splitlines()
    truth = orjson.loads((tmp_path / "l.json").read_bytes())
    assert summary.records == len(lines) == sum(summary.records_by_family.values())
    assert summary.accounts == len(truth["accounts"])
    assert {orjson.loads(line)["account_id"] for line in lines} <= set(truth["accounts"])


def test_records_come_in_event_time_order_with_unique_event_ids():
    records = list(generate(TINY))
    timestamps = [r["timestamp"] for r in records]
    assert timestamps == sorted(timestamps)
    assert len({r["event_id"] for r in records}) == len(records)
    assert TINY.start <= timestamps[0] and timestamps[-1] < TINY.end


def test_records_validate_against_the_published_request_v1_schema(tiny):
    schema = orjson.loads((Path(__file__).parents[3] / "schemas" / "request.v1.schema.json").read_bytes())
    validator = jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())
    for records in tiny[1].values():
        for record in records[::7]:
            validator.validate(record)
            if "max_tokens" in record:
                assert record["output_tokens"] <= record["max_tokens"]
            assert record.get("account_created_at", 0) <= record["timestamp"]


def test_labels_are_consistent_with_the_records_and_the_drawn_tactics(tiny):
    truth, grouped = tiny
    for account in truth["accounts"].values():
        assert account["label"] == ("attack" if account["family"] in ATTACK_FAMILIES else "benign")
        assert (account["campaign_id"] is None) == (account["label"] == "benign")
    sizes = Counter(v["campaign_id"] for v in truth["accounts"].values() if v["campaign_id"])
    assert {c: v["accounts"] for c, v in truth["campaigns"].items()} == dict(sizes)
    for campaign in truth["campaigns"].values():
        tactics = campaign["tactics"]
        assert set(tactics) == set(TACTICS)
        assert all(values and set(values) <= set(TACTICS[d]) for d, values in tactics.items())
        assert campaign["family"] == family_of({d: tuple(v) for d, v in tactics.items()})
        assert TINY.campaign_start <= campaign["start"] < TINY.end
    union = {d: [v for v in values if any(v in c["tactics"][d] for c in truth["campaigns"].values())]
             for d, values in TACTICS.items()}  # fmt: skip
    assert truth["scenario"]["tactics"] == union
    assert set(grouped) <= set(BENIGN_FAMILIES + ATTACK_FAMILIES)


def test_every_benign_family_produces_traffic(tiny):
    assert all(tiny[1][family] for family in BENIGN_FAMILIES)


@pytest.mark.parametrize(
    ("forced", "family"),
    [
        ({"rate": "burst"}, "blatant_extractor"),
        ({"rate": "steady", "size": "hundreds", "egress": "datacenter"}, "low_and_slow"),
        (
            {
                "rate": "trickle",
                "egress": "residential",
                "network_sharing": "per_account",
                "paraphrase": "all_reworded",
            },
            "evasive",
        ),  # fmt: skip
        ({"rate": "steady", "size": "tens", "egress": "datacenter", "pivot": "release_pivot"}, "model_pivot"),
        ({"rate": "steady", "size": "single", "egress": "datacenter", "pivot": "none"}, "harvest_cluster"),
    ],
)
def test_every_attack_family_can_be_produced(forced, family):
    truth, grouped = traffic(small(force=forced))
    assert {c["family"] for c in truth["campaigns"].values()} == {family}
    assert grouped[family]


@pytest.mark.parametrize(("dimension", "value"), [(d, v) for d, values in TACTICS.items() for v in values])
def test_every_tactic_value_can_be_forced_into_every_campaign(dimension, value):
    scenario = dataclasses.replace(TINY, campaigns=4, force={dimension: {value}})
    assert all(value in tactics[dimension] for tactics in scenario.campaign_tactics)


@pytest.mark.parametrize("dimension", sorted(TACTICS))
def test_excluded_tactic_values_are_never_drawn(dimension):
    banned = set(TACTICS[dimension][:-1])
    for seed in range(20):
        scenario = Scenario(seed=seed, exclude={dimension: banned})
        assert all(not banned & set(tactics[dimension]) for tactics in scenario.campaign_tactics)


def test_undrawn_scenarios_draw_every_value_somewhere():
    seen = defaultdict(set)
    for seed in range(40):
        for tactics in Scenario(seed=seed).campaign_tactics:
            for dimension, values in tactics.items():
                seen[dimension].update(values)
    assert {d: set(v) for d, v in TACTICS.items()} == dict(seen)


@pytest.mark.parametrize(
    "change",
    [
        {"duration_hours": 0},
        {"campaign_start_hours": 99},
        {"scale": 0},
        {"force": {"wording": {"poetry"}}},
        {"exclude": {"colour": {"red"}}},
        {"exclude": {"pivot": {"none", "release_pivot"}}},
        {"force": {"rate": {"burst"}}, "exclude": {"rate": {"burst"}}},
    ],
)
def test_impossible_scenarios_are_refused(change):
    with pytest.raises(ConfigError):
        Scenario(**change)


@pytest.mark.parametrize("wording", TACTICS["wording"])
def test_campaigns_harvest_novel_single_turn_long_answers_under_every_wording(wording):
    others = set(TACTICS["wording"]) - {wording}
    forced = {"wording": {wording}, "rate": "steady", "size": "hundreds"}
    records = attack_records(small(force=forced, exclude={"wording": others, "cover": {"mixed_chat"}}))
    prompts = [r["prompt_text"] for r in records]
    assert len(records) > 50
    assert len(set(prompts)) > 0.98 * len(prompts)
    assert all(r.get("turn_index", 0) == 0 for r in records)
    assert statistics.median(r["output_tokens"] for r in records if r["status_code"] == 200) > 1500


def test_plain_complete_harvests_carry_no_reasoning_vocabulary():
    records = attack_records(small(force={"wording": {"plain_complete"}, "language": "english"},
                                   exclude={"wording": {"reasoning"}, "cover": {"mixed_chat"}}))  # fmt: skip
    assert records
    assert not any("step by step" in r["prompt_text"].lower() or "reasoning" in r["prompt_text"].lower()
                   for r in records)  # fmt: skip


def test_tactics_show_in_the_records():
    def records_with(**forced):
        return attack_records(small(force={**forced, "rate": "steady"}))

    multilingual = records_with(language="multilingual", paraphrase="fixed_templates")
    assert sum(not r["prompt_text"].isascii() for r in multilingual) > 0.2 * len(multilingual)
    wrapped = records_with(wrapper="json", cover="none")
    assert all(isinstance(orjson.loads(r["prompt_text"]), dict) for r in wrapped)
    assert all("system_prompt_hash" in r for r in records_with(wrapper="system_prompt", cover="none"))
    assert all(r["user_agent"].startswith("Mozilla") for r in records_with(client="browser"))
    assert len({r["client_ip"] for r in records_with(egress="shared_nat")}) <= 16
    covered = records_with(cover="mixed_chat")
    assert any(r["turn_index"] > 0 for r in covered)
    pivot = small(force={"pivot": "release_pivot", "rate": "steady", "size": "tens"}, duration_hours=30.0)
    after = [r for r in attack_records(pivot) if r["timestamp"] > pivot.release + 21 * 3600]
    assert 0.15 < sum(r["model"] == MODEL_NEW for r in after) / len(after) < 0.85


def test_cover_chat_runs_beside_the_harvest_and_takes_none_of_its_turns():
    """A burst account with cover chat harvests at its drawn rate: cover conversations (minutes of
    follow-ups each) are added to its traffic, not sent instead of harvest requests."""

    def harvests_per_hour(cover: str) -> float:
        scenario = small(force={"rate": "burst", "size": "single", "cover": cover, "schedule": "round_the_clock"})
        truth = labels(scenario)
        openings = [r for r in attack_records(scenario) if r.get("turn_index", 0) == 0 and r["output_tokens"] > 500]
        hours = sum(c["parameters"]["active_hours"] for c in truth["campaigns"].values())
        return len(openings) / hours

    assert harvests_per_hour("mixed_chat") > 0.5 * harvests_per_hour("none")


def test_fixed_templates_repeat_their_wording_and_full_rewording_does_not():
    def shared_openings(paraphrase):
        records = attack_records(small(force={"paraphrase": paraphrase, "wording": {"reasoning"}, "wrapper": "bare",
                                              "language": "english"},
                                       exclude={"cover": {"mixed_chat"}, "capability": {"natural"}}))  # fmt: skip
        endings = Counter(r["prompt_text"][-40:] for r in records)
        return sum(count for _, count in endings.most_common(8)) / len(records)

    assert shared_openings("fixed_templates") > 0.5 > shared_openings("all_reworded")


def test_eval_suites_rerun_a_fixed_set_of_prompts(tiny):
    by_account = defaultdict(Counter)
    for record in tiny[1]["eval_pipeline"]:
        by_account[record["account_id"]][record["prompt_text"]] += 1
    for counts in by_account.values():
        assert min(counts.values()) >= 2


def test_ordinary_chat_is_multi_turn(tiny):
    turns = defaultdict(list)
    for record in tiny[1]["ordinary_chat"]:
        turns[record["conversation_id"]].append(record["turn_index"])
    assert all(indices == list(range(len(indices))) for indices in turns.values())
    assert sum(len(indices) > 1 for indices in turns.values()) > len(turns) / 5


def test_ordinary_users_sometimes_repeat_themselves(tiny):
    prompts = [
        [r["prompt_text"] for r in own if "prompt_text" in r] for own in _by_account(tiny[1]["ordinary_chat"]).values()
    ]
    repeated = [asked for asked in prompts if len(set(asked)) < len(asked)]
    assert repeated


def test_api_products_are_long_lived_accounts_with_long_mostly_single_turn_answers(tiny):
    records = tiny[1]["api_product"]
    for own in _by_account(records).values():
        assert own[0]["account_created_at"] < TINY.start - 50 * 86400
        assert len(own) > 100
        assert sum(r["turn_index"] == 0 for r in own) > 0.6 * len(own)
    assert statistics.median(r["output_tokens"] for r in records) > 400


def test_dev_teams_share_a_card_but_converse(tiny):
    accounts = [a for a in population(TINY).accounts if a.family == "dev_team"]
    assert len(accounts) >= 2 and len({a.payment_fingerprint for a in accounts}) < len(accounts)
    assert any(r["turn_index"] > 0 for r in tiny[1]["dev_team"])


def test_describe_prints_the_drawn_tactics_and_no_records(capsys):
    assert main(["simulate", "--describe", "--seed", "5", "--scale", "0.05", "--force", "wording=tool_use"]) == 0
    described = orjson.loads(capsys.readouterr().out)
    expected = describe(Scenario(seed=5, force={"wording": {"tool_use"}}).scaled(0.05))
    assert described == orjson.loads(orjson.dumps(expected))
    assert all("tool_use" in c["tactics"]["wording"] for c in described["campaigns"].values())


def _by_account(records):
    grouped = defaultdict(list)
    for record in records:
        grouped[record["account_id"]].append(record)
    return grouped


def _first_per_account(records):
    return [group[0] for group in _by_account(records).values()]

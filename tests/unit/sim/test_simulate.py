"""The traffic generator: deterministic, time-ordered, well-typed, and each family behaves as labelled."""

import dataclasses
import gzip
import os
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import jsonschema
import orjson
import pytest

from detector.errors import ConfigError
from detector.sim.simulate import (
    ATTACK_FAMILIES,
    BENIGN_FAMILIES,
    MODEL_NEW,
    Scenario,
    generate,
    labels,
    write,
)

SMALL = Scenario(
    seed=11,
    duration_hours=36.0,
    ordinary_accounts=60,
    coding_agents=2,
    enterprise_batch=2,
    eval_pipelines=2,
    nat_accounts=15,
    launch_crowd=15,
    resellers=1,
    blatant_extractors=1,
    low_and_slow_accounts=60,
    evasive_accounts=30,
    pivot_accounts=30,
    campaign_start_hours=6.0,
    new_model_release_hours=12.0,
)
TINY = Scenario(
    seed=3,
    duration_hours=8.0,
    ordinary_accounts=20,
    coding_agents=1,
    enterprise_batch=1,
    eval_pipelines=1,
    nat_accounts=5,
    launch_crowd=5,
    resellers=1,
    blatant_extractors=1,
    low_and_slow_accounts=10,
    evasive_accounts=5,
    pivot_accounts=5,
    campaign_start_hours=2.0,
    new_model_release_hours=4.0,
)

REQUIRED = {
    "event_id": str,
    "timestamp": float,
    "account_id": str,
    "model": str,
    "input_tokens": int,
    "output_tokens": int,
    "status_code": int,
}
OPTIONAL = {
    "org_id": str,
    "api_key_id": str,
    "operation": str,
    "max_tokens": int,
    "temperature": float,
    "finish_reason": str,
    "latency_ms": int,
    "client_ip": str,
    "user_agent": str,
    "conversation_id": str,
    "turn_index": int,
    "prompt_text": str,
    "system_prompt_hash": str,
    "payment_fingerprint": str,
    "account_created_at": float,
    "signup_channel": str,
    "tls_fingerprint": str,
}


@pytest.fixture(scope="module")
def truth():
    return labels(SMALL)


@pytest.fixture(scope="module")
def by_family(truth):
    family_of = {account: v["family"] for account, v in truth["accounts"].items()}
    grouped = defaultdict(list)
    for record in generate(SMALL):
        grouped[family_of[record["account_id"]]].append(record)
    return grouped


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path):
    paths = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        scenario = dataclasses.replace(TINY, seed=seed)
        write(scenario, tmp_path / f"{name}.jsonl.gz", tmp_path / f"{name}.json")
        paths.append((tmp_path / f"{name}.jsonl.gz").read_bytes() + (tmp_path / f"{name}.json").read_bytes())
    assert paths[0] == paths[1]
    assert paths[0] != paths[2]


def test_write_summary_matches_the_file_and_labels(tmp_path):
    summary = write(TINY, tmp_path / "r.jsonl.gz", tmp_path / "l.json")
    lines = gzip.decompress((tmp_path / "r.jsonl.gz").read_bytes()).splitlines()
    truth = orjson.loads((tmp_path / "l.json").read_bytes())
    assert summary.records == len(lines) == sum(summary.records_by_family.values())
    assert summary.accounts == len(truth["accounts"])
    assert {orjson.loads(line)["account_id"] for line in lines} <= set(truth["accounts"])


def test_records_come_in_event_time_order_with_unique_event_ids(by_family):
    records = list(generate(SMALL))
    timestamps = [r["timestamp"] for r in records]
    assert timestamps == sorted(timestamps)
    assert len({r["event_id"] for r in records}) == len(records)
    assert SMALL.start <= timestamps[0] and timestamps[-1] < SMALL.end


def test_every_family_is_labelled_and_produces_traffic(truth, by_family):
    families = Counter(v["family"] for v in truth["accounts"].values())
    assert set(families) == set(BENIGN_FAMILIES + ATTACK_FAMILIES)
    assert all(by_family[f] for f in BENIGN_FAMILIES + ATTACK_FAMILIES)
    for account in truth["accounts"].values():
        assert account["label"] == ("attack" if account["family"] in ATTACK_FAMILIES else "benign")
        assert (account["campaign_id"] is None) == (account["label"] == "benign")
    campaign_sizes = Counter(v["campaign_id"] for v in truth["accounts"].values() if v["campaign_id"])
    assert {c: v["accounts"] for c, v in truth["campaigns"].items()} == dict(campaign_sizes)


def test_account_ids_do_not_reveal_the_family(truth):
    assert all(re.fullmatch(r"acct_[0-9a-f]{16}", account) for account in truth["accounts"])


def test_records_conform_to_request_v1_field_types(by_family):
    for records in by_family.values():
        for record in records:
            for name, kind in REQUIRED.items():
                assert type(record[name]) is kind, (name, record)
            for name, value in record.items():
                if name not in REQUIRED:
                    assert type(value) is OPTIONAL[name], (name, record)
            assert record.get("finish_reason", "stop") in {"stop", "length", "tool_calls"}
            assert record.get("operation", "chat") in {"chat", "text_completion"}
            assert record["input_tokens"] >= 0 and record["output_tokens"] >= 0
            if "max_tokens" in record:
                assert record["output_tokens"] <= record["max_tokens"]
            assert record.get("account_created_at", 0) <= record["timestamp"]


def test_records_validate_against_the_published_request_v1_schema(by_family):
    schema = orjson.loads((Path(__file__).parents[3] / "schemas" / "request.v1.schema.json").read_bytes())
    validator = jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())
    for records in by_family.values():
        for record in records[::25]:
            validator.validate(record)


def test_some_benign_records_omit_optional_fields_but_attack_records_keep_their_prompts(by_family):
    chat = by_family["ordinary_chat"]
    assert 0 < sum("prompt_text" not in r for r in chat) < len(chat) / 3
    assert sum("client_ip" not in r for r in chat) > 0
    for family in ATTACK_FAMILIES:
        assert all("prompt_text" in r for r in by_family[family])


def test_ordinary_users_hold_multi_turn_conversations(by_family):
    turns = defaultdict(list)
    for r in by_family["ordinary_chat"]:
        turns[r["conversation_id"]].append(r["turn_index"])
    assert all(t == list(range(len(t))) for t in turns.values())
    assert sum(len(t) > 1 for t in turns.values()) > len(turns) / 4


def test_coding_agents_run_long_context_tool_loops(by_family):
    records = by_family["coding_agent"]
    assert statistics.median(r["input_tokens"] for r in records) > 2000
    assert Counter(r.get("finish_reason") for r in records)["tool_calls"] > len(records) / 2
    per_day = len(records) / 2 / (SMALL.duration_hours / 24)
    assert per_day > 100


def test_eval_pipeline_repeats_the_same_prompts_at_temperature_zero(by_family):
    prompts = defaultdict(Counter)
    for r in by_family["eval_pipeline"]:
        prompts[r["account_id"]][r["prompt_text"]] += 1
        assert r["temperature"] == 0.0 and r.get("turn_index", 0) == 0
    for counts in prompts.values():
        assert 200 <= len(counts) <= 500
        assert min(counts.values()) >= 3  # every benchmark item is asked again in every run


def test_enterprise_batch_sends_one_narrow_template_with_short_outputs(by_family):
    for records in _by_account(by_family["enterprise_batch"]).values():
        prompts = [r["prompt_text"] for r in records if "prompt_text" in r]
        if prompts:
            assert len({p.split("\n")[0] for p in prompts}) == 1
        assert statistics.median(r["output_tokens"] for r in records) < 100


def test_blatant_extractor_is_perfectly_regular_with_one_template(by_family):
    records = by_family["blatant_extractor"]
    gaps = [b["timestamp"] - a["timestamp"] for a, b in zip(records, records[1:], strict=False)]
    assert 300 <= 3600 / statistics.mean(gaps) <= 3000
    assert statistics.pstdev(gaps) < 0.01 * statistics.mean(gaps)
    prompts = [r["prompt_text"] for r in records]
    assert len(set(prompts)) == len(prompts)
    assert _longest_shared_wording(prompts) >= 20


def test_low_and_slow_accounts_make_about_26_exchanges_a_day_from_shared_infrastructure(truth, by_family):
    records = by_family["low_and_slow"]
    campaign_days = (SMALL.end - SMALL.campaign_start) / 86400
    per_account_day = len(records) / SMALL.low_and_slow_accounts / campaign_days
    assert 22 <= per_account_day <= 30
    assert len({r["user_agent"] for r in records}) == 1 and len({r["tls_fingerprint"] for r in records}) == 1
    assert len({r["client_ip"].rsplit(".", 1)[0] for r in records}) <= 5
    cards = Counter(r["payment_fingerprint"] for r in _first_per_account(records))
    assert max(cards.values()) >= 20
    assert all(r["turn_index"] == 0 for r in records)
    assert len({r["prompt_text"] for r in records}) == len(records)


def test_low_and_slow_accounts_were_opened_in_batches_before_the_campaign(by_family):
    created = sorted(r["account_created_at"] for r in _first_per_account(by_family["low_and_slow"]))
    assert created[-1] < SMALL.campaign_start
    assert created[-1] - created[0] < 7 * 86400


def test_evasive_accounts_vary_wording_ips_and_agents_but_ask_for_reasoning(by_family):
    records = by_family["evasive"]
    first = _first_per_account(records)
    assert len({r["client_ip"] for r in first}) == len(first)
    assert len({r["user_agent"] for r in records}) >= 5
    assert _longest_shared_wording([r["prompt_text"] for r in records]) < 20
    for account_records in _by_account(records).values():  # even one account varies its wording
        if len(account_records) >= 10:
            assert _longest_shared_wording([r["prompt_text"] for r in account_records]) < 20
    assert all(r["turn_index"] == 0 for r in records)
    assert statistics.median(r["output_tokens"] for r in records) > 1500


def test_model_pivot_moves_about_half_its_traffic_to_the_new_model_within_a_day(by_family):
    records = by_family["model_pivot"]
    release = SMALL.release
    assert not any(r["model"] == MODEL_NEW for r in records if r["timestamp"] < release)
    after = [r for r in records if release + 9 * 3600 <= r["timestamp"] < release + 24 * 3600]
    share = sum(r["model"] == MODEL_NEW for r in after) / len(after)
    assert 0.35 <= share <= 0.65


def test_launch_crowd_rushes_to_the_new_model(by_family):
    records = [r for r in by_family["launch_crowd"] if r["timestamp"] >= SMALL.release + 3 * 3600]
    assert sum(r["model"] == MODEL_NEW for r in records) / len(records) > 0.6


def test_shared_nat_puts_many_accounts_behind_a_few_ips(by_family):
    records = by_family["shared_nat"]
    assert len({r["account_id"] for r in records}) >= 10
    assert len({r["client_ip"] for r in records if "client_ip" in r}) <= 5


def test_parameters_vary_with_the_seed():
    assert labels(TINY)["scenario"]["parameters"] != labels(dataclasses.replace(TINY, seed=4))["scenario"]["parameters"]


def test_a_scaled_scenario_keeps_every_family_and_the_campaign_timeline():
    scaled = SMALL.scaled(0.1, hours=72)
    assert scaled.ordinary_accounts == 6 and scaled.low_and_slow_accounts == 6 and scaled.resellers == 1
    assert scaled.campaign_start_hours == 12.0 and scaled.new_model_release_hours == 24.0
    assert {v["family"] for v in labels(scaled)["accounts"].values()} == set(BENIGN_FAMILIES + ATTACK_FAMILIES)


@pytest.mark.parametrize("change", [{"low_and_slow_accounts": -1}, {"duration_hours": 0}, {"campaign_start_hours": 99}])
def test_impossible_scenarios_are_refused(change):
    with pytest.raises(ConfigError):
        Scenario(**change)


def _by_account(records):
    grouped = defaultdict(list)
    for r in records:
        grouped[r["account_id"]].append(r)
    return grouped


def _first_per_account(records):
    return [group[0] for group in _by_account(records).values()]


def _longest_shared_wording(prompts):
    """Length of the prefix or suffix that every prompt shares: a fixed template's instruction."""
    return max(len(os.path.commonprefix(prompts)), len(os.path.commonprefix([p[::-1] for p in prompts])))

"""Detection on simulated traffic the detector was not tuned on (another seed, other sizes).

The four campaigns are planned in the shapes the detector was designed against (a blatant
extractor, a low-and-slow cluster, an evasive cluster, a model pivot), every undrawn tactic drawn
from the seed; the benign families are those it was tuned beside. Each hard-negative family stays
quiet; each attack family is caught. "Flagged" means named by a firing alert at warning or above,
an account alert or a campaign alert. How it fares on freshly drawn tactics and the newer
look-alike families is what ``detector eval --sweep`` measures, not this test.
"""

from __future__ import annotations

import orjson
import pytest

from detector.detection.records import decode_request
from detector.detection.stages import ChainedStages
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate, labels

_REASONING_TEMPLATES = {"wording": ("reasoning",), "wrapper": "bare", "language": "english", "cover": "none"}
PLANS = (
    {**_REASONING_TEMPLATES, "paraphrase": "fixed_templates", "size": "single", "accounts": 1, "rate": "burst",
     "client": "popular_sdk", "egress": "datacenter", "network_sharing": "shared", "payment": "per_account",
     "schedule": "round_the_clock", "timing": "scripted", "pivot": "none"},
    {**_REASONING_TEMPLATES, "paraphrase": "fixed_templates", "size": "hundreds", "accounts": 300, "rate": "steady",
     "client": "popular_sdk", "egress": "datacenter", "network_sharing": "shared", "payment": "hundreds_per_card",
     "creation": "batched", "account_age": "fresh", "schedule": "synchronized_shifts", "pivot": "none"},
    {**_REASONING_TEMPLATES, "paraphrase": "all_reworded", "size": "hundreds", "accounts": 120, "rate": "steady",
     "client": "custom_client", "egress": "residential", "network_sharing": "per_account",
     "payment": "hundreds_per_card", "schedule": "independent", "timing": "jittered", "pivot": "none"},
    {**_REASONING_TEMPLATES, "paraphrase": "fixed_templates", "size": "tens", "accounts": 100, "rate": "steady",
     "client": "custom_client", "egress": "datacenter", "network_sharing": "shared", "payment": "small_groups",
     "creation": "batched", "schedule": "round_the_clock", "pivot": "release_pivot"},
)  # fmt: skip
ATTACK_FAMILIES = ("blatant_extractor", "low_and_slow", "evasive", "model_pivot")
TUNED_BENIGN_FAMILIES = (
    "ordinary_chat", "coding_agent", "enterprise_batch", "eval_pipeline", "shared_nat", "launch_crowd", "reseller",
)  # fmt: skip
SCENARIO = Scenario(
    seed=13,
    duration_hours=30.0,
    scale=0.15,
    campaigns=len(PLANS),
    plans=PLANS,
    campaign_start_hours=8.0,
    new_model_release_hours=16.0,
)


@pytest.fixture(scope="module")
def outcome():
    truth = labels(SCENARIO)["accounts"]
    detector = ChainedStages()
    flagged: dict[str, float] = {}
    for record in generate(SCENARIO):
        for alert in detector.process(decode_request(orjson.dumps(record))):
            if alert.status == "firing" and alert.severity in ("warning", "critical"):
                for account in alert.account_ids:
                    flagged.setdefault(account, alert.time)
    active = set(detector.profiles)
    return truth, flagged, active


def members(truth, active, family):
    return {a for a, label in truth.items() if label["family"] == family and a in active}


@pytest.mark.parametrize("family", TUNED_BENIGN_FAMILIES)
def test_hard_negative_family_stays_quiet(outcome, family):
    truth, flagged, active = outcome
    accounts = members(truth, active, family)
    assert accounts, f"the scenario has no active {family} accounts"
    assert not accounts & flagged.keys()


@pytest.mark.parametrize("family", ATTACK_FAMILIES)
def test_attack_family_is_caught(outcome, family):
    truth, flagged, active = outcome
    accounts = members(truth, active, family)
    assert accounts
    caught = len(accounts & flagged.keys()) / len(accounts)
    assert caught >= 0.9, f"{family}: {caught:.0%} of {len(accounts)} accounts flagged"

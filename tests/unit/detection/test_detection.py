"""Detection on simulated traffic the detector was not tuned on (another seed, other sizes).

Each hard-negative family stays quiet; each attack family is caught. "Flagged" means named by a
firing alert at warning or above, an account alert or a campaign alert.
"""

from __future__ import annotations

import orjson
import pytest

from detector.detection.records import decode_request
from detector.detection.stages import ChainedStages
from detector.sim.simulate import ATTACK_FAMILIES, BENIGN_FAMILIES, Scenario, generate, labels

SCENARIO = Scenario(
    seed=13,
    duration_hours=30.0,
    ordinary_accounts=400,
    coding_agents=6,
    enterprise_batch=3,
    eval_pipelines=3,
    nat_accounts=60,
    launch_crowd=60,
    resellers=2,
    blatant_extractors=1,
    low_and_slow_accounts=300,
    evasive_accounts=120,
    pivot_accounts=100,
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


@pytest.mark.parametrize("family", BENIGN_FAMILIES)
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

"""``detector tune``: candidates one threshold at a time, ranked on the campaigns without the left-out tactic."""

import orjson
import pytest

from detector.cli import main
from detector.detection.policy import DetectionPolicy
from detector.errors import ConfigError
from detector.sim.sweep import Goals
from detector.sim.tuning import Candidate, candidates, choose, parse_grid

GOALS = Goals()


def _campaign(rate="steady", detected=True, keys=1, flagged=10, ttd=1.0):
    return {"detected": detected, "alert_keys": keys, "coverage_6h": 1.0, "accounts": 10, "flagged": flagged,
            "time_to_detect_hours": ttd, "tactics": {"rate": [rate]}}  # fmt: skip


def _rows(*campaigns, benign_fpr=0.0):
    return [{"benign_false_positive_rate": benign_fpr, "campaigns": list(campaigns)}]


IN_USE, OTHER = Candidate("in use", {}), Candidate("warning_risk=50", {"warning_risk": 50})


def test_a_candidate_that_pages_customers_loses_to_one_that_misses_attackers():
    results = [(IN_USE, _rows(_campaign(detected=False, flagged=0))), (OTHER, _rows(_campaign(), benign_fpr=0.002))]
    assert choose(results, None, GOALS)["chosen"] == "in use"


def test_leaving_a_tactic_out_ignores_its_campaigns_when_choosing():
    """The other candidate is better only on trickle campaigns: chosen with them, not without them."""
    results = [
        (IN_USE, _rows(_campaign(), _campaign("trickle", detected=False, flagged=0))),
        (OTHER, _rows(_campaign(ttd=1.5), _campaign("trickle"))),
    ]
    assert choose(results, None, GOALS)["chosen"] == "warning_risk=50"
    without = choose(results, ("rate", "trickle"), GOALS)
    assert without["chosen"] == "in use" and without["left_out"] == "rate=trickle"
    assert [row["campaigns"] for row in without["ranking"]] == [1, 1]


def test_a_tie_keeps_the_policy_in_use_and_failures_count_before_recall():
    assert choose([(IN_USE, _rows(_campaign())), (OTHER, _rows(_campaign()))], None, GOALS)["chosen"] == "in use"
    split = [(IN_USE, _rows(_campaign(keys=4))), (OTHER, _rows(_campaign(flagged=9)))]
    assert choose(split, None, GOALS)["chosen"] == "warning_risk=50"


def test_a_scenario_under_the_worst_recall_goal_counts_as_a_failure():
    """Both flag 18 of 20 attackers; the one that leaves a scenario at 80 % loses."""
    uneven = [{"benign_false_positive_rate": 0.0, "campaigns": [_campaign(flagged=flagged)]} for flagged in (10, 8)]
    even = [{"benign_false_positive_rate": 0.0, "campaigns": [_campaign(flagged=9)]} for _ in range(2)]
    choice = choose([(IN_USE, uneven), (OTHER, even)], None, GOALS)
    assert choice["chosen"] == "warning_risk=50"
    assert [row["goal_failures"] for row in choice["ranking"]] == [0, 1]


def test_candidates_change_one_threshold_at_a_time_and_build_valid_policies():
    grid = parse_grid({"warning_risk": [50], "campaigns.min_card_accounts": [4, 5]})
    found = candidates(grid, base={"campaigns": {"min_shared_accounts": 10}})
    assert [c.name for c in found] == [
        "in use", "warning_risk=50", "campaigns.min_card_accounts=4", "campaigns.min_card_accounts=5",
    ]  # fmt: skip
    policy = DetectionPolicy.with_overrides(found[2].overrides)
    assert policy.campaigns.min_card_accounts == 4 and policy.campaigns.min_shared_accounts == 10
    assert policy.warning_risk == DetectionPolicy().warning_risk
    for bad in ({"warning": [50]}, {"campaigns.min_cards": [4]}, {"warning_risk": 50}, {"warning_risk": []}):
        with pytest.raises(ConfigError, match="tune: grid"):
            parse_grid(bad)


def test_the_command_line_writes_one_chosen_policy_per_left_out_tactic(tmp_path, capsys):
    grid = tmp_path / "grid.json"
    grid.write_text('{"campaigns.min_campaign_accounts": [5]}')
    status = main(["tune", str(grid), "--sweep", "1", "--jobs", "1", "--scale", "0.02", "--hours", "10",
                   "--leave-out", "rate=trickle", "--report", str(tmp_path / "tune")])  # fmt: skip
    assert status == 0
    assert "left out: rate=trickle" in capsys.readouterr().out
    written = orjson.loads((tmp_path / "tune" / "tune.json").read_bytes())
    assert [choice["left_out"] for choice in written["choices"]] == ["none", "rate=trickle"]
    chosen = orjson.loads((tmp_path / "tune" / "policy-rate=trickle.json").read_bytes())
    DetectionPolicy.with_overrides(chosen)  # a policy file eval --policy accepts
    assert main(["tune", str(grid), "--leave-out", "rate=sluggish", "--report", str(tmp_path / "x")]) == 2


def test_a_candidate_swept_before_over_the_same_scenarios_is_read_back(tmp_path, monkeypatch):
    grid = tmp_path / "grid.json"
    grid.write_text('{"campaigns.min_campaign_accounts": [5]}')
    arguments = ["tune", str(grid), "--sweep", "1", "--jobs", "1", "--scale", "0.02", "--hours", "10",
                 "--report", str(tmp_path / "tune")]  # fmt: skip
    assert main(arguments) == 0
    first = orjson.loads((tmp_path / "tune" / "tune.json").read_bytes())

    def no_sweep(*args, **kwargs):
        raise AssertionError("swept again")

    monkeypatch.setattr("detector.sim.tuning.run_sweep", no_sweep)
    assert main([*arguments, "--leave-out", "size=tens"]) == 0
    again = orjson.loads((tmp_path / "tune" / "tune.json").read_bytes())
    assert again["choices"][0] == first["choices"][0] and again["choices"][1]["left_out"] == "size=tens"
    grid.write_text('{"campaigns.min_campaign_accounts": [4]}')  # another candidate: swept
    with pytest.raises(AssertionError, match="swept again"):
        main(arguments)

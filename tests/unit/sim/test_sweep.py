"""``detector eval --sweep``: scenarios with drawn tactics, run through the detector, judged worst and median."""

import orjson
import pytest

from detector.cli import main
from detector.errors import ConfigError
from detector.sim.sweep import EVALUATION_SEEDS, TUNING_SEEDS, Goals, SweepPlan, SweepReport, run_sweep

TINY = {"scale": 0.03, "hours": 12.0}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    plan = SweepPlan(scenarios=2, seeds="tune", force={"wording": {"plain_complete"}}, **TINY)
    return run_sweep(plan, jobs=2, report_dir=folder), folder


def test_the_sweep_runs_every_scenario_and_reports_worst_and_median(sweep):
    report, folder = sweep
    assert [row["seed"] for row in report.rows] == [1000, 1001]
    summary = report.summary
    for figure in ("attacker_recall", "benign_false_positive_rate", "median_time_to_detect_hours"):
        assert set(summary[figure]) == {"worst", "median"}
    assert summary["attacker_recall"]["worst"] <= summary["attacker_recall"]["median"]
    written = orjson.loads((folder / "sweep.json").read_bytes())
    assert written["summary"]["passed"] == report.passed
    assert "verdict: " in (folder / "sweep.txt").read_text()


def test_a_held_out_tactic_is_in_every_campaign_and_in_the_tactic_table(sweep):
    report, _ = sweep
    campaigns = [c for row in report.rows for c in row["campaigns"]]
    assert campaigns and all("plain_complete" in c["tactics"]["wording"] for c in campaigns)
    row = next(t for t in report.by_tactic if (t["dimension"], t["value"]) == ("wording", "plain_complete"))
    assert row["campaigns"] == len(campaigns)


def _row(recall, fpr, campaigns):
    return {"seed": 1, "records": 1, "attacker_recall": recall, "benign_false_positive_rate": fpr,
            "benign_flagged_by_family": {}, "campaigns_detected": sum(c["detected"] for c in campaigns),
            "campaigns": campaigns, "median_time_to_detect_hours": 0.5}  # fmt: skip


def _campaign(detected=True, keys=1, coverage=1.0):
    tactics = {"wording": ["reasoning"]}
    return {"detected": detected, "alert_keys": keys, "coverage_6h": coverage, "accounts": 10, "flagged": 10,
            "tactics": tactics}  # fmt: skip


def test_the_verdict_needs_every_goal_in_every_scenario():
    plan = SweepPlan(scenarios=2, seeds="tune")
    good = [_row(0.99, 0.0, [_campaign()]), _row(0.97, 0.0005, [_campaign()])]
    assert SweepReport(plan, good, Goals(), 1.0).passed
    for bad in (
        _row(0.99, 0.002, [_campaign()]),  # too many benign accounts flagged in one scenario
        _row(0.85, 0.0, [_campaign()]),  # the worst recall below 90 %
        _row(0.99, 0.0, [_campaign(keys=4)]),  # a campaign split into four alerts
        _row(0.99, 0.0, [_campaign(coverage=0.9)]),  # members missing from the campaign alert at 6 h
        _row(0.99, 0.0, [_campaign(detected=False)]),
    ):
        assert not SweepReport(plan, [good[0], bad], Goals(), 1.0).passed


def test_tuning_and_evaluation_seeds_do_not_overlap_and_a_sweep_stays_in_its_range():
    assert not set(TUNING_SEEDS) & set(EVALUATION_SEEDS)
    assert SweepPlan(scenarios=3, seeds="eval").seed_list() == [5000, 5001, 5002]
    with pytest.raises(ConfigError):
        SweepPlan(scenarios=2, seeds="tune", first_seed=EVALUATION_SEEDS.start)
    with pytest.raises(ConfigError):
        SweepPlan(scenarios=1, force={"wording": {"sonnets"}})


def test_the_command_line_runs_a_sweep(tmp_path, capsys):
    arguments = ["eval", "--sweep", "1", "--seeds", "tune", "--first-seed", "1500", "--jobs", "1", "--scale", "0.02",
                 "--hours", "10", "--hold-out", "egress=shared_nat", "--report", str(tmp_path)]  # fmt: skip
    status = main(arguments)
    assert status in (0, 1)
    assert "recall by tactic value" in capsys.readouterr().out
    written = orjson.loads((tmp_path / "sweep.json").read_bytes())
    assert written["plan"]["force"] == {"egress": ["shared_nat"]}

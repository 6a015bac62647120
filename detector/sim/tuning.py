"""``detector tune``: which thresholds the tuning seeds choose, with every tactic and without each.

Leave-one-tactic-out asks whether the detector was fitted to a tactic: tune it without the tactic,
then evaluate it with the tactic in every campaign. The detector's structure was designed by hand
with every tactic in view, so what can be chosen again blind is its thresholds. ``detector tune``
runs one tuning sweep per *candidate* policy (the policy in use, and each value of a grid, one
threshold at a time) and, for each left-out tactic, chooses the candidate that scores best on the
campaigns that do **not** have the tactic; ``detector eval --sweep N --seeds eval --hold-out
TACTIC --policy CHOSEN.json`` then measures the choice with the tactic forced into every campaign.

The candidates are scored on the same sweeps for every left-out tactic, rather than on sweeps drawn
with the tactic excluded: one set of sweeps serves them all, and each choice rests on every scenario.
The left-out tactic's campaigns still run in the tuning scenarios (they can share a network or a
client with others); only their figures are left out of the score.

A candidate's score, compared in this order (lower is better):

1. scenarios whose benign false-positive rate is over the goal: a page about a customer costs most;
2. goal failures among the campaigns scored: each campaign missed, over the alert keys goal or under
   the 6 h listing goal (each counts once), and each scenario whose recall over them is under the
   worst-scenario goal;
3. attacker accounts flagged among those campaigns, pooled (more is better);
4. the median time to detect among them (a missed campaign: never).

>>> grid = parse_grid({"warning_risk": [50, 60], "campaigns.min_attribute_accounts": [4]})
>>> [candidate.name for candidate in candidates(grid)]
['in use', 'warning_risk=50', 'warning_risk=60', 'campaigns.min_attribute_accounts=4']
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from detector.detection.policy import CampaignPolicy, DetectionPolicy
from detector.errors import ConfigError
from detector.sim.sweep import Goals, SweepPlan, run_sweep

ALL_TACTICS = "none"
"""The left-out name of the choice made with every tactic scored."""


@dataclass(frozen=True)
class Candidate:
    """A policy to try: the one in use with at most one threshold changed."""

    name: str
    overrides: dict[str, Any]
    """As in a policy file: detection fields at the top, campaign fields under ``"campaigns"``."""


def parse_grid(grid: dict[str, list]) -> dict[str, list]:
    """Check a grid (``{"field" or "campaigns.field": [values]}``) against the policy's fields."""
    detection = {f.name for f in dataclasses.fields(DetectionPolicy)} - {"campaigns"}
    campaign = {f.name for f in dataclasses.fields(CampaignPolicy)}
    for name, values in grid.items():
        section, _, field_name = name.rpartition(".")
        known = campaign if section == "campaigns" else detection if not section else set()
        if field_name not in known:
            raise ConfigError(f"tune: grid names an unknown policy field {name!r} (campaign fields as campaigns.NAME)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"tune: grid field {name!r} needs a non-empty list of values; got {values!r}")
    return grid


def candidates(grid: dict[str, list], base: dict[str, Any] | None = None) -> list[Candidate]:
    """The policy in use (``base`` overrides), then each grid value alone on top of it."""
    base = base or {}
    found = [Candidate("in use", base)]
    for name, values in grid.items():
        section, _, field_name = name.rpartition(".")
        for value in values:
            overrides = {**base, "campaigns": dict(base.get("campaigns", {}))}
            (overrides["campaigns"] if section else overrides)[field_name] = value
            if not overrides["campaigns"]:
                del overrides["campaigns"]
            found.append(Candidate(f"{name}={value}", overrides))
    return found


def score(rows: list[dict], left_out: tuple[str, str] | None, goals: Goals) -> dict:
    """A candidate's figures over its sweep's rows, leaving out campaigns with the ``(dimension, value)`` tactic."""
    kept_by_scenario = [
        [
            campaign
            for campaign in row["campaigns"]
            if left_out is None or left_out[1] not in campaign["tactics"][left_out[0]]
        ]
        for row in rows
    ]
    kept = [campaign for campaigns in kept_by_scenario for campaign in campaigns]
    benign_over = sum((row["benign_false_positive_rate"] or 0.0) > goals.benign_false_positive_rate for row in rows)
    failures = sum(
        (not campaign["detected"])
        + (campaign["alert_keys"] > goals.alert_keys_per_campaign)
        + (campaign["coverage_6h"] is not None and campaign["coverage_6h"] < goals.members_listed_within_6h)
        for campaign in kept
    ) + sum(
        sum(campaign["flagged"] for campaign in campaigns)
        < goals.attacker_recall_worst * sum(campaign["accounts"] for campaign in campaigns)
        for campaigns in kept_by_scenario
    )
    accounts = sum(campaign["accounts"] for campaign in kept)
    flagged = sum(campaign["flagged"] for campaign in kept)
    times = [campaign["time_to_detect_hours"] if campaign["detected"] else math.inf for campaign in kept]
    return {
        "campaigns": len(kept),
        "benign_scenarios_over_goal": benign_over,
        "goal_failures": failures,
        "attackers_flagged": flagged,
        "attackers": accounts,
        "median_time_to_detect_hours": statistics.median(times) if times else None,
    }


def _order(figures: dict) -> tuple:
    ttd = figures["median_time_to_detect_hours"]
    return (
        figures["benign_scenarios_over_goal"],
        figures["goal_failures"],
        -figures["attackers_flagged"],
        math.inf if ttd is None else ttd,
    )


def choose(results: list[tuple[Candidate, list[dict]]], left_out: tuple[str, str] | None, goals: Goals) -> dict:
    """Every candidate's figures without the tactic, best first (ties keep the policy in use)."""
    scored = [(candidate, score(rows, left_out, goals)) for candidate, rows in results]
    ranked = sorted(enumerate(scored), key=lambda item: (_order(item[1][1]), item[0]))
    return {
        "left_out": "=".join(left_out) if left_out else ALL_TACTICS,
        "chosen": ranked[0][1][0].name,
        "overrides": ranked[0][1][0].overrides,
        "ranking": [{"candidate": candidate.name, **figures} for _, (candidate, figures) in ranked],
    }


def run_tuning(
    plan: SweepPlan,
    grid: dict[str, list],
    left_out: list[tuple[str, str]],
    report_dir: str | Path,
    base: dict[str, Any] | None = None,
    jobs: int | None = None,
    progress: TextIO | None = sys.stderr,
) -> list[dict]:
    """Sweep every candidate over ``plan``, then choose for all tactics and for each left-out one.

    Writes ``tune.json``, ``tune.txt`` and one ``policy-<left out>.json`` per choice into ``report_dir``,
    each candidate's sweep in its own folder beside them: a candidate swept before over the same
    scenarios is read back, not run again (a grid grown by one value costs one sweep). The detector's
    code is not part of that check: after changing it, tune into a new folder."""
    goals = Goals()
    folder = Path(report_dir)
    results = []
    for index, candidate in enumerate(candidates(grid, base)):
        done = folder / f"candidate-{index}"
        asked = {
            "candidate": candidate.name,
            "overrides": candidate.overrides,
            "seeds": plan.seed_list(),
            "scale": plan.scale,
            "hours": plan.hours,
        }
        if (done / "candidate.json").is_file() and orjson.loads((done / "candidate.json").read_bytes()) == asked:
            rows = orjson.loads((done / "sweep.json").read_bytes())["scenarios"]  # the same sweep, run before
        else:
            if progress is not None:
                print(f"tune: candidate {index} ({candidate.name})", file=progress, flush=True)
            policy = DetectionPolicy.with_overrides(candidate.overrides, f"tune candidate {candidate.name}")
            rows = run_sweep(plan, jobs=jobs, report_dir=done, policy=policy, goals=goals).rows
            (done / "candidate.json").write_bytes(orjson.dumps(asked))
        results.append((candidate, rows))
    choices = [choose(results, tactic, goals) for tactic in [None, *left_out]]
    folder.mkdir(parents=True, exist_ok=True)
    for choice in choices:
        (folder / f"policy-{choice['left_out']}.json").write_bytes(
            orjson.dumps(choice["overrides"], option=orjson.OPT_INDENT_2)
        )
    (folder / "tune.json").write_bytes(orjson.dumps({"grid": grid, "choices": choices}, option=orjson.OPT_INDENT_2))
    (folder / "tune.txt").write_text(text(choices) + "\n")
    return choices


def text(choices: list[dict]) -> str:
    """Per left-out tactic: the candidates best first, with the figures that ranked them."""
    lines = []
    for choice in choices:
        lines += [
            "",
            f"left out: {choice['left_out']} → chosen: {choice['chosen']}",
            f"  {'candidate':<40} {'camps':>5} {'benign>goal':>11} {'failures':>8} {'flagged':>15} {'TTD p50 h':>9}",
        ]
        for row in choice["ranking"]:
            ttd = row["median_time_to_detect_hours"]
            lines.append(
                f"  {row['candidate']:<40} {row['campaigns']:>5} {row['benign_scenarios_over_goal']:>11} "
                f"{row['goal_failures']:>8} {row['attackers_flagged']:>7,}/{row['attackers']:<7,} "
                f"{'never' if ttd is None or math.isinf(ttd) else f'{ttd:.2f}':>9}"
            )
    return "\n".join(lines[1:])

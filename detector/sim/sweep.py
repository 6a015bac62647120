"""``detector eval --sweep``: does the detector generalize to campaigns whose tactics it has not seen?

One scenario says little: the detector may have been tuned on it. A sweep runs many scenarios,
each with campaigns whose tactics are freshly drawn from their seed, runs the detector over each
exactly as ``detector eval`` does (:func:`detector.sim.evaluate.evaluate`), and judges the *worst*
scenario as well as the median one, because a campaign the detector misses is missed in full.

Seeds come from two fixed, disjoint ranges: tune on ``TUNING_SEEDS``, report on ``EVALUATION_SEEDS``
(``--seeds eval``, what the README's figures use), so the figures are not those of scenarios the
detector was adjusted to. Leave-one-tactic-out: tune with a tactic excluded
(``--seeds tune --exclude wording=plain_complete``), then evaluate with it forced into every
campaign (``--seeds eval --hold-out wording=plain_complete``).

Per tactic value the sweep reports the recall of the campaigns that had it, so a weakness shows
as a tactic, not only as a lower average.

>>> plan = SweepPlan(scenarios=2, seeds="tune")
>>> plan.seed_list()
[1000, 1001]
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import orjson

from detector.errors import ConfigError
from detector.sim.evaluate import COVERAGE_HOURS, evaluate
from detector.sim.scenario import TACTICS, Scenario

TUNING_SEEDS = range(1000, 2000)
"""Seeds to tune the detector on."""
EVALUATION_SEEDS = range(5000, 7000)
"""Seeds to report on; never tune on these."""
SEED_RANGES = {"tune": TUNING_SEEDS, "eval": EVALUATION_SEEDS}


@dataclass(frozen=True)
class Goals:
    """What a sweep must show to pass (every scenario, the worst, the median)."""

    benign_false_positive_rate: float = 0.001
    """In every scenario, at most this share of benign accounts flagged."""
    alert_keys_per_campaign: int = 3
    """Every campaign detected, as at most this many distinct alerts (dedup keys)."""
    members_listed_within_6h: float = 0.95
    """Of every campaign's members active by 6 event-time hours after its start, the share that a paging
    alert (their campaign's, or their own) named by then."""
    attacker_recall_median: float = 0.95
    attacker_recall_worst: float = 0.90
    median_time_to_detect_hours: float = 2.0
    """The median over scenarios of each scenario's median campaign time to detect (a missed campaign: never)."""


@dataclass(frozen=True)
class SweepPlan:
    """Which scenarios a sweep runs: how many, from which seed range, at what size, with which tactics pinned."""

    scenarios: int
    seeds: str = "eval"
    first_seed: int | None = None
    scale: float = 0.5
    hours: float = 48.0
    force: Mapping[str, set[str]] = field(default_factory=dict)
    exclude: Mapping[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.seeds not in SEED_RANGES:
            raise ConfigError(f"sweep: seeds must be one of {sorted(SEED_RANGES)}; got {self.seeds!r}")
        if self.scenarios < 1:
            raise ConfigError(f"sweep: the number of scenarios must be >= 1; got {self.scenarios}")
        seeds = SEED_RANGES[self.seeds]
        first = seeds.start if self.first_seed is None else self.first_seed
        if not (seeds.start <= first and first + self.scenarios <= seeds.stop):
            raise ConfigError(
                f"sweep: seeds {first}..{first + self.scenarios - 1} leave the {self.seeds} range "
                f"{seeds.start}..{seeds.stop - 1}"
            )
        self.scenario(first)  # refuse unknown tactics before any work starts

    def seed_list(self) -> list[int]:
        first = SEED_RANGES[self.seeds].start if self.first_seed is None else self.first_seed
        return list(range(first, first + self.scenarios))

    def scenario(self, seed: int) -> Scenario:
        base = Scenario(seed=seed, force=self.force, exclude=self.exclude)
        return base.scaled(self.scale, hours=self.hours)


def run_scenario(scenario: Scenario, policy=None) -> dict:
    """One scenario, generated in memory and evaluated: the row the sweep keeps of it."""
    from detector.detection.records import decode_request
    from detector.sim.traffic import generate, labels

    began = time.perf_counter()
    truth = labels(scenario)
    dumps = orjson.dumps
    report = evaluate((decode_request(dumps(record)) for record in generate(scenario)), truth, policy)
    return _row(scenario, truth, report.figures, time.perf_counter() - began)


def _row(scenario: Scenario, truth: dict, figures: dict, seconds: float) -> dict:
    benign = figures["benign"]
    campaigns = []
    for campaign_id, found in figures["campaigns"]["by_campaign"].items():
        if not found["accounts"]:
            continue  # no member sent anything in the window
        labeled = truth["campaigns"][campaign_id]
        # a member is listed once a paging alert names it: its campaign's, or its own while it is in none
        # (a campaign alert needs 3 members or more; an operator of two accounts is paged per account)
        coverage = found["flagged_6h"]
        campaigns.append(
            {
                "campaign_id": campaign_id,
                "family": found["family"],
                "accounts": found["accounts"],
                "flagged": found["flagged"],
                "detected": found["detected"],
                "alert_keys": found["alerts"],
                "listed_6h": coverage["flagged"],
                "active_6h": coverage["active"],
                "coverage_6h": coverage["rate"],
                "campaign_listed_6h": found["coverage_6h"]["listed"],
                "time_to_detect_hours": found["time_to_detect_hours"],
                "start_hours": round((labeled["start"] - scenario.start) / 3600.0, 2),
                "tactics": labeled["tactics"],
            }
        )
    ttds = [campaign["time_to_detect_hours"] if campaign["detected"] else math.inf for campaign in campaigns]
    return {
        "seed": scenario.seed,
        "records": figures["records"]["accepted"],
        "seconds": round(seconds, 1),
        "attacker_recall": figures["attack"]["recall"],
        "attack_accounts": figures["attack"]["accounts"],
        "benign_accounts": benign["accounts"],
        "benign_flagged": benign["flagged"],
        "benign_false_positive_rate": benign["false_positive_rate"],
        "benign_flagged_by_family": {
            family: row["flagged"] for family, row in benign["by_family"].items() if row["flagged"]
        },
        "campaigns_detected": sum(campaign["detected"] for campaign in campaigns),
        "campaigns": campaigns,
        "median_time_to_detect_hours": statistics.median(ttds) if ttds else None,
    }


@dataclass
class SweepReport:
    """Per-scenario rows, their worst and median, the verdict against ``Goals``, and recall per tactic value."""

    plan: SweepPlan
    rows: list[dict]
    goals: Goals
    seconds: float

    @property
    def summary(self) -> dict:
        rows = self.rows
        recalls = [row["attacker_recall"] if row["attacker_recall"] is not None else 0.0 for row in rows]
        fprs = [row["benign_false_positive_rate"] or 0.0 for row in rows]
        campaigns = [campaign for row in rows for campaign in row["campaigns"]]
        detected_share = [
            row["campaigns_detected"] / len(row["campaigns"]) if row["campaigns"] else 1.0 for row in rows
        ]
        keys = [max((campaign["alert_keys"] for campaign in row["campaigns"]), default=0) for row in rows]
        coverage = [_worst_coverage(row) for row in rows]
        ttd = [row["median_time_to_detect_hours"] for row in rows if row["median_time_to_detect_hours"] is not None]
        goals = self.goals
        verdicts = {
            "benign_fpr_every_scenario": max(fprs) <= goals.benign_false_positive_rate,
            "every_campaign_detected": all(campaign["detected"] for campaign in campaigns),
            "alert_keys_per_campaign": all(
                campaign["alert_keys"] <= goals.alert_keys_per_campaign for campaign in campaigns
            ),
            "members_listed_within_6h": all(
                campaign["coverage_6h"] is None or campaign["coverage_6h"] >= goals.members_listed_within_6h
                for campaign in campaigns
            ),
            "attacker_recall_median": statistics.median(recalls) >= goals.attacker_recall_median,
            "attacker_recall_worst": min(recalls) >= goals.attacker_recall_worst,
            "median_time_to_detect": bool(ttd) and statistics.median(ttd) <= goals.median_time_to_detect_hours,
        }
        return {
            "scenarios": len(rows),
            "campaigns": len(campaigns),
            "campaigns_detected": sum(campaign["detected"] for campaign in campaigns),
            "attacker_recall": {"worst": min(recalls), "median": statistics.median(recalls)},
            "benign_false_positive_rate": {"worst": max(fprs), "median": statistics.median(fprs)},
            "campaigns_detected_share": {"worst": min(detected_share), "median": statistics.median(detected_share)},
            "alert_keys_per_campaign_max": {"worst": max(keys), "median": statistics.median(keys)},
            "members_listed_within_6h_min": {"worst": min(coverage), "median": statistics.median(coverage)},
            "median_time_to_detect_hours": {
                "worst": max(ttd) if ttd else None,
                "median": statistics.median(ttd) if ttd else None,
            },
            "benign_flagged_by_family": _sum_counts(row["benign_flagged_by_family"] for row in rows),
            "verdicts": verdicts,
            "passed": all(verdicts.values()),
        }

    @property
    def passed(self) -> bool:
        return self.summary["passed"]

    @property
    def by_tactic(self) -> list[dict]:
        """Per tactic value: campaigns that had it, how many were detected, and their accounts' recall."""
        rows = []
        campaigns = [campaign for row in self.rows for campaign in row["campaigns"]]
        for dimension, values in TACTICS.items():
            for value in values:
                having = [campaign for campaign in campaigns if value in campaign["tactics"][dimension]]
                if not having:
                    continue
                accounts = sum(campaign["accounts"] for campaign in having)
                rows.append(
                    {
                        "dimension": dimension,
                        "value": value,
                        "campaigns": len(having),
                        "detected": sum(campaign["detected"] for campaign in having),
                        "campaign_recall": round(sum(campaign["detected"] for campaign in having) / len(having), 4),
                        "account_recall": round(sum(campaign["flagged"] for campaign in having) / accounts, 4)
                        if accounts
                        else None,
                    }
                )
        return rows

    def to_json(self) -> dict:
        plan = self.plan
        return {
            "plan": {
                "scenarios": plan.scenarios,
                "seeds": plan.seeds,
                "seed_list": plan.seed_list(),
                "scale": plan.scale,
                "hours": plan.hours,
                "force": {dimension: sorted(values) for dimension, values in plan.force.items()},
                "exclude": {dimension: sorted(values) for dimension, values in plan.exclude.items()},
            },
            "goals": self.goals.__dict__,
            "seconds": round(self.seconds, 1),
            "summary": self.summary,
            "by_tactic": self.by_tactic,
            "scenarios": self.rows,
        }

    def text(self) -> str:
        """The per-scenario table, worst and median against the goals, then recall by tactic value."""
        summary, goals = self.summary, self.goals
        lines = [
            f"sweep: {len(self.rows)} scenarios ({self.plan.seeds} seeds {self.plan.seed_list()[0]}.."
            f"{self.plan.seed_list()[-1]}, scale {self.plan.scale:g}, {self.plan.hours:g} h) in {self.seconds:.0f} s",
            "",
            f"{'seed':>5} {'records':>8} {'camps':>6} {'recall':>7} {'benign FPR':>11} {'max keys':>8} "
            f"{'min 6h cov':>10} {'TTD p50 h':>9}  flagged benign",
        ]
        for row in self.rows:
            ttd = row["median_time_to_detect_hours"]
            lines.append(
                f"{row['seed']:>5} {row['records']:>8,} {row['campaigns_detected']:>3}/{len(row['campaigns']):<2} "
                f"{_percent(row['attacker_recall']):>7} {_percent(row['benign_false_positive_rate'], 2):>11} "
                f"{max((campaign['alert_keys'] for campaign in row['campaigns']), default=0):>8} "
                f"{_percent(_worst_coverage(row)):>10} {_hours(ttd):>9}  "
                + ", ".join(f"{family} {count}" for family, count in row["benign_flagged_by_family"].items())
            )
        rows = (
            ("attacker recall", "attacker_recall", _percent, "median >= 95 %, worst >= 90 %"),
            (
                "benign false-positive rate",
                "benign_false_positive_rate",
                lambda values: _percent(values, 2),
                "<= 0.1 % in each",
            ),
            ("campaigns detected (share)", "campaigns_detected_share", _percent, "all"),
            (
                "alert keys per campaign (max)",
                "alert_keys_per_campaign_max",
                str,
                f"<= {goals.alert_keys_per_campaign}",
            ),
            (
                f"members listed within {COVERAGE_HOURS:g} h (min)",
                "members_listed_within_6h_min",
                _percent,
                ">= 95 % each campaign",
            ),
            ("median time to detect, h", "median_time_to_detect_hours", _hours, "median <= 2 h"),
        )
        lines += ["", f"{'figure':<32} {'worst':>9} {'median':>9}  goal"]
        for name, key, show, goal in rows:
            lines.append(f"{name:<32} {show(summary[key]['worst']):>9} {show(summary[key]['median']):>9}  {goal}")
        lines.append(
            f"campaigns detected: {summary['campaigns_detected']} / {summary['campaigns']}; benign flagged by family: "
            + (", ".join(f"{name} {count}" for name, count in summary["benign_flagged_by_family"].items()) or "none")
        )
        failed = [name for name, ok in summary["verdicts"].items() if not ok]
        lines.append("verdict: " + ("PASS" if summary["passed"] else "FAIL (" + ", ".join(failed) + ")"))
        lines += ["", "recall by tactic value (campaigns detected / with it; their accounts flagged), worst first:"]
        for tactic in sorted(
            self.by_tactic, key=lambda tactic: (tactic["campaign_recall"], tactic["account_recall"] or 0.0)
        ):
            lines.append(
                f"  {tactic['dimension'] + '=' + tactic['value']:<36} "
                f"{tactic['detected']:>3} / {tactic['campaigns']:<3} "
                f"{_percent(tactic['campaign_recall']):>7}  accounts {_percent(tactic['account_recall']):>7}"
            )
        return "\n".join(lines)

    def write(self, report_dir: str | Path) -> Path:
        folder = Path(report_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sweep.txt").write_text(self.text() + "\n")
        path = folder / "sweep.json"
        path.write_bytes(orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))
        return path


def run_sweep(
    plan: SweepPlan, jobs: int | None = None, report_dir: str | Path | None = None, progress: TextIO | None = None,
    policy=None, goals: Goals | None = None,
) -> SweepReport:  # fmt: skip
    """Run every scenario of ``plan`` (``jobs`` at a time in worker processes; default: the number of
    cores) and write ``sweep.json`` and ``sweep.txt`` into ``report_dir`` when given."""
    import os

    if policy is None:
        from detector.stream.config import Settings

        policy = Settings.from_env().policy()
    jobs = jobs or os.cpu_count() or 1
    began = time.perf_counter()
    scenarios = [plan.scenario(seed) for seed in plan.seed_list()]
    rows: list[dict] = []

    def done(row: dict) -> None:
        rows.append(row)
        if progress is not None:
            print(
                f"sweep: seed {row['seed']} done in {row['seconds']:.0f} s ({len(rows)}/{len(scenarios)}): "
                f"recall {_percent(row['attacker_recall'])}, campaigns {row['campaigns_detected']}/"
                f"{len(row['campaigns'])}, benign flagged {row['benign_flagged']}",
                file=progress,
                flush=True,
            )

    if jobs == 1:
        for scenario in scenarios:
            done(run_scenario(scenario, policy))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for row in pool.map(run_scenario, scenarios, [policy] * len(scenarios)):
                done(row)
    rows.sort(key=lambda row: row["seed"])
    report = SweepReport(plan, rows, goals or Goals(), time.perf_counter() - began)
    if report_dir is not None:
        report.write(report_dir)
    return report


def _worst_coverage(row: dict) -> float:
    rates = [campaign["coverage_6h"] for campaign in row["campaigns"] if campaign["coverage_6h"] is not None]
    return min(rates) if rates else 1.0


def _sum_counts(counts) -> dict[str, int]:
    total: dict[str, int] = {}
    for mapping in counts:
        for key, value in mapping.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items(), key=lambda item: -item[1]))


def _percent(rate: float | None, digits: int = 1) -> str:
    return "-" if rate is None else f"{rate:.{digits}%}"


def _hours(value: float | None) -> str:
    if value is None:
        return "-"
    return "never" if math.isinf(value) else f"{value:.2f}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: detector eval --sweep N")

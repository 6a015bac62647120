"""``detector eval``: the figures it reports on labeled traffic, and the report it writes."""

from __future__ import annotations

import dataclasses
import gzip

import orjson
import pytest

from detector.detection.alerting import CAMPAIGN_ALERT_TYPE, Alert
from detector.detection.records import Request, decode_request
from detector.sim.evaluate import PLOTS, evaluate, evaluate_files
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate, labels

T0 = 1_772_409_600.0
HOUR = 3600.0

LABELS = {
    "accounts": {
        "a1": {"family": "low_and_slow", "label": "attack", "campaign_id": "C1"},
        "a2": {"family": "low_and_slow", "label": "attack", "campaign_id": "C1"},
        "a3": {"family": "low_and_slow", "label": "attack", "campaign_id": "C1"},
        "a4": {"family": "low_and_slow", "label": "attack", "campaign_id": "C1"},  # never sends a record
        "b1": {"family": "blatant_extractor", "label": "attack", "campaign_id": "C2"},
        "e1": {"family": "evasive", "label": "attack", "campaign_id": "C3"},
        "n1": {"family": "ordinary_chat", "label": "benign", "campaign_id": None},
        "n2": {"family": "ordinary_chat", "label": "benign", "campaign_id": None},
        "n3": {"family": "ordinary_chat", "label": "benign", "campaign_id": None},
        "n4": {"family": "ordinary_chat", "label": "benign", "campaign_id": None},  # never sends a record
        "c1": {"family": "coding_agent", "label": "benign", "campaign_id": None},
    },
    "campaigns": {
        "C1": {"family": "low_and_slow", "start": T0, "accounts": 4},
        "C2": {"family": "blatant_extractor", "start": T0 + 1 * HOUR, "accounts": 1},
        "C3": {"family": "evasive", "start": T0, "accounts": 1},
    },
}


def request(account: str, t: float) -> Request:
    return Request(
        event_id=f"{account}@{t}",
        timestamp=t,
        account_id=account,
        model="helix-3",
        input_tokens=100,
        output_tokens=500,
        status_code=200,
    )


def alert(account_ids, t: float, severity="warning", status="firing", risk=60.0, campaign=None) -> Alert:
    subject = campaign or account_ids[0]
    return Alert(
        subject=subject,
        dedup_key=f"distillation/{'campaign' if campaign else 'account'}/{subject}",
        sequence=1,
        status=status,
        severity=severity,
        risk_score=risk,
        account_ids=tuple(account_ids),
        summary="",
        evidence=(),
        first_seen=T0,
        last_seen=t,
        time=t,
        event_count=1,
        campaign_id=campaign,
        **({"type": CAMPAIGN_ALERT_TYPE} if campaign else {}),
    )


class ScriptedDetector:
    """Returns the alerts scripted for an event id; records what it was given."""

    def __init__(self, script: dict[str, list[Alert]]):
        self.script = script
        self.processed: list[str] = []

    def process(self, request: Request) -> list[Alert]:
        self.processed.append(request.event_id)
        return self.script.get(request.event_id, [])


def scripted_run():
    """Every account sends one request every 15 minutes for 3 hours; alerts fire on cue."""
    traffic = sorted(
        (
            request(account, T0 + i * 900.0)
            for i in range(13)
            for account in ("a1", "a2", "a3", "b1", "e1", "n1", "n2", "n3", "c1", "stranger")
        ),
        key=lambda r: r.timestamp,
    )
    at = lambda account, hours: f"{account}@{T0 + hours * HOUR}"  # noqa: E731
    script = {
        at("a1", 1.0): [alert(["a1"], T0 + 1.0 * HOUR, risk=62.0)],  # a1's 5th request
        at("a1", 1.5): [alert(["a1"], T0 + 1.5 * HOUR, "critical", risk=81.0)],  # an update: same dedup key
        at("b1", 1.5): [alert(["b1"], T0 + 1.5 * HOUR, "critical", risk=90.0)],
        at("e1", 2.0): [alert(["e1"], T0 + 2.0 * HOUR, "info", risk=50.0)],  # info pages nobody
        at("a3", 2.0): [alert(["a3"], T0 + 2.0 * HOUR, "critical", "resolved", risk=20.0)],
        # on a1's request, a campaign alert names a2 (never alerted alone) and a1 (already flagged)
        at("a1", 2.0): [alert(["a1", "a2", "a4"], T0 + 2.0 * HOUR, "critical", risk=85.0, campaign="C1")],
        at("n1", 0.5): [alert(["n1"], T0 + 0.5 * HOUR, risk=57.0)],
        at("stranger", 0.5): [alert(["stranger"], T0 + 0.5 * HOUR, risk=99.0)],
    }
    records = [*traffic[:7], decode_request(b"{not json"), *traffic[7:]]
    detector = ScriptedDetector(script)
    return evaluate(records, LABELS, detector=detector), detector


def test_attacker_recall_counts_accounts_flagged_by_account_or_campaign_alerts():
    figures = scripted_run()[0].figures
    attack = figures["attack"]
    assert (attack["accounts"], attack["flagged"], attack["recall"]) == (5, 3, 0.6)
    assert attack["flagged_by"] == {"account": 2, "campaign": 1}  # a2 only through the campaign alert
    families = attack["by_family"]
    assert (families["low_and_slow"]["accounts"], families["low_and_slow"]["flagged"]) == (3, 2)
    assert families["blatant_extractor"]["rate"] == 1.0
    assert families["evasive"]["rate"] == 0.0


def test_labeled_accounts_without_records_are_left_out_of_rates_and_counted():
    report, detector = scripted_run()
    accounts = report.figures["accounts"]
    assert accounts["labeled_unseen"] == 2
    assert accounts["labeled_unseen_by_family"] == {"low_and_slow": 1, "ordinary_chat": 1}
    assert accounts["unlabeled_seen"] == 1
    assert report.outcomes["a4"].flagged_at is not None  # named by the campaign alert, yet not in any rate
    assert report.figures["campaigns"]["by_campaign"]["C1"]["accounts"] == 3


def test_benign_false_positive_rate_and_the_flagged_benign_accounts():
    benign = scripted_run()[0].figures["benign"]
    assert (benign["accounts"], benign["flagged"], benign["false_positive_rate"]) == (4, 1, 0.25)
    assert benign["by_family"]["ordinary_chat"] == {"accounts": 3, "flagged": 1, "rate": pytest.approx(1 / 3, abs=1e-6)}
    assert benign["by_family"]["coding_agent"]["flagged"] == 0
    assert [a["account_id"] for a in benign["flagged_accounts"]] == ["n1"]
    assert benign["flagged_accounts"][0]["requests_at_flag"] == 3


def test_time_to_detect_counts_from_the_campaign_start_in_hours():
    figures = scripted_run()[0].figures
    # a1 at 1 h after C1's start, a2 at 2 h (the campaign alert), b1 at 0.5 h after C2's start
    assert figures["time_to_detect_hours"]["accounts"] == {"count": 3, "median": 1.0, "p90": 1.8, "max": 2.0}
    # C1 at 1 h (its first member), C2 at 0.5 h; C3 never
    assert figures["time_to_detect_hours"]["campaigns"] == {"count": 2, "median": 0.75, "p90": 0.95, "max": 1.0}


def test_requests_at_detection_are_the_accounts_own_requests_up_to_the_alert():
    figures = scripted_run()[0].figures
    by_family = figures["attack"]["by_family"]
    # a1 flagged on its 5th request, b1 on its 7th, a2 by a campaign alert after its 8th
    assert by_family["low_and_slow"]["requests_at_detection"]["median"] == 6.5
    assert figures["requests_at_detection"] == {"count": 3, "median": 7.0, "p90": 7.8, "max": 8}


def test_campaign_recall_and_alerts_per_campaign():
    campaigns = scripted_run()[0].figures["campaigns"]
    assert (campaigns["count"], campaigns["detected"]) == (3, 2)
    assert campaigns["recall"] == pytest.approx(2 / 3, abs=1e-6)
    by_campaign = campaigns["by_campaign"]
    # C1: a1's account alert (fired, then updated under the same key) and the campaign alert
    assert by_campaign["C1"]["alerts"] == 2
    assert by_campaign["C2"]["alerts"] == 1
    assert by_campaign["C3"] == {
        "family": "evasive",
        "accounts": 1,
        "accounts_labeled": 1,
        "flagged": 0,
        "detected": False,
        "time_to_detect_hours": None,
        "alerts": 0,
        "coverage_6h": {"active": 1, "listed": 0, "rate": 0.0, "campaign_alerts": 0},
        "coverage_final": {"active": 1, "listed": 0, "rate": 0.0, "campaign_alerts": 0},
        "flagged_6h": {"active": 1, "flagged": 0, "rate": 0.0},
    }


def test_coverage_is_the_share_of_members_active_by_six_hours_that_a_campaign_alert_listed_by_then():
    members = ("x1", "x2", "x3", "x4")
    truth = {
        "accounts": {a: {"family": "evasive", "label": "attack", "campaign_id": "C"} for a in members},
        "campaigns": {"C": {"family": "evasive", "start": T0, "accounts": 4}},
    }
    traffic = [
        request("x1", T0),
        request("x2", T0 + 1 * HOUR),
        request("x3", T0 + 2 * HOUR),
        request("x4", T0 + 7 * HOUR),
    ]
    script = {
        f"x3@{T0 + 2 * HOUR}": [
            alert(["x1", "x2"], T0 + 2 * HOUR, "critical", campaign="cmp_1"),
            alert(["x3"], T0 + 2 * HOUR, "critical"),
        ],  # an account alert lists no member
        f"x4@{T0 + 7 * HOUR}": [alert(["x1", "x2", "x3", "x4"], T0 + 7 * HOUR, "critical", campaign="cmp_1")],
    }
    campaign = evaluate(traffic, truth, detector=ScriptedDetector(script)).figures["campaigns"]["by_campaign"]["C"]
    # x4 had not shown up 6 h in; x3 had, but no campaign alert listed it until 7 h
    assert campaign["coverage_6h"] == {
        "active": 3,
        "listed": 2,
        "rate": pytest.approx(2 / 3, abs=1e-6),
        "campaign_alerts": 1,
    }
    assert campaign["coverage_final"] == {"active": 4, "listed": 4, "rate": 1.0, "campaign_alerts": 1}


def test_rejected_lines_are_counted_and_not_processed():
    report, detector = scripted_run()
    records = report.figures["records"]
    assert (records["lines"], records["accepted"], records["rejected"]) == (131, 130, 1)
    assert records["rejected_by_reason"] == {"invalid_json": 1}
    assert len(detector.processed) == 130


def test_scores_are_the_highest_account_alert_risk_and_sweep_into_recall_and_fpr():
    report = scripted_run()[0]
    assert report.outcomes["a1"].max_risk == 81.0  # the campaign alert's 85 is not an account score
    assert report.outcomes["a2"].max_risk == 0.0
    assert report.outcomes["e1"].max_risk == 50.0  # info alerts carry a score even if they page nobody
    sweep = report.figures["threshold_sweep"]
    at = sweep["thresholds"].index
    assert sweep["recall"][at(50)] == 0.6 and sweep["recall"][at(81)] == 0.4 and sweep["recall"][at(91)] == 0.0
    assert sweep["false_positive_rate"][at(57)] == 0.25 and sweep["false_positive_rate"][at(58)] == 0.0


def test_write_produces_report_json_and_the_plots(tmp_path):
    report = scripted_run()[0]
    path = report.write(tmp_path / "report")
    assert orjson.loads(path.read_bytes()) == orjson.loads(orjson.dumps(report.figures))
    for name in PLOTS:
        assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_text_shows_each_family_and_the_headline_figures():
    text = scripted_run()[0].text()
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.split()[:1]}
    assert rows["low_and_slow"][1:5] == ["attack", "3", "2", "66.67%"]
    assert rows["ordinary_chat"][1:5] == ["benign", "3", "1", "33.33%"]
    assert "attacker-account recall   60.0% (3 / 5;" in text
    assert "benign false-positive rate 25.00% (1 / 4;" in text
    assert "alerts per campaign       low_and_slow 2; blatant_extractor 1; evasive 0" in text
    assert "2 labeled but absent from the records" in text
    assert "  low_and_slow:           66.7% (2 / 3, 1 alert); 66.7% (2 / 3, 1 alert)" in text


def test_the_real_detector_on_simulated_traffic_end_to_end(tmp_path):
    """records and labels from `detector simulate`, through the files, with the real Detector."""
    scenario = dataclasses.replace(Scenario.demo(seed=7), duration_hours=5.0, scale=0.05)
    records = tmp_path / "records.jsonl.gz"
    with gzip.open(records, "wb") as out:
        for record in generate(scenario):
            out.write(orjson.dumps(record) + b"\n")
        out.write(b'{"event_id": "broken"}\n')
    (tmp_path / "labels.json").write_bytes(orjson.dumps(labels(scenario)))

    report = evaluate_files(str(records), str(tmp_path / "labels.json"), str(tmp_path / "report"))

    figures = report.figures
    assert figures["records"]["rejected_by_reason"] == {"missing_field": 1}
    assert figures["attack"]["by_family"]["blatant_extractor"]["flagged"] == 1
    blatant = next(o for o in report.outcomes.values() if o.family == "blatant_extractor")
    assert blatant.max_risk >= 55.0 and blatant.requests_at_flag <= blatant.requests
    assert figures["alerts"]["events"] >= 1
    assert (tmp_path / "report" / "report.json").exists()

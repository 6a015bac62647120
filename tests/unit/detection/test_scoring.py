"""Account scoring: wording raises confidence but never gates, and a customer with a history is not paged alone."""

from __future__ import annotations

from math import exp

import msgspec
import pytest

from detector.detection.features import activity
from detector.detection.policy import DetectionPolicy
from detector.detection.profile import AccountProfile
from detector.detection.scoring import Population, assess

HOUR, DAY = 3600.0, 86400.0
POLICY = DetectionPolicy()
STARTED = 0.0


def harvester(*, first_seen: float, now: float, per_hour: float, daily_per_hour: float | None = None,
              age_days: float = 1.0, reasoning_share: float = 0.0) -> AccountProfile:  # fmt: skip
    """An account whose openings are nearly all novel questions with long answers, sent round the clock
    by a script at ``per_hour`` over the last hour (and ``daily_per_hour`` over the last day, by default
    the same)."""
    daily = per_hour if daily_per_hour is None else daily_per_hour
    age_hours = (now - first_seen) / HOUR
    return AccountProfile(
        first_seen=first_seen,
        last_seen=now,
        requests=int(daily * age_hours),
        created_at=first_seen - age_days * DAY,
        recent_count=per_hour * activity.RECENT_HOURS * (1.0 - exp(-age_hours / activity.RECENT_HOURS)),
        daily_count=daily * activity.DAILY_HOURS * (1.0 - exp(-age_hours / activity.DAILY_HOURS)),
        active_hours_mask=(1 << 24) - 1,  # round the clock, machine-regular
        mask_hour=int(now // HOUR),
        gaps=200,
        gap_log_var=0.01,
        token_observations=200,
        output_tokens_mean=3000.0,
        output_input_ratio=25.0,
        prompts=200,
        reasoning_share=reasoning_share,
        turn_observations=200,
        first_turn_share=0.9,
        harvest_checked=200,
        harvest_like=170,
    )


def test_the_rates_the_tests_build_on():
    profile = harvester(first_seen=10 * HOUR, now=20 * HOUR, per_hour=400.0, daily_per_hour=100.0)
    assert activity.recent_rate(profile, 20 * HOUR) == pytest.approx(400.0)
    assert activity.daily_rate(profile, 20 * HOUR) == pytest.approx(100.0)


@pytest.mark.parametrize("age_days", [1.0, 400.0])
def test_wording_raises_the_risk_and_its_absence_never_lowers_it(age_days):
    """Asking for finished work in plain words (no step-by-step phrase) pages as surely as asking for steps."""
    now = 20 * HOUR
    plain = harvester(first_seen=10 * HOUR, now=now, per_hour=400.0, age_days=age_days)
    worded = msgspec.structs.replace(plain, reasoning_share=0.9)
    plain_risk = assess(plain, now, POLICY, Population(), STARTED).risk
    worded_risk = assess(worded, now, POLICY, Population(), STARTED).risk
    assert plain_risk >= POLICY.warning_risk
    assert worded_risk >= plain_risk


def test_tactics_that_zero_a_supporting_indicator_do_not_lower_the_risk():
    """Reworded prompts (no template), breadth (no single task kind) and cover chat (few single turns)
    each set an indicator to nothing; the harvest itself, long answers to novel openings, still pages."""
    now = 20 * HOUR
    plain = harvester(first_seen=10 * HOUR, now=now, per_hour=400.0)
    templated = msgspec.structs.replace(plain, novel_fill_share=0.9, template_reuse_share=0.9)
    covered = msgspec.structs.replace(plain, first_turn_share=0.5)  # cover chats of four turns
    risks = [assess(profile, now, POLICY, Population(), STARTED).risk for profile in (plain, templated, covered)]
    assert risks[0] >= POLICY.warning_risk
    assert risks[1] >= risks[0]
    assert risks[2] >= POLICY.warning_risk


def test_a_product_watched_since_the_detector_began_is_not_paged_alone_at_its_usual_volume():
    """An old account busy from the detector's first hour at a steady 180 requests an hour (above the
    blatant rate, as an API product at its peak) has a history: it is held under warning."""
    now = 13 * HOUR
    product = harvester(first_seen=STARTED + 0.1 * HOUR, now=now, per_hour=180.0, age_days=140.0)
    assessment = assess(product, now, POLICY, Population(), STARTED)
    assert assessment.risk < POLICY.warning_risk
    unaged = msgspec.structs.replace(product, created_at=product.first_seen - 1 * DAY)
    assert assess(unaged, now, POLICY, Population(), STARTED).risk >= POLICY.warning_risk  # the history held it


def test_a_dormant_account_woken_into_volume_is_scored_as_any_other():
    """The same old account first seen ten hours after the detector began, going straight to volume."""
    now = 20 * HOUR
    woken = harvester(first_seen=STARTED + 10 * HOUR, now=now, per_hour=180.0, age_days=400.0)
    assert assess(woken, now, POLICY, Population(), STARTED).risk >= POLICY.warning_risk


def test_a_customer_with_a_history_pages_alone_at_a_blatant_jump_over_its_own_rate():
    now = 30 * HOUR
    steady = harvester(first_seen=STARTED, now=now, per_hour=40.0, age_days=400.0)
    jumped = harvester(first_seen=STARTED, now=now, per_hour=400.0, daily_per_hour=60.0, age_days=400.0)
    slow_jump = harvester(first_seen=STARTED, now=now, per_hour=100.0, daily_per_hour=20.0, age_days=400.0)
    assert assess(steady, now, POLICY, Population(), STARTED).risk < POLICY.warning_risk
    assert assess(jumped, now, POLICY, Population(), STARTED).risk >= POLICY.warning_risk
    assert assess(slow_jump, now, POLICY, Population(), STARTED).risk < POLICY.warning_risk  # under the blatant rate


@pytest.mark.parametrize("offset", [step / 200 for step in range(-20, 21)])
def test_the_risk_reported_is_the_risk_judged(offset):
    """Downstream, an account whose reported risk reaches warning is alarming (the campaign stages take
    it in, or found a campaign with it). So the severity and the established-customer cap are decided
    on the risk as reported, rounded: an API product at 54.95 was once reported at 55.0 with severity
    info, and joined an operator's campaign through its wrapper template. Thresholds on a 0.005 grid
    around each account's risk reach its rounding in both directions."""
    now = 13 * HOUR
    product = harvester(first_seen=STARTED + 0.1 * HOUR, now=now, per_hour=180.0, age_days=140.0)
    operator = msgspec.structs.replace(product, created_at=product.first_seen - 1 * DAY)
    uncapped = DetectionPolicy.with_overrides({"warning_risk": 99.0, "critical_risk": 100.0})
    for profile, established in ((product, True), (operator, False)):
        warning = assess(profile, now, uncapped, Population(), STARTED).risk + offset
        policy = DetectionPolicy.with_overrides({"warning_risk": warning, "critical_risk": 100.0})
        assessment = assess(profile, now, policy, Population(), STARTED)
        assert (assessment.risk >= warning) == (assessment.severity == "warning")
        if established:
            assert assessment.risk < warning

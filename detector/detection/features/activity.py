"""Volume, rhythm and regularity of an account's requests, in event time.

Extraction scripts run at a volume the account never had before, around the clock, at
machine-regular intervals; people work in bursts, sleep, and pause irregularly.
"""

from __future__ import annotations

from math import exp, log, sqrt

from detector.detection.profile import AccountProfile

RECENT_HOURS = 1.0
DAILY_HOURS = 24.0
_HOUR_MASK = (1 << 24) - 1
_MIN_GAP_SECONDS = 0.01


def observe_activity(profile: AccountProfile, timestamp: float) -> None:
    """Fold one request at ``timestamp`` (epoch seconds) into the activity statistics.

    Runs on every record, so fields are read into locals once and ``max`` is spelled out.
    """
    last_seen = profile.last_seen
    elapsed = timestamp - last_seen
    requests = profile.requests
    if requests and elapsed < 0:  # late record: counted, but time does not run back
        elapsed = 0.0
    hours = elapsed / 3600.0
    profile.recent_count = profile.recent_count * exp(-hours / RECENT_HOURS) + 1.0
    profile.daily_count = profile.daily_count * exp(-hours / DAILY_HOURS) + 1.0
    if requests:
        log_gap = log(elapsed if elapsed >= _MIN_GAP_SECONDS else _MIN_GAP_SECONDS)
        gaps = profile.gaps = profile.gaps + 1
        rate = 1.0 / (gaps + 1)
        if rate < 0.05:
            rate = 0.05
        delta = log_gap - profile.gap_log_mean
        profile.gap_log_mean += rate * delta
        profile.gap_log_var = (1.0 - rate) * (profile.gap_log_var + rate * delta * delta)
    if timestamp > last_seen:
        profile.last_seen = last_seen = timestamp
    hour = int(last_seen // 3600)
    shift = hour - profile.mask_hour
    if shift > 0:
        profile.active_hours_mask = (profile.active_hours_mask << shift) & _HOUR_MASK | 1 if shift < 24 else 1
        profile.mask_hour = hour
    else:
        profile.active_hours_mask |= 1


def _decayed_rate(count: float, horizon_hours: float, profile: AccountProfile, now: float) -> float:
    """Requests per hour from a decayed count, corrected for accounts younger than the horizon."""
    silent_hours = max(now - profile.last_seen, 0.0) / 3600.0
    count *= exp(-silent_hours / horizon_hours)
    age_hours = max((now - profile.first_seen) / 3600.0, 0.25)
    return count / (horizon_hours * (1.0 - exp(-age_hours / horizon_hours)))


def recent_rate(profile: AccountProfile, now: float) -> float:
    """Requests per hour over roughly the last hour."""
    return _decayed_rate(profile.recent_count, RECENT_HOURS, profile, now)


def daily_rate(profile: AccountProfile, now: float) -> float:
    """Requests per hour over roughly the last day: the account's own baseline."""
    return _decayed_rate(profile.daily_count, DAILY_HOURS, profile, now)


def active_hours(profile: AccountProfile, now: float) -> int:
    """Distinct clock hours with at least one request among the last 24."""
    shift = int(now // 3600) - profile.mask_hour
    if shift >= 24:
        return 0
    mask = (profile.active_hours_mask << max(shift, 0)) & _HOUR_MASK
    return mask.bit_count()


def timing_spread(profile: AccountProfile) -> float:
    """Standard deviation of log inter-arrival gaps: ~0.3 for a jittered script, >1.5 for people."""
    return sqrt(profile.gap_log_var)

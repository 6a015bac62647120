"""Per-account state: a few dozen numbers, small enough to keep for millions of accounts.

A ``msgspec.Struct`` with ``array_like`` encoding: attribute access as fast as ``__slots__``,
and it encodes to compact MessagePack (field values only) for changelogs and snapshots.
No prompt text, IP or other raw attribute is kept here.
"""

from __future__ import annotations

import msgspec

from detector.detection.features.prompts import TASK_KINDS

TEMPLATE_SLOTS = 4


_UNIFORM_TASK_SHARES = (1.0 / len(TASK_KINDS),) * len(TASK_KINDS)
_NO_TEMPLATES = (0,) * TEMPLATE_SLOTS


class AccountProfile(msgspec.Struct, array_like=True, gc=False):
    """What the detector remembers about one account, all in event time."""

    first_seen: float
    last_seen: float
    requests: int = 0
    created_at: float | None = None
    # activity: decayed request counts, inter-arrival gaps, active hours
    recent_count: float = 0.0
    daily_count: float = 0.0
    gap_log_mean: float = 0.0
    gap_log_var: float = 0.0
    gaps: int = 0
    active_hours_mask: int = 0
    mask_hour: int = 0
    # tokens
    token_observations: int = 0
    output_tokens_mean: float = 300.0
    output_input_ratio: float = 1.0
    max_token_observations: int = 0
    at_max_tokens_share: float = 0.0
    # prompts
    prompts: int = 0
    reasoning_share: float = 0.05
    template_reuse_share: float = 0.1
    novel_fill_share: float = 0.1
    repeat_share: float = 0.0
    # tuples, replaced on update: a tuple of numbers leaves the garbage collector's lists at its
    # first pass, a list never does (a full pass over 1M accounts' lists stalled the loop 0.47 s)
    task_shares: tuple[float, ...] = _UNIFORM_TASK_SHARES
    template_fingerprints: tuple[int, ...] = _NO_TEMPLATES
    template_counts: tuple[int, ...] = _NO_TEMPLATES
    # conversations
    turn_observations: int = 0
    first_turn_share: float = 0.5
    # models and responses
    new_model_share: float = 0.0
    rate_limited_share: float = 0.0
    # harvest signature of single requests, for campaign linking
    harvest_checked: int = 0
    harvest_like: int = 0
    # scoring bookkeeping
    population_outlier: float = 0.0
    last_population_update: float = 0.0
    risk: float = 0.0
    position: int = -1
    """Where the account's latest record sat in its input partition (the worker's), -1 elsewhere."""

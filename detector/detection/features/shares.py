"""The one online estimator every per-account share and mean uses.

A share starts at a population prior and moves towards what the account does: a running mean
with ``prior_weight`` pseudo-observations while evidence is scarce, then an exponentially
weighted mean (``floor`` is its fading rate) so that a change in behaviour shows within tens of
requests. The prior keeps three requests from looking like certainty.

River's ``stats.EWMean`` fades at a fixed rate from the first value and costs ~300 B and a
method call per instance; per-account state holds a dozen such shares, so they are plain
floats in the account's struct, moved at the rate this module gives.
"""

from __future__ import annotations

PRIOR_WEIGHT = 4.0
FADING_FLOOR = 0.02
"""Effective memory of ~50 observations once warmed up."""


def fading_rate(observations: int) -> float:
    """How far a share moves towards a new observation, given ``observations`` already folded in.

    Updating is ``share += rate * (observed - share)``. Shares that count the same observations
    (all of an account's prompts, say) move at one rate, so a request costs one call here, not
    one per share: at ~10 shares per request the calls cost more than the arithmetic.

    >>> share = 0.1
    >>> for n in range(5):
    ...     share += fading_rate(n) * (1.0 - share)
    >>> round(share, 2)
    0.6
    """
    rate = 1.0 / (observations + 1 + PRIOR_WEIGHT)
    return FADING_FLOOR if rate < FADING_FLOOR else rate


def ramp(value: float, low: float, high: float) -> float:
    """0 at or below ``low``, 1 at or above ``high``, linear between: how alarming a reading is.

    >>> ramp(0.5, 0.0, 1.0), ramp(0.1, 0.2, 0.8), ramp(2.0, 0.2, 0.8)
    (0.5, 0.0, 1.0)
    """
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    return (value - low) / (high - low)

"""Output length, output/input token ratio, and how often outputs run into ``max_tokens``.

Distillers want the longest, most complete answers to short questions and raise ``max_tokens``
until outputs are cut off; chat, coding agents (long contexts, short answers) and batch jobs
mostly end well before the limit.
"""

from __future__ import annotations

from detector.detection.features.shares import fading_rate
from detector.detection.profile import AccountProfile

_AT_LIMIT = 0.95
_RATIO_CAP = 50.0
"""One 3-token prompt with a 4,000-token answer must not dominate the mean."""


def observe_tokens(
    profile: AccountProfile, input_tokens: int, output_tokens: int, max_tokens: int | None, finish_reason: str | None
) -> bool | None:
    """Fold one successful response's token counts in; whether it ran into the limit (None: unknown)."""
    rate = fading_rate(profile.token_observations)
    profile.output_tokens_mean += rate * (output_tokens - profile.output_tokens_mean)
    ratio = output_tokens / (input_tokens + 1)
    profile.output_input_ratio += rate * ((ratio if ratio <= _RATIO_CAP else _RATIO_CAP) - profile.output_input_ratio)
    profile.token_observations += 1
    if finish_reason is not None or max_tokens:
        at_limit = finish_reason == "length" or (max_tokens is not None and output_tokens >= _AT_LIMIT * max_tokens)
        observations = profile.max_token_observations
        profile.at_max_tokens_share += fading_rate(observations) * (at_limit - profile.at_max_tokens_share)
        profile.max_token_observations = observations + 1
        return at_limit
    return None

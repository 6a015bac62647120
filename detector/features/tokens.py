"""Output length, output/input token ratio, and how often outputs run into ``max_tokens``.

Distillers want the longest, most complete answers to short questions and raise ``max_tokens``
until outputs are cut off; chat, coding agents (long contexts, short answers) and batch jobs
mostly end well before the limit.
"""

from __future__ import annotations

from detector.features.shares import blend
from detector.profile import AccountProfile

_AT_LIMIT = 0.95
_RATIO_CAP = 50.0
"""One 3-token prompt with a 4,000-token answer must not dominate the mean."""


def observe_tokens(profile: AccountProfile, input_tokens: int, output_tokens: int, max_tokens: int | None,
                   finish_reason: str | None) -> bool | None:
    """Fold one successful response's token counts in; whether it ran into the limit (None: unknown)."""
    n = profile.token_observations
    profile.output_tokens_mean = blend(profile.output_tokens_mean, output_tokens, n)
    profile.output_input_ratio = blend(profile.output_input_ratio, min(output_tokens / (input_tokens + 1), _RATIO_CAP), n)
    profile.token_observations += 1
    if finish_reason is not None or max_tokens:
        at_limit = finish_reason == "length" or (max_tokens is not None and output_tokens >= _AT_LIMIT * max_tokens)
        profile.at_max_tokens_share = blend(profile.at_max_tokens_share, at_limit, profile.max_token_observations)
        profile.max_token_observations += 1
        return at_limit
    return None

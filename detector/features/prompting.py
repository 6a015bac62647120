"""Per-account prompt habits: reasoning elicitation, template reuse with new fillings, focus.

Distillation datasets need many *different* examples of the *same* kind of task, each with the
reasoning spelled out: one template, ever-new fillings, one capability, "explain step by step".
People vary their wording and topics; evaluation suites repeat the same prompts verbatim.
"""

from __future__ import annotations

from detector.features.prompts import PromptTraits
from detector.features.shares import blend
from detector.profile import AccountProfile


def _remember_template(profile: AccountProfile, fingerprint: int) -> bool:
    """Space-saving count of the account's most used template ends; True if already among them."""
    fingerprints, counts = profile.template_fingerprints, profile.template_counts
    for slot, known in enumerate(fingerprints):
        if known == fingerprint:
            counts[slot] += 1
            return counts[slot] > 1
    weakest = min(range(len(counts)), key=counts.__getitem__)
    fingerprints[weakest] = fingerprint
    counts[weakest] = counts[weakest] // 2 + 1
    return False


def observe_prompt(profile: AccountProfile, traits: PromptTraits, repeated: bool) -> None:
    """Fold one prompt's traits into the account's shares; ``repeated``: seen verbatim before."""
    n = profile.prompts
    reused = False
    if traits.opening_fingerprint:
        reused = _remember_template(profile, traits.opening_fingerprint)
    if traits.closing_fingerprint and traits.closing_fingerprint != traits.opening_fingerprint:
        reused = _remember_template(profile, traits.closing_fingerprint) or reused
    profile.reasoning_share = blend(profile.reasoning_share, traits.elicits_reasoning, n)
    profile.template_reuse_share = blend(profile.template_reuse_share, reused, n)
    profile.novel_fill_share = blend(profile.novel_fill_share, reused and not repeated, n)
    profile.repeat_share = blend(profile.repeat_share, repeated, n)
    shares = profile.task_shares
    rate = max(1.0 / (n + 5.0), 0.02)
    for kind in range(len(shares)):
        shares[kind] += rate * ((kind == traits.task_kind) - shares[kind])
    profile.prompts = n + 1


def capability_focus(profile: AccountProfile) -> tuple[int, float]:
    """The account's dominant task kind and the share of its prompts on it."""
    shares = profile.task_shares
    kind = max(range(len(shares)), key=shares.__getitem__)
    return kind, shares[kind]

"""Per-account prompt habits: reasoning elicitation, template reuse with new fillings, focus.

Distillation datasets need many *different* examples of the *same* kind of task, each with the
reasoning spelled out: one template, ever-new fillings, one capability, "explain step by step".
People vary their wording and topics; evaluation suites repeat the same prompts verbatim.
"""

from __future__ import annotations

from detector.detection.features.prompts import PromptTraits
from detector.detection.features.shares import fading_rate
from detector.detection.profile import AccountProfile


def _remember_template(profile: AccountProfile, fingerprint: int) -> bool:
    """Space-saving count of the account's most used template ends; True if already among them."""
    fingerprints, counts = profile.template_fingerprints, list(profile.template_counts)
    if fingerprint in fingerprints:
        slot = fingerprints.index(fingerprint)
        counts[slot] += 1
        profile.template_counts = tuple(counts)
        return counts[slot] > 1
    weakest = counts.index(min(counts))
    replaced = list(fingerprints)
    replaced[weakest] = fingerprint
    counts[weakest] = counts[weakest] // 2 + 1
    profile.template_fingerprints, profile.template_counts = tuple(replaced), tuple(counts)
    return False


def observe_prompt(profile: AccountProfile, traits: PromptTraits, repeated: bool) -> None:
    """Fold one prompt's traits into the account's shares; ``repeated``: seen verbatim before."""
    elicits_reasoning, _, task_kind, opening, closing, _ = traits
    reused = False
    if opening:
        reused = _remember_template(profile, opening)
    if closing and closing != opening:
        reused = _remember_template(profile, closing) or reused
    rate = fading_rate(profile.prompts)
    profile.reasoning_share += rate * (elicits_reasoning - profile.reasoning_share)
    profile.template_reuse_share += rate * (reused - profile.template_reuse_share)
    profile.novel_fill_share += rate * ((reused and not repeated) - profile.novel_fill_share)
    profile.repeat_share += rate * (repeated - profile.repeat_share)
    share = profile.task_shares[task_kind]
    shares = [other - rate * other for other in profile.task_shares]
    shares[task_kind] = share + rate * (1.0 - share)
    profile.task_shares = tuple(shares)
    profile.prompts += 1


def prompt_form(traits: PromptTraits) -> int:
    """Both template ends of one prompt in one fingerprint. The accounts of a trickle campaign may send
    one request or two each in a day, so none reuses its template; they share its form, which a
    person's question seldom matches at both ends (one end alike is common: "Explain ...").

    >>> from detector.detection.features.prompts import analyse_prompt
    >>> one = analyse_prompt("Write the complete solution to this task: sort 41 numbers. Include tests.")
    >>> two = analyse_prompt("Write the complete solution to this task: parse 7 dates. Include tests.")
    >>> other = analyse_prompt("Write the complete solution to this task: x. Thanks.")
    >>> prompt_form(one) == prompt_form(two) != prompt_form(other)
    True
    """
    return (traits.opening_fingerprint * 0x9E3779B1 ^ traits.closing_fingerprint) & 0xFFFFFFFF


def capability_focus(profile: AccountProfile) -> tuple[int, float]:
    """The account's dominant task kind and the share of its prompts on it."""
    shares = profile.task_shares
    focus = max(shares)
    return shares.index(focus), focus

"""Conversation shape: harvesting sends one question per conversation and never follows up."""

from __future__ import annotations

from detector.features.shares import blend
from detector.profile import AccountProfile


def observe_turn(profile: AccountProfile, turn_index: int) -> None:
    """Fold one request's position in its conversation (0 = first turn) into the first-turn share."""
    profile.first_turn_share = blend(profile.first_turn_share, turn_index == 0, profile.turn_observations)
    profile.turn_observations += 1

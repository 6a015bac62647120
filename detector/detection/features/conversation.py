"""Conversation shape: harvesting sends one question per conversation and never follows up."""

from __future__ import annotations

from detector.detection.features.shares import fading_rate
from detector.detection.profile import AccountProfile


def observe_turn(profile: AccountProfile, turn_index: int) -> None:
    """Fold one request's position in its conversation (0 = first turn) into the first-turn share."""
    observations = profile.turn_observations
    profile.first_turn_share += fading_rate(observations) * ((turn_index == 0) - profile.first_turn_share)
    profile.turn_observations = observations + 1

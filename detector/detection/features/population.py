"""What the whole population of accounts shows: when each model appeared, which prompts repeat.

One instance per detector (per worker), never per account.
"""

from __future__ import annotations

import zlib


class ModelCatalog:
    """When each model was first used by anyone, to tell a new release from an old model.

    Models seen during the detector's own first ``startup_hours`` are treated as old: the
    detector cannot tell a release from its own start-up. That guard is shorter than the window
    a release stays new: an operator pivots within a day of a release, and a detector started
    two days before it must still see the release as one.

    >>> catalog = ModelCatalog(window_hours=72.0, startup_hours=6.0)
    >>> catalog.is_new("helix-3", 0.0), catalog.is_new("helix-4", 24 * 3600.0)
    (False, True)
    >>> catalog.is_new("helix-4", 100 * 3600.0), catalog.is_new("helix-3", 24 * 3600.0)
    (False, False)
    """

    def __init__(self, window_hours: float, startup_hours: float):
        self.window_hours = window_hours
        self.startup_hours = startup_hours
        self._window_seconds = window_hours * 3600.0
        self._startup_seconds = startup_hours * 3600.0
        self._first_used: dict[str, float] = {}
        self._started: float | None = None

    def snapshot(self) -> dict:
        """When each model was first used, and when this catalog started."""
        return {"first_used": dict(self._first_used), "started": self._started}

    def restore(self, state: dict) -> None:
        self._first_used = dict(state["first_used"])
        self._started = state["started"]

    def is_new(self, model: str, timestamp: float) -> bool:
        """Whether ``model`` was released (first used) within the window before ``timestamp``."""
        if self._started is None:
            self._started = timestamp
        first_used = self._first_used.get(model)
        if first_used is None:
            if len(self._first_used) < 10_000:  # model names come from clients: bound them
                self._first_used[model] = timestamp
            first_used = timestamp
        return first_used - self._started > self._startup_seconds and timestamp - first_used < self._window_seconds


class SeenPrompts:
    """Approximate set of (account, prompt) pairs seen: a two-generation Bloom filter.

    Tells a verbatim repeat (evaluation suites re-run the same prompts) from a new filling.
    Memory is fixed (``2 × bits / 8`` bytes) and old pairs age out when a generation fills.
    River's ``sketch.Set`` measured ~59 µs per insert here; this costs ~1 µs.
    """

    def __init__(self, bits: int = 1 << 26, capacity: int = 4_000_000):
        self.bits = bits
        self.capacity = capacity
        self._current = bytearray(bits // 8)
        self._previous = bytearray(bits // 8)
        self._inserted = 0

    def snapshot(self) -> dict:
        """Both generations of the filter (``2 × bits / 8`` bytes: the worker's snapshot leaves them out)."""
        return {
            "current": bytes(self._current),
            "previous": bytes(self._previous),
            "inserted": self._inserted,
        }

    def restore(self, state: dict) -> None:
        if len(state["current"]) != self.bits // 8:
            raise ValueError(
                f"SeenPrompts.restore: expected {self.bits // 8} bytes a generation; got {len(state['current'])}"
            )
        self._current = bytearray(state["current"])
        self._previous = bytearray(state["previous"])
        self._inserted = state["inserted"]

    def seen_before(self, account_id: str, content_fingerprint: int) -> bool:
        """Record the pair and say whether it (probably) had been recorded before."""
        first = zlib.crc32(account_id.encode(), content_fingerprint)
        bits = self.bits
        a, b = first % bits, (first + (zlib.crc32(b"#", first) | 1)) % bits
        current, previous = self._current, self._previous
        ma, mb = 1 << (a & 7), 1 << (b & 7)
        a, b = a >> 3, b >> 3
        if current[a] & ma and current[b] & mb:
            return True
        seen = bool(previous[a] & ma and previous[b] & mb)
        current[a] |= ma
        current[b] |= mb
        self._inserted += 1
        if self._inserted >= self.capacity:
            self._previous, self._current = self._current, bytearray(self.bits // 8)
            self._inserted = 0
        return seen

"""Event-time hygiene: which records may move the detector's clock, and in what order they reach it.

The detector's clock is the newest record timestamp it has seen, so one record stamped in 2099 by a
misconfigured gateway would move it 73 years ahead: every idle account evicted, every open alert
resolved, nothing able to resolve again. :class:`EventTimeGuard` stands before the detector and sets
aside, each with a machine-readable reason (``schemas/README.md``, dead-letter reasons):

* ``future_timestamp``: in the worker, stamped more than ``max_ahead_seconds`` ahead of its wall
  clock. Replay has no meaningful wall clock: there, a record stamped more than ``max_jump_seconds``
  ahead of the newest one admitted is held as a *candidate*. A stream that resumes after a silence
  is all ahead, so once consecutive candidates (each within ``max_jump_seconds`` of the one before)
  come from ``jump_quorum_accounts`` distinct accounts, the clock jumps and all of them are
  admitted, in order. A record in time in between ends the run: the candidates were a minority
  among in-time records (a broken gateway beside healthy ones) and are set aside; so is a run that
  the input ends before it is corroborated. The limit: a run of ``jump_quorum_accounts`` accounts
  all stamped alike by one broken gateway, with no in-time record among them, moves replay's clock.
* ``late_timestamp``: stamped more than ``max_late_seconds`` before the newest admitted timestamp,
  older than any campaign stays open without activity.
* ``duplicate_event``: an ``(account_id, event_id)`` admitted among the last
  ``duplicate_window_records`` to ``2 × duplicate_window_records`` records (a producer's retry).

Admitted records reach the detector in timestamp order when they are at most ``reorder_seconds``
out of order: each waits until a record that much newer arrived (or, in the worker, that long on
the wall clock), then all waiting records go in timestamp order, ties in arrival order.

>>> from types import SimpleNamespace as Record
>>> guard = EventTimeGuard(DetectionPolicy())
>>> admitted, ready, set_aside = guard.offer(Record(event_id="e1", account_id="a", timestamp=1_000_000.0))
>>> [r.event_id for r in ready], set_aside
(['e1'], [])
>>> guard.offer(Record(event_id="e2", account_id="b", timestamp=4_102_358_400.0))  # 2099: held, alone
([], [], [])
>>> admitted, ready, set_aside = guard.offer(Record(event_id="e3", account_id="a", timestamp=1_000_010.0))
>>> [r.event_id for r in ready], [(s.reason, s.record.event_id) for s in set_aside]
(['e3'], [('future_timestamp', 'e2')])
>>> guard.offer(Record(event_id="e3", account_id="a", timestamp=1_000_010.0))[2][0].reason
'duplicate_event'
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, NamedTuple

from detector.detection.alerting import rfc3339
from detector.detection.policy import DetectionPolicy

HYGIENE_REASONS = ("future_timestamp", "late_timestamp", "duplicate_event")
"""Dead-letter reasons of records set aside by :class:`EventTimeGuard` (they decoded fine)."""


class SetAside(NamedTuple):
    """A valid record the detector will not see, why, and where it was read (``source``, opaque here)."""

    reason: str
    field: str
    detail: str
    record: Any
    source: Any


class EventTimeGuard:
    """Admits records to the detector's clock: no far-future or far-late stamp, no duplicate, in order.

    ``wall_clock``: a function returning epoch seconds (the worker passes ``time.time``); without one
    (replay, evaluation) "ahead" is measured against the stream itself (see the module docstring).
    ``newest``: the clock to start from (a restarted worker's restored watermark).
    """

    def __init__(
        self,
        policy: DetectionPolicy,
        wall_clock: Callable[[], float] | None = None,
        newest: float = float("-inf"),
    ):
        self.policy = policy
        self.wall_clock = wall_clock
        self.newest = newest
        """The newest timestamp admitted (the detector's clock once the waiting records are in)."""
        self._max_ahead = policy.max_ahead_seconds
        self._max_jump = policy.max_jump_seconds
        self._max_late = policy.max_late_seconds
        self._reorder = policy.reorder_seconds
        self._recent: set[int] = set()
        self._older: set[int] = set()
        self._candidates: list[tuple[Any, Any, int]] = []
        """Records ahead of the stream (no wall clock), with their source and key, in arrival order."""
        self._waiting: list[tuple[float, int, Any]] = []
        """Heap of (timestamp, arrival number, record) waiting for ``reorder_seconds``."""
        self._arrivals = 0
        self._held_since: dict[int, float] = {}
        """Arrival number → wall time it began waiting (worker only: :meth:`release_due`)."""

    def offer(self, record, source=None) -> tuple[list, list, list[SetAside]]:
        """One decoded record in; the records admitted (this one, or a run of candidates it
        corroborated), those now ready for the detector in order, and those set aside."""
        timestamp = record.timestamp
        key = hash((record.account_id, record.event_id))
        candidates = self._candidates
        if key in self._recent or key in self._older or (candidates and any(key == c[2] for c in candidates)):
            return [], [], [SetAside("duplicate_event", "event_id", _duplicate_detail(record), record, source)]
        wall_clock = self.wall_clock
        if wall_clock is not None:
            now = wall_clock()
            if timestamp > now + self._max_ahead:
                detail = _ahead_detail(record, now, "the wall clock", self._max_ahead)
                return [], [], [SetAside("future_timestamp", "timestamp", detail, record, source)]
        elif timestamp > self.newest + self._max_jump and self.newest > float("-inf"):
            return self._candidate(record, source, key)
        if timestamp < self.newest - self._max_late:
            return [], [], [SetAside("late_timestamp", "timestamp", self._late_detail(record), record, source)]
        set_aside = self._reject_candidates() if self._candidates else []
        return [record], self._admit(record, key), set_aside

    def drain(self) -> tuple[list, list[SetAside]]:
        """End of the input: every waiting record, in order; candidates never corroborated are set aside."""
        set_aside = self._reject_candidates() if self._candidates else []
        ready = [heapq.heappop(self._waiting)[2] for _ in range(len(self._waiting))]
        self._held_since.clear()
        return ready, set_aside

    def release_due(self) -> list:
        """The worker's idle timer: records that waited ``reorder_seconds`` on the wall clock go in
        (with every older one), though no newer record came to release them."""
        if not self._waiting or self.wall_clock is None:
            return []
        cutoff = self.wall_clock() - self._reorder
        due = max((arrival for arrival, since in self._held_since.items() if since <= cutoff), default=None)
        if due is None:
            return []
        due_time = next(timestamp for timestamp, arrival, _ in self._waiting if arrival == due)
        return self._release(due_time)

    def _admit(self, record, key: int) -> list:
        recent = self._recent
        recent.add(key)
        if len(recent) >= self.policy.duplicate_window_records:
            self._older, self._recent = recent, set()
        timestamp = record.timestamp
        if timestamp > self.newest:
            self.newest = timestamp
        if not self._reorder:
            return [record]
        self._arrivals += 1
        heapq.heappush(self._waiting, (timestamp, self._arrivals, record))
        if self.wall_clock is not None:
            self._held_since[self._arrivals] = self.wall_clock()
        return self._release(self.newest - self._reorder)

    def _release(self, until: float) -> list:
        waiting = self._waiting
        ready = []
        while waiting and waiting[0][0] <= until:
            _, arrival, record = heapq.heappop(waiting)
            self._held_since.pop(arrival, None)
            ready.append(record)
        return ready

    def _candidate(self, record, source, key: int) -> tuple[list, list, list[SetAside]]:
        """A record ahead of the stream: held until enough accounts agree that time moved on."""
        candidates = self._candidates
        set_aside: list[SetAside] = []
        if candidates:
            if abs(record.timestamp - candidates[-1][0].timestamp) > self._max_jump:
                set_aside = self._reject_candidates()  # another time than the run so far: it does not agree
            elif len(candidates) >= 8 * self.policy.jump_quorum_accounts:  # one account's flood: bounded
                set_aside = self._reject_candidates(1)
        candidates.append((record, source, key))
        if len({candidate[0].account_id for candidate in candidates}) < self.policy.jump_quorum_accounts:
            return [], [], set_aside
        self._candidates = []
        ready = []
        for candidate, _, candidate_key in candidates:
            ready.extend(self._admit(candidate, candidate_key))
        return [candidate[0] for candidate in candidates], ready, set_aside

    def _reject_candidates(self, count: int | None = None) -> list[SetAside]:
        count = len(self._candidates) if count is None else count
        rejected = self._candidates[:count]
        del self._candidates[:count]  # in place: `_candidate` appends to the list it holds
        return [
            SetAside(
                "future_timestamp",
                "timestamp",
                _ahead_detail(record, self.newest, "the newest admitted record", self._max_jump)
                + f"; fewer than {self.policy.jump_quorum_accounts} accounts agreed with it",
                record,
                source,
            )
            for record, source, _ in rejected
        ]

    def _late_detail(self, record) -> str:
        behind = self.newest - record.timestamp
        return (
            f"`timestamp` {rfc3339(record.timestamp)} is {behind:,.0f} s behind the newest admitted record"
            f" (limit {self._max_late:g} s); event {record.event_id!r}"
        )


def _ahead_detail(record, reference: float, against: str, limit: float) -> str:
    return (
        f"`timestamp` {rfc3339(record.timestamp)} is {record.timestamp - reference:,.0f} s ahead of {against}"
        f" ({rfc3339(reference)}; limit {limit:g} s); event {record.event_id!r}"
    )


def _duplicate_detail(record) -> str:
    return f"event {record.event_id!r} of this account was already admitted (a producer retry?)"

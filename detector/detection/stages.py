"""The three stages of detection, each written once as a handler that returns all it produces.

* **detect** (:class:`DetectStage`, per account): the bytes of one input message → account alerts,
  dead letters and attribute observations;
* **link** (:class:`LinkStage`, per attribute): observations → links;
* **merge** (:class:`MergeStage`, one partition): links and the event time they reached →
  campaign alerts and membership changes.

The worker runs each as its own Kafka stage (``detector/stream/``); ``detector replay`` and
``detector eval`` chain them in one process (:class:`CampaignStages`), so the two cannot drift apart.
Every stage keeps one event-time sweep clock (:class:`~detector.detection.campaigns.Sweeps`).
The link and merge stages take in a batch, then move their clock to its newest time: the worker
calls them once per message, whose contents thus count as before the sweep it triggers. In one
process the detector moves them to each new event time *before* the record's summaries
(:meth:`Detector.process <detector.detection.core.Detector.process>`), so a sweep falls exactly
between the records it separates; a worker's sweeps fall at most one message later.

Membership changes have one wire form, :func:`encode_membership`
(``schemas/membership.v1.schema.json``), for the membership topic and ``detector replay --members``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

import orjson

from detector.detection.alerting import Alert, rfc3339
from detector.detection.campaigns import (
    SWEEP_SECONDS,
    AttributeIndex,
    AttributeObservation,
    CampaignBook,
    Link,
    Membership,
    Sweeps,
)
from detector.detection.core import Detector
from detector.detection.hygiene import EventTimeGuard, SetAside
from detector.detection.ordering import EventTimeMerger, Progress, SummaryKey, record_position
from detector.detection.policy import CampaignPolicy
from detector.detection.records import (
    Rejection,
    Request,
    decode_envelope,
    redact_prompt_text,
    rejection_to_dlq,
    request_to_json,
)


class DeadLetter(NamedTuple):
    """A rejected record: its reason (for counting) and its dead-letter value (schema dlq.v1)."""

    reason: str
    value: bytes


Decoded = tuple[list[Request], list[Rejection]]
"""A decoded message: its valid records, and its rejected ones."""


class Detected(NamedTuple):
    """What the detect stage made of one input message."""

    requests: list[Request]
    """The records admitted, in order (the worker notes their accounts as changed); the detector may
    see them later (``reorder_seconds``)."""
    alerts: Sequence[Alert]
    dead_letters: Sequence[DeadLetter]
    observations: Sequence[AttributeObservation]
    """Account summaries for the link stage (none when the campaign stages run in this process)."""
    memberships: Sequence[Membership]
    """Membership changes of the campaign stages in this process, in the order they were made."""
    summaries: Sequence[tuple[SummaryKey, list[AttributeObservation]]] = ()
    """The worker's form of ``observations`` (a message read from a partition): each record's
    summaries under the key the campaign stage orders them by."""


class Split(NamedTuple):
    """A message whose records several ``detector replay`` shards detect (an envelope of several
    accounts' records): the part this shard takes."""

    records: bytes
    """Per valid record of the message, in order: 1 if this shard detects it."""
    reports_rejections: bool
    """Whether this shard reports the message's dead letters (one shard does)."""


class DetectStage:
    """Stage 1: decode one message, run its records through the detector, route what comes out.

    Bad input is data: each rejected record becomes a dead letter naming where it was found, and so
    does each valid record that :class:`~detector.detection.hygiene.EventTimeGuard` sets aside (a
    far-future or far-late stamp, a duplicate): the detector's clock moves only on records it admits.
    """

    def __init__(
        self,
        detector: Detector,
        campaigns: CampaignStages | None = None,
        wall_clock: Callable[[], float] | None = None,
    ):
        """``campaigns``: the link and merge stages when they run in this process (see
        :meth:`Detector.process <detector.detection.core.Detector.process>`); ``wall_clock``: epoch
        seconds now, in the worker (records stamped ahead of it are set aside; ``reorder_seconds``
        applies to replay only); replay has none."""
        self.detector = detector
        self.campaigns = campaigns
        policy = detector.policy
        if wall_clock is not None and policy.reorder_seconds:
            # the worker takes its partitions in event-time order itself (InputOrder), and a record
            # held back here would leave its message without the place its summaries are keyed by
            policy = dataclasses.replace(policy, reorder_seconds=0.0)
        self.guard = EventTimeGuard(policy, wall_clock, detector.watermark)
        self._sweep_periods: dict[int, float] = {}
        """input partition → the latest sweep period (of the campaign stages) a record of it fell in."""

    @staticmethod
    def decode(value: bytes) -> Decoded:
        """A message's records and rejections (the worker orders messages by their records' time)."""
        return decode_envelope(value)

    def handle(
        self, value: bytes, *, topic: str, partition: int | None, offset: int, split: Split | None = None
    ) -> Detected:
        """Everything one message produces; ``topic``/``partition``/``offset`` locate it in dead letters.

        ``split``: the message's records are split between shards (a replay shard reading an envelope
        of several accounts): only this shard's part is detected here.
        """
        return self.handle_decoded(decode_envelope(value), topic=topic, partition=partition, offset=offset, split=split)

    def handle_decoded(
        self, decoded: Decoded, *, topic: str, partition: int | None, offset: int, split: Split | None = None
    ) -> Detected:
        """:meth:`handle` for a message already decoded with :meth:`decode`."""
        requests, rejections = decoded
        if split is not None:
            requests = list(itertools.compress(requests, split.records))
            if not split.reports_rejections:
                rejections = []
        source = (topic, partition, offset)
        offer = self.guard.offer
        if len(requests) == 1:  # the common message, and replay's line: no lists to build
            admitted, ready, set_aside = offer(requests[0], source)
        else:
            admitted, ready, set_aside = [], [], []
            for request in requests:
                offered = offer(request, source)
                admitted.extend(offered[0])
                ready.extend(offered[1])
                set_aside.extend(offered[2])
        dead_letters = [
            DeadLetter(rejection.reason, rejection_to_dlq(rejection, topic=topic, partition=partition, offset=offset))
            for rejection in rejections
        ]
        if set_aside:
            dead_letters.extend(_dead_letter(item) for item in set_aside)
        if partition is not None and self.campaigns is None:
            return self._keyed(admitted, ready, dead_letters, requests, partition, offset)
        return self._detect(admitted, ready, dead_letters)

    def drain(self) -> Detected:
        """The end of the input: records still waiting to be put in order, and the verdict on
        records held ahead of the stream (see :meth:`EventTimeGuard.drain`)."""
        ready, set_aside = self.guard.drain()
        return self._detect([], ready, [_dead_letter(item) for item in set_aside])

    def release_due(self) -> Detected:
        """An idle worker's records that waited ``reorder_seconds`` of wall time (see
        :meth:`EventTimeGuard.release_due`)."""
        return self._detect([], self.guard.release_due(), [])

    def _detect(self, admitted: list[Request], ready: list[Request], dead_letters: list[DeadLetter]) -> Detected:
        alerts: Sequence[Alert] = ()
        observations: Sequence[AttributeObservation] = ()
        memberships: Sequence[Membership] = ()
        process, campaigns = self.detector.process, self.campaigns
        if len(ready) == 1:
            alerts, observations, memberships = process(ready[0], campaigns)
        elif ready:
            alerts, observations, memberships = [], [], []
            for request in ready:
                processed = process(request, campaigns)
                alerts.extend(processed.alerts)
                observations.extend(processed.observations)
                memberships.extend(processed.memberships)
        return Detected(admitted, alerts, dead_letters, observations, memberships)

    def _keyed(
        self,
        admitted: list[Request],
        ready: list[Request],
        dead_letters: list[DeadLetter],
        message: list[Request],
        partition: int,
        offset: int,
    ) -> Detected:
        """The worker's message: each record skipped if its profile already holds it, and its
        summaries keyed by its place in time and in the partition. (A record the guard held back for
        ``reorder_seconds`` and released with a later message takes a place after that message's
        records: the worker orders its partitions by event time itself, and leaves reordering off.)"""
        alerts: list[Alert] = []
        summaries: list[tuple[SummaryKey, list[AttributeObservation]]] = []
        process, periods = self.detector.process, self._sweep_periods
        index_of = {id(request): index for index, request in enumerate(message)}
        for extra, request in enumerate(ready):
            position = record_position(offset, index_of.get(id(request), len(message) + extra))
            processed = process(request, None, position)
            if processed.alerts:
                alerts.extend(processed.alerts)
            period = request.timestamp // SWEEP_SECONDS
            if processed.observations or period > periods.get(partition, float("-inf")):
                # a partition's first record of a sweep period goes too, summaries or none: the
                # campaign stage sweeps at the first record past each boundary, as replay does
                periods[partition] = max(period, periods.get(partition, float("-inf")))
                summaries.append((SummaryKey(request.timestamp, partition, position), list(processed.observations)))
        return Detected(admitted, alerts, dead_letters, (), (), summaries)


def _dead_letter(item: SetAside) -> DeadLetter:
    """A valid record the guard set aside, as a dead letter where it was read (prompt text redacted)."""
    topic, partition, offset = item.source
    original = redact_prompt_text(request_to_json(item.record))
    rejection = Rejection(reason=item.reason, field=item.field, detail=item.detail, index=None, original=original)
    return DeadLetter(item.reason, rejection_to_dlq(rejection, topic=topic, partition=partition, offset=offset))


class Linked(NamedTuple):
    """What the link stage made of a batch of observations."""

    links: list[Link]
    watermark: float
    """The event time the stage reached: the merge stage sees no records and sweeps by this clock."""
    swept: bool
    """Whether the clock crossed a sweep boundary: the merge stage must hear of it even without links."""


class LinkStage:
    """Stage 2: the attribute index, keyed by attribute (see :class:`~detector.detection.campaigns.AttributeIndex`)."""

    def __init__(self, policy: CampaignPolicy | None = None):
        self.index = AttributeIndex(policy)
        self.sweeps = Sweeps()

    def handle(self, observations: Iterable[AttributeObservation], now: float) -> Linked:
        """Link the observations, then move the clock to ``now`` (forgetting idle attributes on a sweep)."""
        observe = self.index.observe
        links = [link for observation in observations for link in observe(observation)]
        swept = self.sweeps.due(now)
        if swept:
            self.index.expire(now)
        return Linked(links, now, swept)

    def snapshot(self) -> dict:
        return {"index": self.index.snapshot(), "sweeps": self.sweeps.snapshot()}

    def restore(self, state: dict) -> None:
        self.index.restore(state["index"])
        self.sweeps.restore(state["sweeps"])


class Merged(NamedTuple):
    """What the merge stage made of a batch of links."""

    alerts: list[Alert]
    memberships: list[Membership]
    announced: Sequence[float] = ()
    """When each membership change was made, in event time (filled by :class:`OrderedCampaigns`): a
    change announced after the join it records (a campaign pages after its hold) counts from then."""


class MergeStage:
    """Stage 3: the campaign book, on one partition (see :class:`~detector.detection.campaigns.CampaignBook`)."""

    def __init__(self, policy: CampaignPolicy | None = None):
        self.book = CampaignBook(policy)
        self.sweeps = Sweeps()
        self.watermark = float("-inf")
        """The newest event time the stage was given."""
        self._swept_at = float("-inf")

    def handle(self, links: Iterable[Link], watermark: float) -> Merged:
        """Fold the links in, then move the clock to ``watermark`` (resolving idle campaigns on a sweep)."""
        alerts: list[Alert] = []
        memberships: list[Membership] = []
        observe = self.book.observe
        for link in links:
            new_alerts, new_memberships = observe(link)
            alerts.extend(new_alerts)
            memberships.extend(new_memberships)
        self.watermark = max(self.watermark, watermark)
        if self.sweeps.due(watermark):
            expired_alerts, expired_memberships = self.book.expire_idle(watermark)
            alerts.extend(expired_alerts)
            memberships.extend(expired_memberships)
        return Merged(alerts, memberships)

    def sweep(self) -> Merged:
        """Sweep at the newest event time seen, off the clock's boundaries: when no link comes for a
        while (a backfill or a feed that stops), the update of a campaign that grew in the last burst
        of links would otherwise wait for an event time that may never come. Sweeping twice at one
        time changes nothing: only growth since the last alert is sent, at the event-time pace."""
        if self.watermark == self._swept_at:
            return Merged([], [])
        self._swept_at = self.watermark
        return Merged(*self.book.resend_grown(self.watermark))

    def snapshot(self) -> dict:
        """The campaign book, its open campaign alerts included, and the clock: plain data."""
        return {"book": self.book.snapshot(), "sweeps": self.sweeps.snapshot(), "watermark": self.watermark}

    def restore(self, state: dict) -> None:
        self.book.restore(state["book"])
        self.sweeps.restore(state["sweeps"])
        self.watermark = state["watermark"]


_NOTHING = Merged([], [])


class CampaignStages:
    """The link and merge stages chained in one process: replay and eval call them record by record,
    the worker's campaign step through :class:`OrderedCampaigns`."""

    def __init__(self, policy: CampaignPolicy | None = None):
        self.link = LinkStage(policy)
        self.merge = MergeStage(policy)
        self.next_sweep = float("-inf")
        """The earliest event time at which either stage sweeps: the detector calls :meth:`handle`
        with no observations only from then on, not on every record."""

    def handle(self, observations: Iterable[AttributeObservation], now: float) -> Merged:
        """Observations through both stages; what the merge stage produced."""
        linked = self.link.handle(observations, now)
        if not linked.links and not linked.swept:
            merged = _NOTHING
        else:
            merged = self.merge.handle(linked.links, linked.watermark)
        self.next_sweep = min(self.link.sweeps.next_boundary, self.merge.sweeps.next_boundary)
        return merged

    def snapshot(self) -> dict:
        return {"link": self.link.snapshot(), "merge": self.merge.snapshot(), "next_sweep": self.next_sweep}

    def restore(self, state: dict) -> None:
        self.link.restore(state["link"])
        self.merge.restore(state["merge"])
        self.next_sweep = state["next_sweep"]


class OrderedCampaigns:
    """The worker's campaign stage: summaries from every input partition, taken in event-time order
    (:class:`~detector.detection.ordering.EventTimeMerger`) through the same :class:`CampaignStages` as
    replay's, the clock moved as replay's detector moves it: to a record's time before its summaries."""

    def __init__(self, partitions: int, policy: CampaignPolicy | None = None):
        self.stages = CampaignStages(policy)
        self.merger = EventTimeMerger(partitions)

    @property
    def clock(self) -> float:
        """Event time up to which all summaries were taken: account alerts wait for it (see
        :meth:`Detector.decide <detector.detection.core.Detector.decide>`)."""
        return self.merger.clock

    def handle(
        self, summaries: Iterable[tuple[SummaryKey, list[AttributeObservation]]], progress: Iterable[Progress]
    ) -> Merged:
        """Take one detect step's message; what the summaries whose time came produced."""
        offer = self.merger.offer
        for key, observations in summaries:
            offer(key, observations)  # False for one a restarted detect step sent again: dropped
        self.merger.report(progress)
        return self.advance()

    def advance(self) -> Merged:
        """Release what is due and run it through the stages, sweeping on the way as replay does."""
        alerts: list[Alert] = []
        memberships: list[Membership] = []
        announced: list[float] = []
        stages = self.stages

        def run(observations: Sequence[AttributeObservation], now: float) -> None:
            merged = stages.handle(observations, now)
            alerts.extend(merged.alerts)
            memberships.extend(merged.memberships)
            announced.extend([now] * len(merged.memberships))

        for key, observations in self.merger.release():
            if key.timestamp >= stages.next_sweep:
                run((), key.timestamp)
            if observations:
                run(observations, key.timestamp)
        return Merged(alerts, memberships, announced)

    def snapshot(self) -> dict:
        return {"stages": self.stages.snapshot(), "merger": self.merger.snapshot()}

    def restore(self, state: dict) -> None:
        self.stages.restore(state["stages"])
        self.merger.restore(state["merger"])


def encode_membership(membership: Membership) -> bytes:
    """A membership change as ``schemas/membership.v1.schema.json`` JSON: the value of the membership
    topic (keyed by account id) and one line of ``detector replay --members``.

    >>> encode_membership(Membership("acct_1", "cmp_0123456789ab", 1772409600.25))
    b'{"account_id":"acct_1","campaign_id":"cmp_0123456789ab","since":"2026-03-02T00:00:00.250Z"}'
    """
    return orjson.dumps(
        {"account_id": membership.account_id, "campaign_id": membership.campaign_id, "since": rfc3339(membership.since)}
    )


def decode_membership(value: bytes) -> Membership:
    """The inverse of :func:`encode_membership` (``since`` to the millisecond).

    >>> decode_membership(encode_membership(Membership("acct_1", None, 1772409600.25)))
    Membership(account_id='acct_1', campaign_id=None, since=1772409600.25)
    """
    fields = orjson.loads(value)
    account_id, campaign_id = fields["account_id"], fields["campaign_id"]
    return Membership(
        account_id, campaign_id, datetime.fromisoformat(fields["since"].replace("Z", "+00:00")).timestamp()
    )


class ChainedStages:
    """Detect, link and merge in one process, one request at a time: what ``detector eval`` and the
    tests run (``detector replay`` feeds the same chain whole messages through :class:`DetectStage`)."""

    def __init__(self, detector: Detector | None = None, campaigns: CampaignStages | None = None):
        self.detector = detector if detector is not None else Detector()
        self.campaigns = campaigns if campaigns is not None else CampaignStages(self.detector.policy.campaigns)
        self.guard = EventTimeGuard(self.detector.policy)
        self.set_aside: Counter = Counter()
        """Records the guard set aside, by reason."""

    @property
    def profiles(self) -> dict:
        """The detector's account profiles (``detector eval`` reads their highest risk)."""
        return self.detector.profiles

    def process(self, request: Request) -> list[Alert]:
        """The account and campaign alerts of one request (and of those it released), in the order they arose."""
        return self._take(*self.guard.offer(request)[1:])

    def drain(self) -> list[Alert]:
        """The end of the input: the alerts of records still waiting to be put in order."""
        return self._take(*self.guard.drain())

    def _take(self, ready: list[Request], set_aside: list[SetAside]) -> list[Alert]:
        for item in set_aside:
            self.set_aside[item.reason] += 1
        if len(ready) == 1:
            return self.detector.process(ready[0], self.campaigns).alerts
        return [alert for request in ready for alert in self.detector.process(request, self.campaigns).alerts]

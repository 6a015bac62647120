"""Every threshold and weight of the detection core, in one documented place.

Each indicator turns its reading into a score between 0 and 1 with :func:`~detector.detection.features.shares.ramp`
between a ``low`` (ordinary) and a ``high`` (alarming) value. Scores fall into two groups:

* **harvest** — what the traffic asks for: reasoning spelled out, long outputs, one template
  with ever-new fillings, single-turn exchanges, one narrow capability. A weighted mean,
  *gated* by the payload (reasoning elicitation or long outputs): templated high-volume traffic
  that harvests nothing (a classification batch job) stays quiet.
* **automation** — how the traffic is sent: volume against the account's own baseline,
  round-the-clock activity, machine-regular timing, a brand-new account, traffic moved to a
  new model, rate-limit hits, an outlier against the population. Combined as a noisy-or.

``risk = 100 × harvest × (automation_floor + (1 − automation_floor) × automation)``

so harvesting alone reaches at most ``100 × automation_floor`` and heavy automation alone
(coding agents, resellers) nothing.

The linking and campaign thresholds (:class:`CampaignPolicy`) are here too, as the policy's
``campaigns``. A policy can be loaded from JSON (``DETECTOR_POLICY_FILE``, ``detector eval
--policy``); unknown keys are an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from detector.errors import ConfigError


@dataclass(frozen=True)
class CampaignPolicy:
    """Thresholds of linking and of campaign alerts."""

    min_attribute_accounts: int = 3
    """A network links nobody until this many harvesting accounts share it, and a campaign owns a
    client only harvesters use from this many members
    (:meth:`~detector.detection.campaigns.CampaignBook._owner`). Three people
    behind a small office's NAT, each with a long question, share a network as an operator's proxy
    range does: they are linked, and their campaign waits for six members or one paging
    (``min_campaign_accounts``). At four, a small operator's ranges of three accounts linked hours
    later (tuning and four seen blocks: times to detect lower in 20-33 campaigns a block, higher in
    3-5; benign accounts flagged unchanged)."""
    min_card_accounts: int = 3
    """The same for a payment instrument: an operator splits a small campaign over cards of two to ten
    accounts, and three harvesting accounts on one card, each paging on its own, are one operator."""
    min_shared_accounts: int = 8
    """The same for attributes that unrelated customers share (a client set-up, a template, a
    creation hour, and pairs of them): the eval pipelines of several teams run the same harness
    with the same prompt forms, and each first run of a suite looks like harvesting."""
    attribute_harvest_share: float = 0.6
    """Share of an attribute's accounts (those with evidence: ``_unknown`` in
    :mod:`~detector.detection.campaigns`) that must be harvesting
    accounts: a NAT, a company card or an SDK's user agent carry ordinary accounts too and never link,
    however busy its attackers."""
    attribute_request_share: float = 0.3
    """Share of an attribute's checked requests that must be harvest-shaped. Lower than the account
    share: operators mix ordinary chat into their accounts as cover, and people rarely reach it."""
    account_harvest_share: float = 0.3
    """Share of an account's own checked requests from which it counts among an attribute's harvesting
    accounts (for ``attribute_harvest_share`` and ``exclusive_share``). People seldom send one in ten
    (long single questions happen); most accounts with cover chat still do one in three."""
    ordinary_harvest_rate: float = 0.05
    """Share of harvest-shaped requests in ordinary traffic, against which an account on a linking
    attribute is judged (:meth:`~detector.detection.campaigns.AttributeIndex._harvests`): people's
    chats reach a few in a hundred."""
    min_campaign_accounts: int = 6
    """A component alerts from this many member accounts, or from ``min_paging_campaign_accounts``
    once one of its members pages on its own risk. Three to five people behind a campus NAT or on a
    company card, each with a long question or two, share a card or a network as an operator's small
    card group does, and a few requests each cannot tell them apart (eval seeds 5197, 5232, 5267,
    5293, 5308, 5382, 5903: three to five such people paged as one campaign in each). An operator's
    fragment grows, joins the rest of its campaign, or harvests until one of its accounts pages."""
    min_campaign_harvests: int = 8
    """A component alerts from ``min_paging_campaign_accounts`` members too once they have sent this many
    harvest-shaped requests together (as the link stage last heard through their cards and networks).
    The three to five customers such components hold send one each, now and then two or three: 3-6 in
    all on the tuning seeds and the seen seeds above."""
    min_paging_campaign_accounts: int = 3
    """A component with a member paging on its own risk alerts from this many accounts: they are paged
    together, through the campaign's alert, rather than one by one."""
    campaign_alert_hold_minutes: float = 20.0
    """A new campaign waits this long (event time) before its first alert: fragments of one operator
    (accounts on different cards that a client set-up or a creation hour joins a little later) merge
    first, and on-call sees one alert, not one per fragment and a 'merged into' after each. Small
    campaigns wait no longer than large ones: under the account alert hold
    (``DetectionPolicy.account_alert_hold_minutes``), a few accounts that harvest hard are paged
    through their campaign's alert, not each through its own first."""
    member_alert_lead_minutes: float = 2.0
    """A waiting campaign with members paging on their own alerts this long (event time) before the
    first of their own alerts would page (each is held: ``DetectionPolicy.account_alert_hold_minutes``,
    longer for a quiet account), so that those fold into the campaign's. A burst operator's first
    accounts on a card page within minutes, and its third account, which links the card, may come half
    an hour later (eval seed 5778: three accounts, four alert keys)."""
    critical_campaign_accounts: int = 100
    min_resend_minutes: float = 10.0
    """A growing campaign's alert is re-sent at most this often (event time): its member list trails
    the campaign by about this much, and a burst of links is one update, not several."""
    member_cap: int = 5000
    """Most account ids listed in one campaign alert; ``account_count`` gives the total."""
    attribute_ttl_hours: float = 48.0
    """Attributes idle this long (event time) are forgotten, with their unlinked members."""
    campaign_idle_hours: float = 24.0
    """A campaign with no member activity this long is resolved."""
    attribute_member_cap: int = 20_000
    """Most accounts remembered per attribute: memory stays bounded for any attribute."""
    max_attributes: int = 1_000_000
    """Attributes remembered by a link stage (~0.8 KB each with one account); beyond it the oldest
    attribute seen with one account only is forgotten (a flood of fresh networks, user agents and
    templates), else the least recently seen one."""
    exclusive_share: float = 0.95
    """An attribute is *exclusive* to harvesters when this share of all accounts seen with it
    harvest: a NAT, an SDK or a common template carry ordinary users too and never are. A weak
    attribute that is exclusive, and shared by ``min_exclusive_accounts``, joins accounts outright."""
    min_exclusive_accounts: int = 8
    """As many as a weak attribute or a pair needs to link at all (``min_shared_accounts``): one that
    only harvesters use is exclusive from the moment it links. At ten, pairs of one template and one
    client shared by eight or nine accounts of a trickle campaign, each active for hours before, linked
    none of them (eval seed 5656, seen; benign flagged unchanged on the tuning seeds and four seen blocks)."""
    established_hours: float = 6.0
    """An account active this long before a weak attribute began linking is not linked by it: an API
    product or a tutoring app that shares a popular template and client with an operator has a
    history of its own, and the operator's accounts arrive with the harvesting. A card or a network
    links its early accounts too: a campaign that grows slowly reaches ``min_attribute_accounts``
    hours after its first accounts began, and those harvested on it from the start."""
    established_requests: int = 64
    """On an attribute exclusive to harvesters, a history of its own also takes this many requests: a
    trickle campaign's pair of creation hour and template links many hours after its first accounts
    began, at a few requests a day each (tuning seed 1027: 121 such members never flagged), while an
    API product sends hundreds a day. On one that customers share too, time alone decides: people
    behind a NAT or in a launch-day crowd send few requests (tuning seeds: benign 2 → 11 without the
    exclusive condition)."""


@dataclass(frozen=True, slots=True)
class DetectionPolicy:
    """Thresholds and weights; the defaults are the ones measured in the README."""

    # -- warm-up: nothing alerts before there is evidence
    warmup_hours: float = 1.0
    """Event-time hours after the first record before any alert: baselines need traffic."""
    min_requests: int = 8
    """Requests an account must have sent before it can be alerted on."""

    long_answer_tokens: int = 500
    """Output tokens from which an answer to an opening, novel prompt counts as harvested
    (:func:`~detector.detection.features.harvest.harvest_shaped`); ordinary chat answers
    mostly end well below it (the Azure conversation trace's 90th percentile is ~420)."""

    # -- harvest indicators (low, high, weight)
    harvest_shaped: tuple[float, float, float] = (0.3, 0.75, 3.0)
    """Share of checked requests shaped like harvesting: opening, novel, long answer. Wording-free."""
    reasoning_elicitation: tuple[float, float, float] = (0.25, 0.7, 1.5)
    output_at_max_tokens: tuple[float, float, float] = (0.1, 0.5, 1.0)
    long_outputs: tuple[float, float, float] = (600.0, 1600.0, 1.0)
    """Mean output tokens."""
    output_input_ratio: tuple[float, float, float] = (4.0, 15.0, 0.5)
    """Mean output tokens per input token: short questions, long answers."""
    templated_novel_fill: tuple[float, float, float] = (0.3, 0.8, 1.0)
    single_turn: tuple[float, float, float] = (0.7, 0.95, 1.0)
    capability_focus: tuple[float, float, float] = (0.5, 0.9, 1.0)
    content_repeat_relief: tuple[float, float] = (0.2, 0.6)
    """Share of prompts repeated verbatim: evaluation suites re-run, extractors never repeat."""
    payload_gate: float = 0.5
    """Harvest is scaled down linearly while the payload score is below this."""

    # -- automation indicators (low, high, weight)
    volume_vs_baseline: tuple[float, float, float] = (4.0, 40.0, 0.5)
    """Hourly rate over max(own 24 h rate, population median)."""
    round_the_clock: tuple[float, float, float] = (14.0, 22.0, 0.4)
    """Active hours out of the last 24."""
    timing_regularity: tuple[float, float, float] = (0.5, 1.2, 0.35)
    """Spread (std) of log inter-arrival gaps; *lower* is more machine-like (scored inverted)."""
    new_account: tuple[float, float, float] = (2.0, 21.0, 0.55)
    """Account age in days at its first request; *younger* is more suspicious (scored inverted)."""
    new_model_share: tuple[float, float, float] = (0.2, 0.6, 0.35)
    rate_limited_share: tuple[float, float, float] = (0.02, 0.2, 0.3)
    population_outlier: tuple[float, float, float] = (0.6, 0.9, 0.3)
    """Half-space-trees score of the account's feature vector against the population."""
    automation_floor: float = 0.45
    blatant_requests_per_hour: float = 150.0
    """An established account (opened more than ``new_account[1]`` days before its first request, with a
    history the detector watched) pages on its own only from this hourly rate: below it, it may be a
    customer's product serving its own users (:func:`~detector.detection.scoring.assess`)."""
    history_hours: float = 24.0
    """An old account watched this long, or since the detector's warm-up, has a history of its own."""
    history_jump: float = 3.0
    """An established account at a blatant rate pages alone only at this many times its own daily rate."""

    # -- severities and alert lifecycle
    warning_risk: float = 55.0
    critical_risk: float = 75.0
    resolve_risk: float = 35.0
    """An open alert resolves when risk falls below this (hysteresis under ``warning_risk``)."""
    idle_resolve_hours: float = 6.0
    """An open alert resolves when its account has been silent this long (event time)."""
    account_alert_hold_minutes: float = 30.0
    """A new account alert waits this long (event time) before it pages, so that a member of a
    campaign is joined to it first and paged through the campaign's alert."""
    quiet_account_rate: float = 30.0
    """Requests an hour (mean since first seen) under which a new account alert is held longer."""
    quiet_account_hold_hours: float = 3.0
    """How long an account alert of a quiet account is held: at a few requests an hour, on-call loses
    little, and a low-and-slow campaign's members join it first and are paged once, through it."""
    rescore_step: float = 10.0
    """An open alert is re-emitted when risk rose this many points since it was last sent."""
    new_model_window_hours: float = 72.0
    """A model counts as new for this long after the population first used it."""
    model_startup_hours: float = 6.0
    """Models first used in the detector's own first hours count as old: it cannot tell a release
    from its own start-up. A rarely used old model seen later counts as new for a while; only the
    accounts moving traffic to it, and harvesting there, make anything of that."""

    # -- event-time hygiene (detector/detection/hygiene.py): what may move the clock
    max_ahead_seconds: float = 300.0
    """A record stamped further ahead of the worker's wall clock is set aside as ``future_timestamp``."""
    max_jump_seconds: float = 3600.0
    """Replay (no wall clock): a record stamped further ahead of the newest one admitted is held, and
    set aside as ``future_timestamp`` unless ``jump_quorum_accounts`` agree with it."""
    max_late_seconds: float = 24 * 3600.0
    """A record stamped further behind the newest admitted one is set aside as ``late_timestamp``:
    a campaign resolves after ``campaign_idle_hours`` (24) without activity, an account alert sooner."""
    jump_quorum_accounts: int = 8
    """Replay only: consecutive records from this many accounts, all ahead of the stream by more than
    ``max_jump_seconds`` and each within that of the one before, move its clock forward (a feed that
    resumes after a silence); a shorter run is set aside."""
    reorder_seconds: float = 0.0
    """Records at most this far out of order reach the detector in timestamp order; each waits this
    long (event time, or wall time in an idle worker) first. 0: in arrival order, no wait."""
    duplicate_window_records: int = 100_000
    """An ``(account_id, event_id)`` seen among the last this many to twice this many admitted records
    is set aside as ``duplicate_event`` (~10 MB at the default)."""

    # -- campaigns
    campaigns: CampaignPolicy = field(default_factory=CampaignPolicy)
    """Linking and campaign alerts (a ``"campaigns"`` object in a policy file)."""

    # -- memory
    max_accounts: int = 1_000_000
    """Profiles kept per worker (~1.4 KB each); beyond it the oldest account with fewer than
    ``min_requests`` requests and no campaign is evicted, else the least recently active one."""
    account_ttl_hours: float = 168.0
    """A profile idle this long (event time) is evicted: its baselines are a week stale."""

    @classmethod
    def from_file(cls, path: str | Path) -> DetectionPolicy:
        """Defaults overridden by a JSON object of field names (campaign fields in a ``"campaigns"``
        object); unknown names are rejected."""
        return cls.with_overrides(read_overrides(path, "policy file"), f"policy file {path}")

    @classmethod
    def with_overrides(cls, overrides: dict[str, Any], source: str = "policy") -> DetectionPolicy:
        """The defaults with ``overrides`` (JSON values; campaign fields under ``"campaigns"``) applied.

        >>> policy = DetectionPolicy.with_overrides({"warning_risk": 60, "campaigns": {"min_exclusive_accounts": 10}})
        >>> policy.warning_risk, policy.campaigns.min_exclusive_accounts, policy.campaigns.min_shared_accounts
        (60, 10, 8)
        """
        campaigns = overrides.get("campaigns", {})
        if not isinstance(campaigns, dict):
            raise ConfigError(f'{source}: "campaigns" must be a JSON object of campaign fields')
        values = _fields(cls, {k: v for k, v in overrides.items() if k != "campaigns"}, source)
        return cls(**values, campaigns=CampaignPolicy(**_fields(CampaignPolicy, campaigns, f"{source} campaigns")))


def read_overrides(path: str | Path, what: str) -> dict[str, Any]:
    """The JSON object of policy field names in the file at ``path`` (a policy file, a tuning grid)."""
    try:
        overrides = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise ConfigError(f"{what} {path}: expected a readable JSON object; got {error}") from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"{what} {path}: expected a JSON object; got {type(overrides).__name__}")
    return overrides


def _fields(kind: type, overrides: dict[str, Any], source: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(kind)} - {"campaigns"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown fields {unknown}; known: {sorted(known)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}

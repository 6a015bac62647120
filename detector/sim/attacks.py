"""Distillation campaigns: accounts that harvest long answers to novel tasks, built from drawn tactics.

Whatever its tactics, a campaign wants the same thing: a dataset of many *novel* prompts spread over
a capability area, each asked once (single-turn), each answered at length. The tactics
(:data:`detector.sim.scenario.TACTICS`) only change how that is dressed: the wording, the clients and
networks, how many accounts share a card, how fast and when they send, whether ordinary chat hides
the harvest, whether traffic moves to a newly released model.

An attack *family* is a name for the overall shape of a campaign's drawn tactics, for reports;
the tactics themselves, in the labels, are the ground truth:

* ``blatant_extractor``: sends in bursts of hundreds to thousands of requests an hour;
* ``evasive``: residential or NAT egress, no shared network, reworded prompts;
* ``low_and_slow``: hundreds to thousands of accounts at a few dozen requests a day or less;
* ``model_pivot``: a smaller campaign that moves traffic to the new model after its release;
* ``harvest_cluster``: anything else (a small cluster, a single patient account).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace

from detector.sim.accounts import Account, Emitter, Population, interleave
from detector.sim.clients import (
    BROWSER_CLIENTS,
    DATACENTER_OCTETS,
    HUMAN,
    POPULAR_SDK_USER_AGENT,
    RESIDENTIAL_OCTETS,
    TIMEZONES,
    TLS,
    address,
    custom_client,
    subnet,
)
from detector.sim.corpora import HARVEST_LANGUAGES, HarvestPrompts, corpus
from detector.sim.sampling import DAY, HOUR, between, exponential, hex_id, lognormal, pick, seeded, uniform
from detector.sim.scenario import MODEL_CURRENT, MODEL_NEW

ATTACK_FAMILIES = ("blatant_extractor", "low_and_slow", "evasive", "model_pivot", "harvest_cluster")

_SIZES = {"single": (1, 3), "tens": (10, 60), "hundreds": (100, 500), "thousands": (800, 2000)}
_PER_DAY = {"trickle": (2.0, 10.0), "steady": (10.0, 60.0), "burst": (200.0 * 24, 2000.0 * 24)}
_BURST_RECORD_BUDGET = 40_000
"""Records a burst campaign sends at scale 1 before it stops (operators pay per token too); it also
keeps a scenario's size near that of the others."""


def family_of(tactics: dict[str, tuple[str, ...]]) -> str:
    """The attack family that names a campaign's drawn tactics (see the module docstring).

    >>> family_of({"pivot": ("none",), "rate": ("burst",), "size": ("single",)})
    'blatant_extractor'
    """
    if tactics["rate"] == ("burst",):
        return "blatant_extractor"
    if (
        tactics.get("egress", ("datacenter",)) != ("datacenter",)
        and tactics.get("network_sharing") == ("per_account",)
        and tactics.get("paraphrase") != ("fixed_templates",)
    ):
        return "evasive"
    if tactics["size"] in (("hundreds",), ("thousands",)):
        return "low_and_slow"
    if tactics["pivot"] == ("release_pivot",):
        return "model_pivot"
    return "harvest_cluster"


@dataclass(frozen=True)
class CampaignParameters:
    """What a campaign's tactics become in numbers, drawn from its own seed (kept in the labels)."""

    accounts: int
    start: float
    ramp_hours: float
    """Accounts begin over this many hours after the campaign's start."""
    requests_per_account_day: float
    active_hours: float
    """How long each account harvests (bursts stop when the campaign's record budget is spent)."""
    shifts_per_day: int
    accounts_per_card: int
    network_ranges: int
    creation_batch: int
    length_hit: float
    """Median answer length as a share of ``max_tokens``."""
    cover_share: float
    pivot_delay_hours: float
    pivot_share: float
    operator_zones: tuple[float, ...]

    @classmethod
    def draw(cls, rnd, tactics: dict, scenario) -> CampaignParameters:
        def tactic(dimension: str) -> str:
            return tactics[dimension][0]

        low, high = _SIZES[tactic("size")]
        accounts = between(rnd, low, high)
        if tactic("size") != "single":
            accounts = max(2, round(accounts * scenario.scale))
        window = scenario.end - scenario.campaign_start
        start = scenario.campaign_start + rnd() * 0.3 * window
        per_low, per_high = _PER_DAY[tactic("rate")]
        per_day = math.exp(uniform(rnd, math.log(per_low), math.log(per_high)))
        active_hours = (scenario.end - start) / HOUR
        if tactic("rate") == "burst":
            # the budget binds: many accounts burst for an hour at a lower rate each, few for longer
            budget = _BURST_RECORD_BUDGET * scenario.scale
            hours_of_budget = budget / accounts / (per_day / 24)
            if hours_of_budget < 1.0:
                per_day, hours_of_budget = budget / accounts * 24, 1.0
            active_hours = min(active_hours, hours_of_budget)
        return cls(
            accounts=accounts,
            start=round(start, 3),
            ramp_hours=uniform(rnd, 0.0, 1.0) if tactic("size") == "single" else uniform(rnd, 0.5, 12.0),
            requests_per_account_day=per_day,
            active_hours=active_hours,
            shifts_per_day=between(rnd, 2, 4),
            accounts_per_card={"hundreds_per_card": between(rnd, 100, 400), "small_groups": between(rnd, 2, 10)}.get(
                tactic("payment"), 1
            ),
            network_ranges=between(rnd, 2, 8),
            creation_batch=between(rnd, 20, 200),
            length_hit=uniform(rnd, 0.55, 1.05),
            cover_share=uniform(rnd, 0.1, 0.4) if tactic("cover") == "mixed_chat" else 0.0,
            pivot_delay_hours=uniform(rnd, 0.5, 20.0),
            pivot_share=uniform(rnd, 0.3, 0.7) if tactic("pivot") == "release_pivot" else 0.0,
            operator_zones=tuple(random.Random(int(rnd() * 2**32)).sample([zone for zone, _ in TIMEZONES], 2)),
        )


_PARAMETER_NAMES = frozenset(field.name for field in fields(CampaignParameters))


class _Infrastructure:
    """What a campaign's accounts share: cards, networks, a client stack, creation batches."""

    def __init__(self, rng: random.Random, tactics: dict, params: CampaignParameters, scenario):
        rnd = rng.random
        self.tactics = tactics
        self.cards = tuple(
            "pm_" + hex_id(rng, 16) for _ in range(math.ceil(params.accounts / params.accounts_per_card))
        )
        egress = tactics["egress"][0]
        octets = DATACENTER_OCTETS if egress == "datacenter" else RESIDENTIAL_OCTETS
        if egress == "shared_nat":
            self.exits = tuple(
                address(rnd, pick(rnd, (DATACENTER_OCTETS, RESIDENTIAL_OCTETS))) for _ in range(between(rnd, 2, 8))
            )
        else:
            self.exits = ()
        self.ranges = tuple(subnet(rnd, octets) for _ in range(params.network_ranges))
        self.octets = octets
        self.custom = custom_client(rng)
        self.sdk_agents = (POPULAR_SDK_USER_AGENT, pick(rnd, (POPULAR_SDK_USER_AGENT, "openai-python/1.54.4")))
        fresh = tactics["account_age"][0] == "fresh"
        oldest = 14 * DAY if fresh else 700 * DAY
        newest = 1 * HOUR if fresh else 60 * DAY
        self.created_span = (params.start - oldest, params.start - newest)
        batches = max(1, math.ceil(params.accounts / params.creation_batch))
        self.batch_times = tuple(uniform(rnd, *self.created_span) for _ in range(batches))

    def created_at(self, rnd, index: int, params: CampaignParameters) -> float:
        if self.tactics["creation"][0] == "batched":
            return self.batch_times[index // params.creation_batch] + rnd() * 45 * 60
        return uniform(rnd, *self.created_span)

    def client(self, rnd) -> tuple[tuple[str, ...], str | None]:
        """The account's user agents and TLS fingerprint."""
        kind = self.tactics["client"][0]
        if kind == "popular_sdk":
            return self.sdk_agents, TLS["python"]
        if kind == "browser":
            agent, stack = pick(rnd, BROWSER_CLIENTS)
            return (agent,), TLS[stack]
        return (self.custom[0],), self.custom[1]

    def addresses(self, rnd):
        """A function giving the source address of the account's next request."""
        egress, sharing = self.tactics["egress"][0], self.tactics["network_sharing"][0]
        if egress == "shared_nat":
            exits = self.exits
            return lambda: pick(rnd, exits)
        if sharing == "shared":
            ranges = self.ranges
            return lambda: f"{pick(rnd, ranges)}.{1 + int(rnd() * 254)}"
        own = [address(rnd, self.octets)]
        octets = self.octets

        def sticky() -> str:
            if egress == "residential" and rnd() < 0.02:  # residential addresses change now and then
                own[0] = address(rnd, octets)
            return own[0]

        return sticky


def add_campaigns(population: Population) -> None:
    """Every campaign the scenario drew, with its accounts and their streams."""
    scenario = population.scenario
    for index, tactics in enumerate(scenario.campaign_tactics):
        plan = scenario.plans[index] if index < len(scenario.plans) else {}
        add_campaign(population, index, tactics, plan)


def add_campaign(population: Population, index: int, tactics: dict, plan: Mapping[str, object]) -> str:
    """One campaign's accounts; a plan's numbers (any ``CampaignParameters`` field) replace the drawn ones."""
    scenario = population.scenario
    rng = seeded(scenario.seed, "campaign-parameters", index)
    params = CampaignParameters.draw(rng.random, tactics, scenario)
    planned = {name: value for name, value in plan.items() if name in _PARAMETER_NAMES}
    if planned:
        params = replace(params, **planned)  # type: ignore[arg-type]
    family = family_of(tactics)
    languages = ()
    if tactics["language"] == ("multilingual",):
        languages = tuple(rng.sample(sorted(HARVEST_LANGUAGES), between(rng.random, 1, 3)))
    prompts = HarvestPrompts.draw(
        rng, tactics["wording"], tactics["capability"], tactics["paraphrase"][0], tactics["wrapper"][0], languages
    )
    infrastructure = _Infrastructure(rng, tactics, params, scenario)
    record = {dimension: list(values) for dimension, values in tactics.items()}
    campaign_id = population.campaign(rng, family, params.start, params.accounts, record)
    population.campaigns[campaign_id]["parameters"] = {
        name: round(value, 4) if isinstance(value, float) else value for name, value in asdict(params).items()
    }
    population.campaigns[campaign_id]["languages"] = list(languages)
    for member in range(params.accounts):
        account_rng = seeded(scenario.seed, "campaign", index, "account", member)
        rnd = account_rng.random
        agents, tls = infrastructure.client(rnd)
        account = population.new_account(
            account_rng,
            family,
            campaign_id=campaign_id,
            created_at=infrastructure.created_at(rnd, member, params),
            signup_channel=pick(rnd, ("web", "web", "google_oauth", "mobile_app")),
            payment_fingerprint=infrastructure.cards[member // params.accounts_per_card],
            tls_fingerprint=tls,
        )
        account.stream = _harvest_stream(
            population, account, account_rng, member, params, tactics, prompts, infrastructure, agents
        )
    return campaign_id


def _arrivals(rnd, member: int, params: CampaignParameters, tactics: dict, begin: float, end: float) -> Iterator[float]:
    """Request times of one account: its schedule (shifts, a human day, round the clock) and timing."""
    schedule, scripted = tactics["schedule"][0], tactics["timing"][0] == "scripted"
    per_day = params.requests_per_account_day
    if schedule == "round_the_clock":
        windows: Iterator[tuple[float, float]] = iter(((begin, end),))
        active_share = 1.0
    elif schedule == "synchronized_shifts":
        windows = _shift_windows(params, member, begin, end)
        active_share = 1.0 / params.shifts_per_day
    else:
        zone = pick(rnd, params.operator_zones) + pick(rnd, (-1, 0, 0, 1))
        windows = _sessions(rnd, zone, begin, end)
        active_share = 0.12
    gap = DAY * active_share / per_day
    for window_start, window_end in windows:
        at = window_start
        while True:
            at += gap * (0.9 + 0.2 * rnd()) if scripted else exponential(rnd, gap)
            if at >= window_end:
                break
            yield at


def _shift_windows(params: CampaignParameters, member: int, begin: float, end: float) -> Iterator[tuple[float, float]]:
    """Groups of accounts take turns: each group works one shift a day, rotating daily, all in step."""
    shifts = params.shifts_per_day
    length = DAY / shifts
    group = member % shifts
    day = math.floor(begin / DAY) * DAY
    offset = (params.start % 3600.0) * 7 % length  # shifts begin 0-7 h after midnight UTC, fixed by the start
    while day < end:
        shift = (group + int(day // DAY)) % shifts
        window_start, window_end = day + offset + shift * length, day + offset + (shift + 1) * length
        if window_end > begin:
            yield max(window_start, begin), min(window_end, end)
        day += DAY


def _sessions(rnd, zone: float, begin: float, end: float) -> Iterator[tuple[float, float]]:
    """Human-like sessions in the account's own time zone: about 3 h of activity a day, in bursts."""
    at = begin
    while True:
        at = HUMAN.next_after(rnd, at, 4.0, zone, end)
        if at >= end:
            return
        length = lognormal(rnd, 0.7 * HOUR, 0.5)
        yield at, min(at + length, end)
        at += length


def _harvest_stream(population, account: Account, rng, member, params, tactics, prompts, infrastructure, agents):
    scenario = population.scenario

    def stream() -> Iterator[dict]:
        rnd = rng.random
        emit = Emitter(account, rnd, ("key_" + hex_id(rng, 12),), error_rate=0.01, errors=(429, 500))
        next_address = infrastructure.addresses(rnd)
        max_tokens = pick(rnd, (None, 4096, 8192, 16384))
        cap = max_tokens or 8192
        temperature = pick(rnd, (None, 0.7, 1.0, 0.6))
        begin = params.start + rnd() * params.ramp_hours * HOUR
        end = min(scenario.end, begin + params.active_hours * HOUR)
        switch = scenario.release + params.pivot_delay_hours * HOUR + rnd() * HOUR
        chat = corpus()
        conversations = 0

        def cover(at: float, model: str, agent: str, conversation_id: str) -> Iterator[dict]:
            """An ordinary multi-turn chat from the same account, real users' words."""
            context, turn = 0, 0
            while True:
                text = pick(rnd, chat.first_turn if turn == 0 else chat.follow_up)
                tokens_in, tokens_out = pick(rnd, chat.conv_tokens)
                tokens_in = max(tokens_in, len(text) // 4 + 20) + context
                record = emit(at, model, tokens_in, tokens_out, max_tokens, temperature, "stop", text,
                              next_address(), agent, conversation_id, turn)  # fmt: skip
                latency = emit.last_latency_s
                yield record
                if rnd() < 0.4 or turn >= 6:
                    return
                context = tokens_in + record["output_tokens"]
                turn += 1
                at += latency + lognormal(rnd, 45.0, 0.8)

        def conversation(at: float) -> Iterator[dict]:
            nonlocal conversations
            model = MODEL_NEW if at >= switch and rnd() < params.pivot_share else MODEL_CURRENT
            agent = pick(rnd, agents)
            conversations += 1
            conversation_id = f"conv_{account.account_id[5:]}_{conversations:x}"
            if params.cover_share and rnd() < params.cover_share:
                # cover runs beside the harvest, as an operator's script would: it adds traffic and
                # takes none of the harvest's turns, so the drawn rate is the harvest's own
                yield from cover(at, model, agent, conversation_id)
                return
            text, system_hash = prompts.prompt(rnd)
            wanted = int(lognormal(rnd, params.length_hit * cap, 0.4))
            if max_tokens is None:
                wanted = min(wanted, 16000)
            yield emit(at, model, len(text) // 4 + 8, wanted, max_tokens, temperature, "stop", text,
                       next_address(), agent, conversation_id, 0, system_hash)  # fmt: skip

        yield from interleave(_arrivals(rnd, member, params, tactics, begin, end), conversation, end)

    return stream

"""One account's traffic: the account, its request.v1 records, its conversations and sessions.

Every family, benign or attacking, builds accounts here and gives each a lazily started stream of
records in time order; :mod:`detector.sim.traffic` merges the streams. Nothing here decides *what*
a family does; it only makes records look like an API gateway's log of it.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from detector.sim.clients import Rhythm, address
from detector.sim.corpora import HOMEWORK_FOLLOW_UPS, HOMEWORK_FORMS, corpus, math_problem
from detector.sim.sampling import DAY, HOUR, exponential, hex_id, lognormal, pick
from detector.sim.scenario import MODEL_CURRENT, MODEL_NEW, MODEL_SMALL, Scenario

# Latency: (time to first token in ms, ms per generated token); the new model is slower at launch.
_MODEL_SPEED = {MODEL_CURRENT: (420.0, 22.0), MODEL_SMALL: (180.0, 9.0), MODEL_NEW: (650.0, 31.0)}
_BENIGN_ERRORS = (429, 500, 503, 400, 429)
_OMITTABLE = ("prompt_text", "client_ip", "user_agent", "latency_ms", "finish_reason")


# ---------------------------------------------------------------------------------------------
# Accounts


@dataclass
class Account:
    account_id: str
    family: str
    campaign_id: str | None
    org_id: str
    created_at: float
    signup_channel: str
    payment_fingerprint: str | None = None
    tls_fingerprint: str | None = None
    stream: Callable[[], Iterator[dict]] = field(default=lambda: iter(()), repr=False)


class Emitter:
    """Turns one account's requests into request.v1 dicts and keeps what is constant for the account.

    Benign producers sometimes leave optional fields out (privacy settings, older gateways);
    ``omission_rate`` and ``prompt_logged`` reproduce that.
    """

    __slots__ = (
        "account",
        "rnd",
        "seq",
        "prefix",
        "template",
        "api_keys",
        "error_rate",
        "errors",
        "omission_rate",
        "prompt_logged",
        "last_latency_s",
    )

    def __init__(
        self,
        account: Account,
        rnd,
        api_keys: tuple[str, ...],
        *,
        error_rate: float = 0.012,
        errors: tuple[int, ...] = _BENIGN_ERRORS,
        omission_rate: float = 0.0,
        prompt_logged: bool = True,
    ):
        self.account = account
        self.rnd = rnd
        self.seq = 0
        self.prefix = "evt_" + account.account_id[5:] + "-"
        # Copying a prepared dict is cheaper than building one; the placeholders fix the key order.
        self.template = {
            "event_id": None,
            "timestamp": None,
            "account_id": account.account_id,
            "model": None,
            "input_tokens": None,
            "output_tokens": None,
            "status_code": None,
            "org_id": account.org_id,
            "api_key_id": api_keys[0],
            "operation": None,
            "latency_ms": None,
            "account_created_at": account.created_at,
            "signup_channel": account.signup_channel,
        }
        if account.payment_fingerprint is not None:
            self.template["payment_fingerprint"] = account.payment_fingerprint
        if account.tls_fingerprint is not None:
            self.template["tls_fingerprint"] = account.tls_fingerprint
        self.api_keys = api_keys if len(api_keys) > 1 else None
        self.error_rate = error_rate
        self.errors = errors
        self.omission_rate = omission_rate
        self.prompt_logged = prompt_logged
        self.last_latency_s = 0.0

    def __call__(
        self,
        ts: float,
        model: str,
        input_tokens: int,
        wanted_output: int,
        max_tokens: int | None,
        temperature: float | None,
        finish: str,
        prompt: str | None,
        ip: str | None,
        ua: str | None,
        conversation_id: str | None = None,
        turn_index: int = 0,
        system_prompt_hash: str | None = None,
        operation: str = "chat",
    ) -> dict:
        rnd = self.rnd
        self.seq = seq = self.seq + 1
        draw = rnd()
        if draw < self.error_rate:
            status = self.errors[int(draw / self.error_rate * len(self.errors))]
            output, finish = 0, None
            if status == 429:
                input_tokens = 0
            latency = 20 + int(rnd() * 300)
        else:
            status, output = 200, wanted_output
            if max_tokens is not None and output >= max_tokens:
                output, finish = max_tokens, "length"
            first_token_ms, per_token_ms = _MODEL_SPEED[model]
            latency = int((first_token_ms + input_tokens * 0.03 + output * per_token_ms) * (0.75 + 0.5 * rnd()))
        self.last_latency_s = latency / 1000.0
        record = self.template.copy()
        record["event_id"] = self.prefix + str(seq)
        record["timestamp"] = round(ts * 1000.0) / 1000.0
        record["model"] = model
        record["input_tokens"] = input_tokens
        record["output_tokens"] = output
        record["status_code"] = status
        record["operation"] = operation
        record["latency_ms"] = latency
        if self.api_keys is not None:
            record["api_key_id"] = self.api_keys[int(rnd() * len(self.api_keys))]
        if finish is not None:
            record["finish_reason"] = finish
        if max_tokens is not None:
            record["max_tokens"] = max_tokens
        if temperature is not None:
            record["temperature"] = temperature
        if ip is not None:
            record["client_ip"] = ip
        if ua is not None:
            record["user_agent"] = ua
        if conversation_id is not None:
            record["conversation_id"] = conversation_id
            record["turn_index"] = turn_index
        if prompt is not None and self.prompt_logged:
            record["prompt_text"] = prompt
        if system_prompt_hash is not None:
            record["system_prompt_hash"] = system_prompt_hash
        if self.omission_rate and rnd() < self.omission_rate:
            record.pop(_OMITTABLE[int(rnd() * len(_OMITTABLE))], None)
        return record


def interleave(starts: Iterator[float], conversation: Callable[[float], Iterator[dict]], end: float) -> Iterator[dict]:
    """One account's overlapping conversations as one time-ordered stream.

    ``starts`` must be non-decreasing and each conversation's records start at or after its start.
    """
    running: list = []  # (timestamp, tiebreak, record, conversation)
    tiebreak = 0
    upcoming = next(starts, None)
    while True:
        if upcoming is not None and (not running or upcoming <= running[0][0]):
            convo = conversation(upcoming)
            record = next(convo, None)
            if record is not None:
                heapq.heappush(running, (record["timestamp"], tiebreak, record, convo))
                tiebreak += 1
            upcoming = next(starts, None)
            continue
        if not running:
            return
        ts, _, record, convo = running[0]
        if ts >= end:
            heapq.heappop(running)
            continue
        yield record
        following = next(convo, None)
        if following is None:
            heapq.heappop(running)
        else:
            heapq.heapreplace(running, (following["timestamp"], tiebreak, following, convo))
            tiebreak += 1


def session_starts(
    rnd,
    phases: list[tuple[float, float]],
    end: float,
    rhythm: Rhythm,
    tz: float,
    conversations_per_session: float,
    gap_minutes: float = 6.0,
) -> Iterator[float]:
    """Conversation start times clustered in sessions; ``phases`` are (from time, sessions per day).

    Sessions follow the local rhythm; a session holds one or more conversations a few minutes apart.
    """
    index, at = 0, phases[0][0]
    while index < len(phases):
        phase_end = phases[index + 1][0] if index + 1 < len(phases) else end
        rate = phases[index][1]
        session = rhythm.next_after(rnd, at, rate, tz, phase_end) if rate > 0 else phase_end
        if session >= phase_end:
            at = max(at, phase_end)
            index += 1
            continue
        at = session
        more = conversations_per_session - 1.0
        while True:
            if at >= end:
                return
            yield at
            if rnd() * (more + 1.0) >= more:
                break
            at += 60.0 + exponential(rnd, gap_minutes * 60.0)


class ChatUser:
    """How one person (or one product's end users) converses: prompts, models, clients.

    People repeat themselves: now and then they ask again something they asked before, or
    regenerate an answer by sending the same message again (``repeat_share``). A harvest never
    needs to.
    """

    __slots__ = (
        "repeat_share",
        "asked",
        "emit",
        "rnd",
        "corpus",
        "conv_prefix",
        "conversations",
        "model_at",
        "opening",
        "follow_up",
        "turns_mean",
        "max_tokens",
        "temperature",
        "system_prompt_hash",
        "client",
        "think_median_s",
    )

    def __init__(
        self,
        emit: Emitter,
        rnd,
        *,
        model_at,
        opening,
        follow_up,
        turns_mean,
        max_tokens,
        temperature,
        system_prompt_hash,
        client,
        think_median_s=45.0,
        repeat_share=0.08,
    ):
        self.emit, self.rnd, self.corpus = emit, rnd, corpus()
        self.repeat_share, self.asked = repeat_share, []
        self.conv_prefix = "conv_" + emit.account.account_id[5:] + "_"
        self.conversations = 0
        self.model_at, self.opening, self.follow_up = model_at, opening, follow_up
        self.turns_mean, self.max_tokens, self.temperature = turns_mean, max_tokens, temperature
        self.system_prompt_hash, self.client, self.think_median_s = system_prompt_hash, client, think_median_s

    def conversation(self, at: float) -> Iterator[dict]:
        rnd, emit, pairs = self.rnd, self.emit, self.corpus.conv_tokens
        self.conversations += 1
        conversation_id = f"{self.conv_prefix}{self.conversations:x}"
        model = self.model_at(at)
        ip, ua = self.client()
        continuing = 1.0 - 1.0 / self.turns_mean
        context, turn = 0, 0
        homework = None
        prompt = ""
        while True:
            if rnd() < self.repeat_share and (turn or self.asked):
                prompt = prompt if turn else pick(rnd, self.asked)  # regenerate, or ask again
            elif turn == 0:
                prompt, homework = self.opening()
                if len(self.asked) < 20:
                    self.asked.append(prompt)
            else:
                prompt = self.follow_up(homework)
            prompt_tokens = len(prompt) // 4 + 1
            trace_context, trace_output = pairs[int(rnd() * len(pairs))]
            input_tokens = max(trace_context, prompt_tokens + 20) if turn == 0 else context + prompt_tokens
            record = emit(
                at,
                model,
                input_tokens,
                trace_output,
                self.max_tokens,
                self.temperature,
                "stop",
                prompt,
                ip,
                ua,
                conversation_id,
                turn,
                self.system_prompt_hash,
            )
            yield record
            if rnd() >= continuing or turn >= 40:
                return
            context = input_tokens + record["output_tokens"]
            turn += 1
            at += emit.last_latency_s + lognormal(rnd, self.think_median_s, 0.9)


# ---------------------------------------------------------------------------------------------
# The population: every account of a scenario, and the campaigns they form


class Population:
    """The accounts of one scenario as families add them, with what several families share."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.accounts: list[Account] = []
        self.campaigns: dict[str, dict] = {}
        self.parameters: dict[str, dict] = {}
        self._taken_ids: set[str] = set()

    def new_account(
        self,
        rng: random.Random,
        family: str,
        *,
        created_at: float,
        signup_channel: str,
        campaign_id: str | None = None,
        org_id: str | None = None,
        payment_fingerprint: str | None = None,
        tls_fingerprint: str | None = None,
    ) -> Account:
        """A new account with an id that reveals nothing of its family (ids are drawn, never reused)."""
        account_id = "acct_" + hex_id(rng, 16)
        while account_id in self._taken_ids:
            account_id = "acct_" + hex_id(rng, 16)
        self._taken_ids.add(account_id)
        account = Account(
            account_id=account_id,
            family=family,
            campaign_id=campaign_id,
            org_id=org_id or "org_" + hex_id(rng, 12),
            created_at=round(created_at, 3),
            signup_channel=signup_channel,
            payment_fingerprint=payment_fingerprint,
            tls_fingerprint=tls_fingerprint,
        )
        self.accounts.append(account)
        return account

    def campaign(self, rng: random.Random, family: str, start: float, accounts: int, tactics: dict) -> str:
        """Register a campaign; its id, start, size and drawn tactics go into the labels."""
        campaign_id = "camp_" + hex_id(rng, 10)
        self.campaigns[campaign_id] = {
            "family": family,
            "start": round(start, 3),
            "accounts": accounts,
            "tactics": tactics,
        }
        return campaign_id

    def record_parameters(self, family: str, parameters) -> None:
        """Keep a family's drawn parameters (a frozen dataclass) for the labels."""
        self.parameters[family] = {
            name: round(value, 4) if isinstance(value, float) else value for name, value in asdict(parameters).items()
        }

    def benign_created_at(self, rnd, new_share: float = 0.04) -> float:
        """Most benign accounts are months old; a few signed up in the last two weeks, as campaigns' do."""
        if rnd() < new_share:
            return self.scenario.start - DAY * (0.1 + rnd() * 14)
        return self.scenario.start - DAY * (15 + rnd() * 900)

    def adoption(self, rnd, adopt_share: float, within_hours: float) -> float:
        """When this account starts using the new model (never for most)."""
        if rnd() < adopt_share:
            return self.scenario.release + exponential(rnd, within_hours * HOUR)
        return math.inf

    @staticmethod
    def model_chooser(rnd, base: str, adopt_at: float, new_share: float, other_share: float = 0.08):
        """A function giving the model of a request at a time: the account's usual one, the other now and
        then, and after ``adopt_at`` the new model for ``new_share`` of requests."""
        other = MODEL_SMALL if base == MODEL_CURRENT else MODEL_CURRENT

        def model_at(at: float) -> str:
            if at >= adopt_at and rnd() < new_share:
                return MODEL_NEW
            return other if rnd() < other_share else base

        return model_at

    def ordinary_opening(self, rnd, wrapper: str | None, homework_share: float = 0.0):
        """Openings and follow-ups of an ordinary user: real ShareGPT messages, a tool's wrapper around
        them for some, homework with its follow-up questions for students."""
        texts = corpus()
        first, snippets = texts.first_turn, texts.follow_up

        def opening() -> tuple[str, bool]:
            if homework_share and rnd() < homework_share:
                return pick(rnd, HOMEWORK_FORMS).format(p=math_problem(rnd)), True
            question = pick(rnd, first)
            if wrapper is None:
                return question, False
            return wrapper.format(
                q=question, s1=pick(rnd, snippets)[:160], s2=pick(rnd, snippets)[:160], s3=pick(rnd, snippets)[:160]
            ), False

        def follow_up(homework: bool) -> str:
            return pick(rnd, HOMEWORK_FOLLOW_UPS) if homework else pick(rnd, snippets)

        return opening, follow_up

    @staticmethod
    def home_client(rnd, client: tuple[str, str], ip_logged: bool, roaming: float = 0.1):
        """A home address with some roaming (phones, cafés); ``ip_logged`` False for gateways that drop it."""
        ua, _ = client
        home = address(rnd)

        def client_at() -> tuple[str | None, str]:
            if not ip_logged:
                return None, ua
            return (home if rnd() >= roaming else address(rnd)), ua

        return client_at

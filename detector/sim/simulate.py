"""Deterministic, labeled synthetic API traffic: benign families and distillation campaigns.

The detector is tuned and evaluated on traffic whose ground truth is known. Each benign family
is built to resemble an attack in one respect (students and eval suites ask for step-by-step
reasoning, a university sits behind one NAT, thousands of accounts share an SDK's user agent,
batch jobs are templated, a launch-day crowd rushes to a new model), so that no single signal
separates the two; only the combination does. Every family's parameters are drawn from ranges
by the seed, so a detector tuned on one run is tested on variants of it.

Ordinary prompts are real first-turn and follow-up messages from ShareGPT and token counts
come from Azure's 2023 LLM inference traces (sources and licences in ``detector/sim/data/README.md``).

>>> records = generate(Scenario.demo())
>>> first, second = next(records), next(records)
>>> first["timestamp"] <= second["timestamp"] and first["event_id"] != second["event_id"]
True
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import itertools
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import cache, cached_property
from operator import itemgetter
from pathlib import Path
from statistics import NormalDist

import orjson

from detector.errors import ConfigError

MODEL_CURRENT = "helix-3"
MODEL_SMALL = "helix-3-mini"
MODEL_NEW = "helix-4"  # released during the window, at Scenario.new_model_release_hours

BENIGN_FAMILIES = (
    "ordinary_chat",
    "coding_agent",
    "enterprise_batch",
    "eval_pipeline",
    "shared_nat",
    "launch_crowd",
    "reseller",
)
ATTACK_FAMILIES = ("blatant_extractor", "low_and_slow", "evasive", "model_pivot")

_HOUR = 3600.0
_DAY = 86400.0
_DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Scenario:
    """What to simulate; the defaults are the scale used by ``detector eval`` and the README figures."""

    seed: int = 7
    start: float = 1772409600.0  # 2026-03-02T00:00Z, a Monday
    duration_hours: float = 48.0
    ordinary_accounts: int = 3000
    coding_agents: int = 40
    enterprise_batch: int = 10
    eval_pipelines: int = 5
    nat_accounts: int = 120
    launch_crowd: int = 200
    resellers: int = 5
    blatant_extractors: int = 2
    low_and_slow_accounts: int = 2000
    evasive_accounts: int = 300
    pivot_accounts: int = 200
    campaign_start_hours: float = 12.0  # attacks start after a benign warm-up period
    new_model_release_hours: float = 24.0

    def __post_init__(self) -> None:
        counts = {k: v for k, v in asdict(self).items() if isinstance(v, int) and k != "seed"}
        negative = sorted(k for k, v in counts.items() if v < 0)
        if negative:
            raise ConfigError(f"Scenario: account counts must be >= 0; got negative {negative}")
        if not self.duration_hours > 0:
            raise ConfigError(f"Scenario: duration_hours must be > 0; got {self.duration_hours}")
        for name in ("campaign_start_hours", "new_model_release_hours"):
            hours = getattr(self, name)
            if not 0 <= hours <= self.duration_hours:
                raise ConfigError(
                    f"Scenario: {name} must lie within [0, duration_hours={self.duration_hours}]; got {hours}"
                )

    @classmethod
    def demo(cls, seed: int = 7) -> Scenario:
        """A few hundred accounts, one blatant extractor and one small low-and-slow cluster over 6 h.

        Replayed at 60-120x it fits in a few minutes; the campaigns start after one hour of
        benign traffic, so the baselines have something to learn from first.
        """
        return cls(
            seed=seed,
            duration_hours=6.0,
            ordinary_accounts=250,
            coding_agents=4,
            enterprise_batch=2,
            eval_pipelines=1,
            nat_accounts=30,
            launch_crowd=20,
            resellers=1,
            blatant_extractors=1,
            low_and_slow_accounts=150,
            evasive_accounts=0,
            pivot_accounts=0,
            campaign_start_hours=1.0,
            new_model_release_hours=3.0,
        )

    def scaled(self, factor: float, hours: float | None = None) -> Scenario:
        """The same mix with every family's account count times ``factor`` (a present family keeps
        at least one account) and, given ``hours``, a window of that length in which the campaign
        start and the model release keep their relative place.

        >>> s = Scenario().scaled(0.5, hours=24)
        >>> s.low_and_slow_accounts, s.blatant_extractors, s.campaign_start_hours, s.new_model_release_hours
        (1000, 1, 6.0, 12.0)
        """
        if not factor > 0:
            raise ConfigError(f"Scenario.scaled: factor must be > 0; got {factor}")
        counts = {
            name: max(1, round(value * factor)) if value else 0
            for name, value in asdict(self).items()
            if isinstance(value, int) and name != "seed"
        }
        stretch = 1.0 if hours is None else hours / self.duration_hours
        return replace(
            self,
            **counts,
            duration_hours=self.duration_hours * stretch,
            campaign_start_hours=self.campaign_start_hours * stretch,
            new_model_release_hours=self.new_model_release_hours * stretch,
        )

    @cached_property  # read in per-record loops
    def end(self) -> float:
        return self.start + self.duration_hours * _HOUR

    @cached_property
    def campaign_start(self) -> float:
        return self.start + self.campaign_start_hours * _HOUR

    @cached_property
    def release(self) -> float:
        return self.start + self.new_model_release_hours * _HOUR


@dataclass(frozen=True)
class SimulationSummary:
    """What ``write`` produced, for the CLI to print."""

    records: int
    accounts: int
    attack_accounts: int
    records_by_family: dict[str, int]
    first_timestamp: float | None
    last_timestamp: float | None
    seconds: float
    records_path: str
    labels_path: str


def generate(scenario: Scenario) -> Iterator[dict]:
    """request.v1 records of the whole scenario in event-time order, lazily.

    Memory stays modest: each account is a generator, and only a few minutes of event time are
    held and sorted at once.
    """
    world = _World(scenario)
    return _in_event_time_order([account.stream() for account in world.accounts])


def labels(scenario: Scenario) -> dict:
    """Ground truth: each account's family, label and campaign; each campaign's start and size."""
    world = _World(scenario)
    accounts = {
        a.account_id: {
            "family": a.family,
            "label": "attack" if a.family in ATTACK_FAMILIES else "benign",
            "campaign_id": a.campaign_id,
        }
        for a in world.accounts
    }
    return {
        "accounts": accounts,
        "campaigns": world.campaigns,
        "scenario": {
            **asdict(scenario),
            "end": scenario.end,
            "campaign_start": scenario.campaign_start,
            "new_model_release": scenario.release,
            "models": {"current": MODEL_CURRENT, "small": MODEL_SMALL, "new": MODEL_NEW},
            "parameters": world.parameters,
        },
    }


def write(scenario: Scenario, records_path: str | Path, labels_path: str | Path) -> SimulationSummary:
    """Write the records as JSON lines (gzip when the name ends in .gz) and the labels as JSON.

    The gzip header carries no timestamp, so the same seed gives the same bytes.
    """
    began = time.perf_counter()
    truth = labels(scenario)
    family_of = {acct: v["family"] for acct, v in truth["accounts"].items()}
    by_family = dict.fromkeys(BENIGN_FAMILIES + ATTACK_FAMILIES, 0)
    records_path, labels_path = Path(records_path), Path(labels_path)
    count, first, last = 0, None, None
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    with _open_for_writing(records_path) as out:
        batch: list[bytes] = []
        for record in generate(scenario):
            batch.append(dumps(record, option=newline))
            by_family[family_of[record["account_id"]]] += 1
            if len(batch) == 20_000:
                out.write(b"".join(batch))
                batch.clear()
            if first is None:
                first = record["timestamp"]
            last = record["timestamp"]
            count += 1
        out.write(b"".join(batch))
    labels_path.write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
    return SimulationSummary(
        records=count,
        accounts=len(family_of),
        attack_accounts=sum(1 for v in truth["accounts"].values() if v["label"] == "attack"),
        records_by_family=by_family,
        first_timestamp=first,
        last_timestamp=last,
        seconds=round(time.perf_counter() - began, 3),
        records_path=str(records_path),
        labels_path=str(labels_path),
    )


@contextmanager
def _open_for_writing(path: Path):
    with open(path, "wb") as raw:
        if path.name.endswith(".gz"):
            # neither a name nor a time in the gzip header: the same scenario gives the same bytes
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as compressed:
                yield compressed
        else:
            yield raw


def _in_event_time_order(streams: list[Iterator[dict]], target_chunk: int = 40_000) -> Iterator[dict]:
    """Merge per-account streams (each already in time order) into one event-time-ordered stream.

    Cheaper than a k-way heap merge per record: accounts are pulled one slice of event time at a
    time and each slice is sorted once (stably, so ties keep a deterministic order). The slice
    widens or narrows so that about ``target_chunk`` records are held at once, whatever the scale.
    """
    waiting = []  # (next timestamp, stream index, pending record)
    for index, stream in enumerate(streams):
        record = next(stream, None)
        if record is not None:
            waiting.append((record["timestamp"], index, record))
    heapq.heapify(waiting)
    by_time = itemgetter("timestamp")
    slice_seconds = 900.0
    while waiting:
        boundary = waiting[0][0] + slice_seconds
        chunk: list[dict] = []
        append = chunk.append
        while waiting and waiting[0][0] < boundary:
            _, index, record = heapq.heappop(waiting)
            stream = streams[index]
            while record is not None and record["timestamp"] < boundary:
                append(record)
                record = next(stream, None)
            if record is not None:
                heapq.heappush(waiting, (record["timestamp"], index, record))
        chunk.sort(key=by_time)
        yield from chunk
        if len(chunk) > 2 * target_chunk:
            slice_seconds = max(1.0, slice_seconds / 2)
        elif len(chunk) < target_chunk // 2:
            slice_seconds = min(6 * _HOUR, slice_seconds * 2)


# ---------------------------------------------------------------------------------------------
# Real data: prompts and token counts


@dataclass(frozen=True)
class _Corpus:
    first_turn: tuple[str, ...]
    follow_up: tuple[str, ...]
    coding: tuple[str, ...]
    conv_tokens: tuple[tuple[int, int], ...]  # (context tokens, generated tokens)
    code_tokens: tuple[tuple[int, int], ...]


_CODING_WORDS = (
    "python",
    "javascript",
    "typescript",
    "code",
    "function",
    "error",
    "sql",
    "react",
    "java",
    "api",
    "bug",
    "class ",
    "script",
    "django",
    "flutter",
    "docker",
    "regex",
    "json",
    "c++",
    "rust",
)


@cache
def _corpus() -> _Corpus:
    prompts = orjson.loads(gzip.decompress((_DATA / "sharegpt_prompts.json.gz").read_bytes()))
    tokens = orjson.loads(gzip.decompress((_DATA / "azure_token_pairs.json.gz").read_bytes()))
    first = tuple(prompts["first_turn"])
    coding = tuple(p for p in first if any(w in p.lower() for w in _CODING_WORDS))
    return _Corpus(
        first_turn=first,
        follow_up=tuple(prompts["follow_up"]),
        coding=coding,
        conv_tokens=tuple(map(tuple, tokens["conv"])),
        code_tokens=tuple(map(tuple, tokens["code"])),
    )


# ---------------------------------------------------------------------------------------------
# Small random helpers (bound ``rng.random`` passed as ``rnd`` is the fast path)

# Standard normal quantiles: picking one at a random index is several times faster than gauss().
_Z = tuple(NormalDist().inv_cdf((i + 0.5) / 4096) for i in range(4096))


def _rng(*parts) -> random.Random:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _pick(rnd, seq):
    return seq[int(rnd() * len(seq))]


def _between(rnd, low: int, high: int) -> int:
    return low + int(rnd() * (high - low + 1))


def _lognormal(rnd, median: float, sigma: float) -> float:
    return median * math.exp(sigma * _Z[int(rnd() * 4096)])


def _exponential(rnd, mean: float) -> float:
    return -mean * math.log(1.0 - rnd())


def _weighted(rnd, weighted: tuple) -> object:
    """Pick from ((value, weight), ...) whose weights sum to 1."""
    r = rnd()
    for value, weight in weighted:
        r -= weight
        if r < 0:
            return value
    return weighted[-1][0]


def _hex(rng: random.Random, digits: int) -> str:
    return format(rng.getrandbits(4 * digits), f"0{digits}x")


def _fingerprint(name: str) -> str:
    """A JA3-style 32-hex TLS fingerprint, stable per client stack."""
    return hashlib.md5(name.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Clients, networks and rhythms

_TLS = {
    "python": _fingerprint("python3.11-openssl3.0"),
    "python-old": _fingerprint("python3.9-openssl1.1"),
    "node": _fingerprint("node20-boringssl"),
    "go": _fingerprint("go1.22-crypto-tls"),
    "curl": _fingerprint("curl8-openssl3"),
    "java": _fingerprint("okhttp4-conscrypt"),
    "chrome": _fingerprint("chrome131"),
    "firefox": _fingerprint("firefox133"),
    "safari": _fingerprint("safari18"),
}

POPULAR_SDK_USER_AGENT = "openai-python/1.55.3"

# (user agent, tls stack, weight): one SDK version dominates, as it does on real APIs.
_CLIENTS = (
    (POPULAR_SDK_USER_AGENT, "python", 0.28),
    ("openai-python/1.54.4", "python", 0.07),
    ("OpenAI/Python 1.52.2", "python-old", 0.04),
    ("openai-node/4.76.0", "node", 0.10),
    ("openai-node/4.73.1", "node", 0.04),
    ("langchain-openai/0.2.10 openai-python/1.55.3", "python", 0.05),
    ("python-requests/2.32.3", "python", 0.05),
    ("python-httpx/0.27.2", "python", 0.03),
    ("Go-http-client/2.0", "go", 0.02),
    ("curl/8.5.0", "curl", 0.02),
    ("okhttp/4.12.0", "java", 0.02),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "chrome",
        0.12,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "chrome",
        0.06,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "safari",
        0.04,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "firefox", 0.03),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "safari",
        0.02,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "chrome",
        0.01,
    ),
)
_CLIENT_WEIGHTS = tuple(((ua, tls), w) for ua, tls, w in _CLIENTS)
_BROWSER_CLIENTS = tuple((ua, tls) for ua, tls, _ in _CLIENTS if ua.startswith("Mozilla"))

# First octets of ordinary public address space (no private, loopback, multicast or reserved).
_RESIDENTIAL_OCTETS = (
    24,
    31,
    37,
    46,
    50,
    62,
    66,
    67,
    68,
    69,
    71,
    73,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    83,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
    91,
    92,
    93,
    94,
    95,
    98,
    99,
    101,
    108,
    109,
    110,
    112,
    115,
    117,
    118,
    119,
    121,
    122,
    123,
    124,
    125,
    151,
    174,
    176,
    178,
    180,
    182,
    183,
    186,
    187,
    188,
    189,
    190,
    191,
    200,
    201,
    211,
    212,
    213,
    217,
    218,
    219,
    220,
    221,
    222,
)
_DATACENTER_OCTETS = (3, 13, 18, 20, 34, 35, 44, 45, 52, 54, 104, 107, 134, 137, 139, 143, 146, 157, 159, 167, 185, 194)


def _ip(rnd, octets=_RESIDENTIAL_OCTETS) -> str:
    return f"{_pick(rnd, octets)}.{int(rnd() * 256)}.{int(rnd() * 256)}.{1 + int(rnd() * 254)}"


def _subnet(rnd, octets=_DATACENTER_OCTETS) -> str:
    return f"{_pick(rnd, octets)}.{int(rnd() * 256)}.{int(rnd() * 256)}"


# (UTC offset in hours, share of users)
_TIMEZONES = (
    (-8, 0.12),
    (-7, 0.04),
    (-6, 0.07),
    (-5, 0.14),
    (-3, 0.04),
    (0, 0.08),
    (1, 0.16),
    (2, 0.05),
    (3, 0.03),
    (5.5, 0.09),
    (7, 0.03),
    (8, 0.08),
    (9, 0.05),
    (10, 0.02),
)

# Relative activity by local hour, 00..23.
_HUMAN_DAY = (
    0.10,
    0.06,
    0.04,
    0.03,
    0.03,
    0.05,
    0.12,
    0.30,
    0.55,
    0.80,
    0.95,
    1.0,
    0.85,
    0.90,
    1.0,
    0.95,
    0.85,
    0.70,
    0.60,
    0.62,
    0.68,
    0.60,
    0.40,
    0.20,
)
_STUDENT_DAY = (
    0.35,
    0.25,
    0.12,
    0.06,
    0.04,
    0.03,
    0.04,
    0.10,
    0.30,
    0.55,
    0.75,
    0.85,
    0.80,
    0.85,
    0.90,
    0.90,
    0.85,
    0.75,
    0.70,
    0.80,
    0.95,
    1.0,
    0.85,
    0.60,
)
_WORK_DAY = (
    0.08,
    0.05,
    0.03,
    0.02,
    0.02,
    0.03,
    0.06,
    0.20,
    0.55,
    0.90,
    1.0,
    1.0,
    0.70,
    0.90,
    1.0,
    1.0,
    0.95,
    0.75,
    0.45,
    0.30,
    0.30,
    0.28,
    0.22,
    0.14,
)
_FLAT_DAY = (
    0.85,
    0.85,
    0.80,
    0.80,
    0.80,
    0.85,
    0.90,
    0.95,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    0.95,
    0.95,
    0.95,
    0.90,
    0.90,
    0.85,
)


class _Rhythm:
    """Activity by local hour of the week; arrivals follow it by thinning a Poisson process."""

    __slots__ = ("weights", "mean")

    def __init__(self, day: tuple[float, ...], weekend: float = 1.0):
        week = [day[h % 24] * (weekend if h >= 120 else 1.0) for h in range(168)]
        peak = max(week)
        self.weights = tuple(w / peak for w in week)
        self.mean = sum(self.weights) / 168

    def next_after(self, rnd, t: float, per_day: float, tz: float, limit: float) -> float:
        """The next arrival after ``t`` for ``per_day`` arrivals on an average day (``limit`` if none before it)."""
        peak = per_day / (_DAY * self.mean)
        weights = self.weights
        offset = tz + 72.0  # the epoch began on a Thursday: +72 h puts index 0 at Monday 00:00
        while True:
            t -= math.log(1.0 - rnd()) / peak
            if t >= limit:
                return limit
            if rnd() < weights[int((t / _HOUR + offset) % 168.0)]:
                return t


_HUMAN = _Rhythm(_HUMAN_DAY, weekend=0.6)
_STUDENT = _Rhythm(_STUDENT_DAY, weekend=0.8)
_FLAT = _Rhythm(_FLAT_DAY)
_WORLD = _Rhythm(tuple(sum(w * _HUMAN_DAY[int(h + tz) % 24] for tz, w in _TIMEZONES) for h in range(24)))


def _working_rhythm(night_share: float) -> _Rhythm:
    """Office hours plus late-night sessions, more of them for some developers than others."""
    day = tuple(w + (night_share if h >= 21 or h <= 2 else 0.0) for h, w in enumerate(_WORK_DAY))
    return _Rhythm(day, weekend=0.35)


# ---------------------------------------------------------------------------------------------
# Prompt material

_NAMES = (
    "Ava",
    "Ben",
    "Chen",
    "Dara",
    "Elif",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lina",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
    "Zane",
    "Amara",
    "Bruno",
    "Carmen",
    "Dmitri",
    "Esra",
)
_SURNAMES = (
    "Okafor",
    "Lindqvist",
    "Tanaka",
    "Moreau",
    "Silva",
    "Kowalski",
    "Haddad",
    "Nguyen",
    "Schmidt",
    "Rossi",
    "Patel",
    "Andersen",
    "Costa",
    "Yilmaz",
    "Murphy",
    "Ivanova",
)
_ITEMS = ("apples", "marbles", "tickets", "books", "coins", "stamps", "bottles", "pencils", "cards", "tiles")
_CITIES = (
    "Lisbon",
    "Osaka",
    "Nairobi",
    "Denver",
    "Krakow",
    "Lima",
    "Hanoi",
    "Oslo",
    "Perth",
    "Montreal",
    "Seville",
    "Cairo",
    "Tallinn",
    "Busan",
    "Quito",
    "Accra",
)
_LANGUAGES = ("Python", "TypeScript", "Rust", "Go", "Java", "C++", "Kotlin", "C#")


def _math_problem(rnd) -> str:
    """A word problem with fresh numbers: the space is large enough that contents never repeat."""
    b = _between
    kind = int(rnd() * 10)
    if kind == 0:
        n1, n2, n3 = _pick(rnd, _NAMES), _pick(rnd, _NAMES), _pick(rnd, _NAMES)
        item = _pick(rnd, _ITEMS)
        return (
            f"{n1} has {b(rnd, 3, 900)} {item}. {n2} has {b(rnd, 2, 400)} more than {n1}, and {n3} "
            f"has {b(rnd, 2, 9)} times as many as {n2} minus {b(rnd, 1, 99)}. How many {item} do they have together?"
        )
    if kind == 1:
        return (
            f"A tank holds {b(rnd, 200, 9000)} litres. It is filled at {b(rnd, 5, 90)} L/min and drained at "
            f"{b(rnd, 1, 40)} L/min. Starting from {b(rnd, 0, 150)} litres, how long until it is full?"
        )
    if kind == 2:
        return (
            f"Find all pairs of non-negative integers (x, y) with {b(rnd, 2, 97)}x + {b(rnd, 2, 97)}y = "
            f"{b(rnd, 100, 999999)}."
        )
    if kind == 3:
        return (
            f"A bag holds {b(rnd, 1, 500)} red, {b(rnd, 1, 500)} green and {b(rnd, 1, 500)} blue marbles. "
            f"{_pick(rnd, _NAMES)} draws {b(rnd, 3, 40)} without replacement. What is the probability that "
            f"exactly {b(rnd, 1, 3)} of them are red?"
        )
    if kind == 4:
        return (
            f"A coin lands heads with probability 0.{b(rnd, 100, 999)}. What is the probability of at least "
            f"{b(rnd, 2, 300)} heads in {b(rnd, 301, 5000)} tosses?"
        )
    if kind == 5:
        return (
            f"Let a_1 = {b(rnd, 1, 999)} and a_(n+1) = ({b(rnd, 2, 99)} * a_n + {b(rnd, 1, 999)}) mod "
            f"{b(rnd, 101, 9973)}. Find a_{b(rnd, 10, 5000)}."
        )
    if kind == 6:
        return (
            f"A rectangle has perimeter {b(rnd, 20, 99999)} cm and its length is {b(rnd, 1, 9999)} mm more than "
            f"its width. A square has the same area. Find the side of the square to {b(rnd, 2, 5)} decimal places."
        )
    if kind == 7:
        return (
            f"Train A leaves {_pick(rnd, _CITIES)} at {b(rnd, 5, 11)}:{b(rnd, 0, 59):02d} at {b(rnd, 60, 180)} km/h; "
            f"train B leaves {_pick(rnd, _CITIES)}, {b(rnd, 100, 2000)} km away, at {b(rnd, 6, 13)}:"
            f"{b(rnd, 0, 59):02d} at {b(rnd, 60, 180)} km/h towards A. When and where do they meet?"
        )
    if kind == 8:
        return (
            f"Solve the system: {b(rnd, 1, 30)}x + {b(rnd, 1, 30)}y - {b(rnd, 1, 30)}z = {b(rnd, -99, 99)}, "
            f"{b(rnd, 1, 30)}x - {b(rnd, 1, 30)}y + {b(rnd, 1, 30)}z = {b(rnd, -99, 99)}, "
            f"x + y + z = {b(rnd, -50, 50)}."
        )
    return (
        f"An investment of ${b(rnd, 1, 900) * 100} grows at {b(rnd, 1, 12)}.{b(rnd, 0, 9)}% compounded "
        f"{_pick(rnd, ('monthly', 'quarterly', 'daily', 'yearly'))}. After how many years does it exceed "
        f"${b(rnd, 1000, 90000) * 10}?"
    )


_CODING_TASKS = (
    "merges {k} sorted lists of integers into one sorted list",
    "parses a CSV line with quoted fields and escaped quotes and returns the fields",
    "returns the longest substring with at most {k} distinct characters",
    "implements an LRU cache with a capacity of {n} entries and O(1) operations",
    "finds the shortest path in a {k}x{n} grid with obstacles from the top-left to the bottom-right corner",
    "validates an IPv4 address and returns the reason when it is invalid",
    "computes the edit distance between two strings, counting adjacent transpositions as one edit",
    "schedules {n} jobs with deadlines and profits to maximise total profit",
    "serialises a binary tree to a string and parses it back",
    "rate-limits calls to {k} per {n} milliseconds with a token bucket",
    "detects a cycle in a directed graph of up to {n} nodes given as an adjacency list",
    "returns the {k}-th smallest element of an unsorted array in expected linear time",
    "computes a rolling median over a window of {k} values",
    "tokenises and evaluates arithmetic expressions with correct operator precedence and parentheses",
    "deduplicates customer records by fuzzy-matching names with a similarity threshold of 0.{k}",
    "splits a list of {n} tasks among {k} workers to minimise the maximum load",
    "finds all anagram groups in a list of up to {n} words",
    "implements a trie that supports insert, search and prefix counting for {n} words",
    "converts an integer below {n} to its English words representation",
    "computes the convex hull of {n} points in the plane",
)
_CODING_CONSTRAINTS = (
    "Aim for O(n log n) time.",
    "Do not use any third-party libraries.",
    "Include unit tests for the edge cases.",
    "It must handle inputs of up to {n} elements.",
    "Make it thread-safe.",
    "Avoid recursion.",
    "Use at most O({k}) extra memory.",
    "Add type annotations and docstrings.",
)
_TOOLS = (
    "search_web(query)",
    "read_file(path)",
    "write_file(path, content)",
    "run_shell(cmd)",
    "http_get(url)",
    "sql_query(sql)",
    "send_email(to, subject, body)",
    "calendar_create(event)",
    "calculator(expression)",
    "browser_click(selector)",
)
_TOOLSETS = tuple(", ".join(tools) for tools in itertools.combinations(_TOOLS, 4))
_AGENT_TASKS = (
    "Find the three cheapest direct flights from {c1} to {c2} on 2026-{m:02d}-{d:02d} and book the one landing before {h}:00 within a budget of ${n}.",
    "The CI job 'test-{k}' fails on commit {sha}. Find the cause in the repository and propose a patch.",
    "Reconcile the {n} transactions in ledger_2025_{m:02d}.csv against the bank statement and list mismatches over ${k}.",
    "Migrate the table orders_{k} ({n} rows) to the new schema without downtime and verify the row counts.",
    "Plan a {d}-day trip to {c1} for {k} people with a budget of ${n} and create the calendar events.",
    "Triage issue #{n} in the payments-{k} repository: reproduce it, find the commit that introduced it and draft a fix.",
    "Collect the {k} most cited papers on {topic} since 20{d:02d}, summarise each and write a comparison table to report_{sha}.md.",
    "Monitor the endpoint /api/v{d}/status every {k} minutes and email on-call if the p95 latency exceeds {n} ms.",
)
_TOPICS = (
    "speculative decoding",
    "graph neural networks",
    "battery chemistry",
    "protein folding",
    "carbon capture",
    "retrieval-augmented generation",
    "quantum error correction",
    "federated learning",
)


_SYSTEMS = (
    "a payments service",
    "a mobile game backend",
    "a log pipeline",
    "an inventory system",
    "a chat server",
    "a trading engine",
    "a hospital scheduling tool",
    "a web crawler",
    "a recommendation service",
    "a CLI tool",
)


def _coding_task(rnd) -> str:
    n, k = _between(rnd, 10, 100000), _between(rnd, 2, 60)
    task = _pick(rnd, _CODING_TASKS).format(n=n, k=k)
    constraint = _pick(rnd, _CODING_CONSTRAINTS).format(n=_between(rnd, 1000, 10**7), k=k)
    return (
        f"Write a {_pick(rnd, _LANGUAGES)} function that {task}. It runs in {_pick(rnd, _SYSTEMS)}, "
        f"about {_between(rnd, 2, 5000)} calls per second on inputs of up to {_between(rnd, 100, 10**7)} items. "
        f"{constraint}"
    )


def _agent_task(rnd) -> str:
    tools = _pick(rnd, _TOOLSETS)
    task = _pick(rnd, _AGENT_TASKS).format(
        c1=_pick(rnd, _CITIES),
        c2=_pick(rnd, _CITIES),
        m=_between(rnd, 1, 12),
        d=_between(rnd, 1, 28),
        h=_between(rnd, 8, 22),
        n=_between(rnd, 100, 99999),
        k=_between(rnd, 2, 99),
        sha=format(int(rnd() * 16**7), "07x"),
        topic=_pick(rnd, _TOPICS),
    )
    return f"Available tools: {tools}.\nTask: {task}"


_CONTENT = {"math": _math_problem, "coding": _coding_task, "agentic": _agent_task}

# Extraction templates: each asks for the reasoning spelled out, around a fresh problem.
_EXTRACTION_TEMPLATES = (
    "{content}\n\nThink step by step. Show your complete chain of thought, every intermediate step, before giving the final answer.",
    "Solve the following. First explain your reasoning in detail, step by step, then state the final answer.\n\n{content}",
    "You are a world-class expert. {content}\nExplain the reasoning behind each decision and do not skip any steps.",
    "### Task\n{content}\n### Instructions\nReason step by step inside <thinking> tags, then give the answer inside <answer> tags.",
    "{content}\n\nWrite out your full reasoning process as a numbered list of steps, verify each step, then give the final answer.",
    "Let's think step by step.\n\n{content}\n\nShow all your work and justify every step.",
    "Provide a detailed, step-by-step solution with your reasoning for each step.\nProblem: {content}",
    "{content}\nBefore each tool call or code change, explain what you are thinking and why. Narrate your entire reasoning trace.",
    "{content}\n\nRespond with: 1) your step-by-step reasoning, 2) the final solution, 3) a check of the solution.",
    "Explain the reasoning behind the answer as if teaching an expert, covering every step.\n\n{content}",
)

# Evasive phrasings: the same request for spelled-out reasoning, worded many ways.
_EVASIVE_OPENERS = (
    "",
    "",
    "",
    "Hey, ",
    "Hi! ",
    "Quick one: ",
    "I'm preparing for an interview. ",
    "My professor gave us this and I'm stuck. ",
    "Can you help? ",
    "Working on a side project. ",
)
_EVASIVE_ASKS = (
    "walk me through your reasoning one step at a time",
    "explain each step of your thinking before you answer",
    "lay out your whole thought process and then give the answer",
    "reason it through carefully and show all the intermediate steps",
    "don't skip any steps, I want to see how you get there",
    "break it down and justify every step",
    "show how you'd think about it from first principles, step by step",
    "talk through the approach in detail before the final result",
    "give me the full derivation, not just the answer",
    "explain why each step follows from the previous one",
    "think out loud and show me all of your reasoning",
    "go through it slowly and explain the logic at every stage",
)
_EVASIVE_CLOSERS = (
    "",
    "",
    " Thanks!",
    " Put the final answer at the end.",
    " Be thorough.",
    " Take your time.",
    " Then double-check it.",
)


def _evasive_prompt(rnd, asks: tuple[str, ...], content: str) -> str:
    opener, ask, closer = _pick(rnd, _EVASIVE_OPENERS), _pick(rnd, asks), _pick(rnd, _EVASIVE_CLOSERS)
    form = int(rnd() * 3)
    if form == 0:
        return f"{opener}{content} Please {ask}.{closer}"
    if form == 1:
        return f"{opener}Could you {ask}? {content}{closer}"
    return f"{content}\n\n{ask[0].upper()}{ask[1:]}.{closer}"


# Benign requests for reasoning: homework and launch-day testing look like extraction in wording.
_HOMEWORK_FORMS = (
    "Explain step by step how to solve this: {p}",
    "{p} Can you show your work?",
    "Can you walk me through this problem step by step? {p}",
    "{p}",
    "help me with my homework: {p}",
    "I got a different answer than the book. {p} Please explain the reasoning.",
)
_HOMEWORK_FOLLOW_UPS = (
    "I don't get step 2, can you explain it differently?",
    "why did you multiply there?",
    "can you check my answer? I got a different number",
    "ok what if the numbers were different",
    "thanks! can you give me a similar practice problem",
    "explain it simpler please",
    "wait, where did that formula come from?",
    "is there a faster way to do this on the exam?",
)
_LAUNCH_TESTS = (
    "What can you do that the previous version couldn't?",
    "Solve this step by step and show your reasoning: {m}",
    "{c}",
    "Give me a hard riddle and then explain the solution step by step.",
    "Write a short story in exactly 100 words about a lighthouse keeper.",
    "Explain {t} like I'm five.",
)

_WRAPPERS = (
    # (system prompt name, wrapper): shared by the users of one popular tool
    (
        "web-search-assistant",
        "Answer the question using only these search results. Cite them as [n].\n\n"
        "[1] {s1}\n[2] {s2}\n[3] {s3}\n\nQuestion: {q}",
    ),
    ("browser-extension-rewrite", "Rewrite the following to sound clear and professional. Keep the meaning.\n\n{q}"),
    ("notes-app-assistant", "You are a helpful assistant inside a notes app. The user's note:\n---\n{s1}\n---\n{q}"),
)

_TOOL_RESULTS = (
    "run_tests: {a} failed, {b} passed in {c}.{d}s\nFAILED tests/test_{m}.py::test_{f} - AssertionError: expected {a} == {b}",
    "read_file src/{m}/{f}.py ({b} lines)",
    'grep -rn "{f}" src/ -> {a} matches in {d} files',
    "run_shell: npm run build\nerror TS2345: Argument of type 'string' is not assignable to parameter of type 'number'. ({m}/{f}.ts:{b}:{a})",
    "apply_patch: {a} hunks applied to src/{m}/{f}.py",
    "run_shell: pytest -x -q\n{b} passed, {a} warnings in {c}.{d}s",
    "git diff --stat: {a} files changed, {b} insertions(+), {c} deletions(-)",
    "read_file docs/{m}.md ({b} lines)",
)
_MODULES = ("billing", "auth", "api", "models", "search", "ingest", "utils", "scheduler", "cache", "reports")
_FUNCS = ("parse_header", "refresh_token", "retry", "to_json", "merge", "validate", "handler", "paginate", "render")
_DEV_TASKS = (
    "Fix the failing tests in tests/test_{m}.py",
    "Add pagination to the /api/{m} endpoint",
    "Refactor src/{m}/{f}.py to remove the duplicated retry logic",
    "Why does {f} return None for empty input? Fix it.",
    "Add type hints to the {m} package and make mypy pass",
    "Write tests for {f} covering the edge cases",
    "Upgrade the {m} service to the new SDK and fix the breaking changes",
)


@cache
def _tool_results() -> tuple[str, ...]:
    """Tool outputs fed back to coding agents; they repeat in real loops too, so a fixed pool will do."""
    rnd = random.Random(1999).random
    return tuple(
        _pick(rnd, _TOOL_RESULTS).format(
            a=_between(rnd, 1, 9),
            b=_between(rnd, 10, 900),
            c=_between(rnd, 1, 90),
            d=_between(rnd, 0, 9),
            m=_pick(rnd, _MODULES),
            f=_pick(rnd, _FUNCS),
        )
        for _ in range(3000)
    )


# Enterprise batch templates: (name, template, output tokens (low, high), max_tokens)
_BATCH_TASKS = (
    (
        "sentiment",
        "Classify the sentiment of this product review as positive, negative or neutral. Reply with one word.\n\nReview: {x}",
        (1, 2),
        5,
    ),
    (
        "invoice",
        "Extract the following fields from the invoice as JSON: vendor, invoice_number, date, total, currency.\n\nInvoice:\n{x}",
        (40, 90),
        256,
    ),
    (
        "ticket",
        "Route this support ticket to one of: billing, technical, account, sales, other. Answer with the category only.\n\nTicket: {x}",
        (1, 3),
        8,
    ),
    (
        "redact",
        "Redact all personal names and phone numbers in the text below, replacing each with [REDACTED]. Return only the text.\n\n{x}",
        (30, 90),
        200,
    ),
    (
        "category",
        "Assign the product to a category from our taxonomy (at most 3 levels, separated by ' > ').\n\n{x}",
        (6, 18),
        32,
    ),
    ("summary", "Summarise this customer call in at most two sentences.\n\n{x}", (25, 60), 120),
)
_PRODUCTS = (
    "blender",
    "running shoes",
    "headphones",
    "desk lamp",
    "backpack",
    "coffee grinder",
    "phone case",
    "air fryer",
    "office chair",
    "water bottle",
    "keyboard",
    "tent",
    "toaster",
    "monitor",
    "drill",
)
_OPINIONS = (
    "stopped working after {n} days",
    "is exactly as described",
    "arrived broken",
    "exceeded my expectations",
    "is okay for the price",
    "feels cheap",
    "is the best purchase I made this year",
    "was returned after {n} weeks",
    "works but the app keeps crashing",
    "is louder than I expected",
    "has a battery that lasts {n} hours",
)
_DETAILS = (
    "Delivery took {n} days.",
    "Customer service never replied.",
    "Would buy again.",
    "Two stars.",
    "My kids love it.",
    "The manual is useless.",
    "Five stars!",
    "Setup took {n} minutes.",
    "",
)
_ISSUES = (
    "I was charged twice for order {n}",
    "the login page shows error {n}",
    "how do I add a second user",
    "please cancel my subscription",
    "the export to CSV is missing column {n}",
    "do you offer volume pricing",
    "my invoice {n} has the wrong VAT number",
    "the API returns 502 since this morning",
)


def _batch_input(rnd, task: str) -> str:
    n = _between(rnd, 2, 9999)
    if task == "sentiment":
        return (
            f"The {_pick(rnd, _PRODUCTS)} {_pick(rnd, _OPINIONS).format(n=n % 60 + 1)}. "
            f"{_pick(rnd, _DETAILS).format(n=n % 14 + 1)}"
        )
    if task == "invoice":
        return (
            f"{_pick(rnd, _SURNAMES)} {_pick(rnd, ('GmbH', 'Ltd', 'S.A.', 'Inc.', 'AB'))}\nInvoice no. INV-{n:05d}\n"
            f"Date: 2026-{_between(rnd, 1, 2):02d}-{_between(rnd, 1, 28):02d}\n{_between(rnd, 1, 40)} x "
            f"{_pick(rnd, _PRODUCTS)} @ {_between(rnd, 5, 900)}.{_between(rnd, 0, 99):02d}\n"
            f"Total due: {_between(rnd, 50, 90000)}.{_between(rnd, 0, 99):02d} {_pick(rnd, ('EUR', 'USD', 'GBP', 'SEK'))}"
        )
    if task == "ticket":
        return f"Hi, {_pick(rnd, _ISSUES).format(n=n)}. {_pick(rnd, ('Thanks.', 'Urgent!', 'Regards', ''))}"
    if task == "redact":
        return (
            f"Call {_pick(rnd, _NAMES)} {_pick(rnd, _SURNAMES)} on +1 555 {n:04d} about the {_pick(rnd, _PRODUCTS)} "
            f"order; {_pick(rnd, _NAMES)} from accounting approved it."
        )
    if task == "category":
        return (
            f"Title: {_pick(rnd, ('Pro', 'Ultra', 'Eco', 'Mini', 'Max'))} {_pick(rnd, _PRODUCTS)} {n}\n"
            f"Description: {_pick(rnd, _OPINIONS).format(n=n % 60 + 1)}."
        )
    return (
        f"Agent: Thank you for calling, this is {_pick(rnd, _NAMES)}. Customer: {_pick(rnd, _ISSUES).format(n=n)}. "
        f"Agent: I've {_pick(rnd, ('refunded it', 'escalated it', 'reset it', 'updated it'))}. Customer: thanks."
    )


_EVAL_FORMS = (
    ("Question: {m}\nLet's think step by step.", True),
    ("Solve the problem. Show your reasoning step by step, then write the final answer after 'Answer:'.\n\n{m}", True),
    ("Question: What is {a} * {b}?\nA) {c}\nB) {p}\nC) {q}\nD) {r}\nAnswer with the letter only.", False),
    ('Complete the following function. Return only code.\n\ndef f(xs):\n    """{t}"""\n', False),
)

# Latency: (time to first token in ms, ms per generated token); the new model is slower at launch.
_MODEL_SPEED = {MODEL_CURRENT: (420.0, 22.0), MODEL_SMALL: (180.0, 9.0), MODEL_NEW: (650.0, 31.0)}
_BENIGN_ERRORS = (429, 500, 503, 400, 429)
_OMITTABLE = ("prompt_text", "client_ip", "user_agent", "latency_ms", "finish_reason")


# ---------------------------------------------------------------------------------------------
# Accounts


@dataclass
class _Account:
    account_id: str
    family: str
    campaign_id: str | None
    org_id: str
    created_at: float
    signup_channel: str
    payment_fingerprint: str | None = None
    tls_fingerprint: str | None = None
    stream: Callable[[], Iterator[dict]] = field(default=lambda: iter(()), repr=False)


class _Emitter:
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
        account: _Account,
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
        r = rnd()
        if r < self.error_rate:
            status = self.errors[int(r / self.error_rate * len(self.errors))]
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


def _interleave(starts: Iterator[float], conversation: Callable[[float], Iterator[dict]], end: float) -> Iterator[dict]:
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


def _session_starts(
    rnd,
    phases: list[tuple[float, float]],
    end: float,
    rhythm: _Rhythm,
    tz: float,
    conversations_per_session: float,
    gap_minutes: float = 6.0,
) -> Iterator[float]:
    """Conversation start times clustered in sessions; ``phases`` are (from time, sessions per day).

    Sessions follow the local rhythm; a session holds one or more conversations a few minutes apart.
    """
    index, t = 0, phases[0][0]
    while index < len(phases):
        phase_end = phases[index + 1][0] if index + 1 < len(phases) else end
        rate = phases[index][1]
        session = rhythm.next_after(rnd, t, rate, tz, phase_end) if rate > 0 else phase_end
        if session >= phase_end:
            t = max(t, phase_end)
            index += 1
            continue
        t = session
        more = conversations_per_session - 1.0
        while True:
            if t >= end:
                return
            yield t
            if rnd() * (more + 1.0) >= more:
                break
            t += 60.0 + _exponential(rnd, gap_minutes * 60.0)


class _ChatUser:
    """How one person (or one product's end users) converses: prompts, models, clients."""

    __slots__ = (
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
        emit: _Emitter,
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
    ):
        self.emit, self.rnd, self.corpus = emit, rnd, _corpus()
        self.conv_prefix = "conv_" + emit.account.account_id[5:] + "_"
        self.conversations = 0
        self.model_at, self.opening, self.follow_up = model_at, opening, follow_up
        self.turns_mean, self.max_tokens, self.temperature = turns_mean, max_tokens, temperature
        self.system_prompt_hash, self.client, self.think_median_s = system_prompt_hash, client, think_median_s

    def conversation(self, t: float) -> Iterator[dict]:
        rnd, emit, pairs = self.rnd, self.emit, self.corpus.conv_tokens
        self.conversations += 1
        conversation_id = f"{self.conv_prefix}{self.conversations:x}"
        model = self.model_at(t)
        ip, ua = self.client()
        continuing = 1.0 - 1.0 / self.turns_mean
        context, turn = 0, 0
        homework = None
        while True:
            if turn == 0:
                prompt, homework = self.opening()
            else:
                prompt = self.follow_up(homework)
            prompt_tokens = len(prompt) // 4 + 1
            trace_context, trace_output = pairs[int(rnd() * len(pairs))]
            input_tokens = max(trace_context, prompt_tokens + 20) if turn == 0 else context + prompt_tokens
            record = emit(
                t,
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
            t += emit.last_latency_s + _lognormal(rnd, self.think_median_s, 0.9)


# ---------------------------------------------------------------------------------------------
# The world: accounts of every family, with their streams


class _World:
    """Every account of a scenario with its lazily started stream, and the campaigns they form."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.accounts: list[_Account] = []
        self.campaigns: dict[str, dict] = {}
        self.parameters: dict[str, dict] = {}
        self._taken_ids: set[str] = set()
        s = scenario
        for family, count, build in (
            ("ordinary_chat", s.ordinary_accounts, self._ordinary_chat),
            ("coding_agent", s.coding_agents, self._coding_agent),
            ("enterprise_batch", s.enterprise_batch, self._enterprise_batch),
            ("eval_pipeline", s.eval_pipelines, self._eval_pipeline),
            ("shared_nat", s.nat_accounts, self._shared_nat),
            ("launch_crowd", s.launch_crowd, self._launch_crowd),
            ("reseller", s.resellers, self._reseller),
            ("blatant_extractor", s.blatant_extractors, self._blatant_extractor),
            ("low_and_slow", s.low_and_slow_accounts, self._low_and_slow),
            ("evasive", s.evasive_accounts, self._evasive),
            ("model_pivot", s.pivot_accounts, self._model_pivot),
        ):
            if count:
                family_rng = _rng(s.seed, family)
                build(family_rng, count)

    # -- shared construction -------------------------------------------------------------

    def _new_account(
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
    ) -> _Account:
        account_id = "acct_" + _hex(rng, 16)
        while account_id in self._taken_ids:
            account_id = "acct_" + _hex(rng, 16)
        self._taken_ids.add(account_id)
        account = _Account(
            account_id=account_id,
            family=family,
            campaign_id=campaign_id,
            org_id=org_id or "org_" + _hex(rng, 12),
            created_at=round(created_at, 3),
            signup_channel=signup_channel,
            payment_fingerprint=payment_fingerprint,
            tls_fingerprint=tls_fingerprint,
        )
        self.accounts.append(account)
        return account

    def _campaign(self, family_rng: random.Random, family: str, start: float, accounts: int) -> str:
        campaign_id = "camp_" + _hex(family_rng, 10)
        self.campaigns[campaign_id] = {"family": family, "start": round(start, 3), "accounts": accounts}
        return campaign_id

    def _record_parameters(self, family: str, **values) -> dict:
        self.parameters[family] = {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}
        return values

    def _benign_created_at(self, rnd, new_share: float = 0.04) -> float:
        if rnd() < new_share:
            return self.scenario.start - _DAY * (0.1 + rnd() * 14)
        return self.scenario.start - _DAY * (15 + rnd() * 900)

    def _adoption(self, rnd, adopt_share: float, within_hours: float) -> float:
        """When this account starts using the new model (never for most)."""
        if rnd() < adopt_share:
            return self.scenario.release + _exponential(rnd, within_hours * _HOUR)
        return math.inf

    @staticmethod
    def _model_chooser(rnd, base: str, adopt_at: float, new_share: float, other_share: float = 0.08):
        other = MODEL_SMALL if base == MODEL_CURRENT else MODEL_CURRENT

        def model_at(t: float) -> str:
            if t >= adopt_at and rnd() < new_share:
                return MODEL_NEW
            return other if rnd() < other_share else base

        return model_at

    def _ordinary_opening(self, rnd, wrapper: str | None, homework_share: float = 0.0):
        corpus = _corpus()
        first, snippets = corpus.first_turn, corpus.follow_up

        def opening() -> tuple[str, bool]:
            if homework_share and rnd() < homework_share:
                return _pick(rnd, _HOMEWORK_FORMS).format(p=_math_problem(rnd)), True
            question = _pick(rnd, first)
            if wrapper is None:
                return question, False
            return wrapper.format(
                q=question, s1=_pick(rnd, snippets)[:160], s2=_pick(rnd, snippets)[:160], s3=_pick(rnd, snippets)[:160]
            ), False

        def follow_up(homework: bool) -> str:
            return _pick(rnd, _HOMEWORK_FOLLOW_UPS) if homework else _pick(rnd, snippets)

        return opening, follow_up

    @staticmethod
    def _home_client(rnd, client: tuple[str, str], ip_logged: bool, roaming: float = 0.1):
        ua, _ = client
        home = _ip(rnd)

        def client_at() -> tuple[str | None, str]:
            if not ip_logged:
                return None, ua
            return (home if rnd() >= roaming else _ip(rnd)), ua

        return client_at

    # -- benign families -----------------------------------------------------------------

    def _ordinary_chat(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "ordinary_chat",
            sessions_per_day_median=0.8 + 1.6 * fr(),
            turns_mean=1.8 + 1.2 * fr(),
            new_model_adopters=0.08 + 0.17 * fr(),
            template_wrapper_share=0.06 + 0.14 * fr(),
            prompt_not_logged_share=0.03 + 0.07 * fr(),
            ip_not_logged_share=0.02 + 0.05 * fr(),
        )
        wrapper_hashes = [(_fingerprint(name)[:16], text) for name, text in _WRAPPERS]
        for index in range(count):
            rng = _rng(s.seed, "ordinary_chat", index)
            rnd = rng.random
            ua, tls = _weighted(rnd, _CLIENT_WEIGHTS)
            account = self._new_account(
                rng,
                "ordinary_chat",
                created_at=self._benign_created_at(rnd),
                signup_channel=_weighted(
                    rnd, (("web", 0.6), ("google_oauth", 0.25), ("github_oauth", 0.1), ("mobile_app", 0.05))
                ),
                payment_fingerprint=("pm_" + _hex(rng, 16)) if rnd() < 0.7 else None,
                tls_fingerprint=_TLS[tls] if rnd() > 0.03 else None,
            )
            wrapper = _pick(rnd, wrapper_hashes) if rnd() < p["template_wrapper_share"] else None
            self._add_chat_user(
                account,
                rng,
                phases=[(s.start, _lognormal(rnd, p["sessions_per_day_median"], 0.8))],
                rhythm=_HUMAN,
                tz=_weighted(rnd, _TIMEZONES),
                client=(ua, tls),
                wrapper=wrapper,
                turns_mean=max(1.0, _lognormal(rnd, p["turns_mean"], 0.3)),
                prompt_logged=rnd() >= p["prompt_not_logged_share"],
                ip_logged=rnd() >= p["ip_not_logged_share"],
                model_at=self._model_chooser(
                    rnd,
                    MODEL_CURRENT if rnd() < 0.7 else MODEL_SMALL,
                    self._adoption(rnd, p["new_model_adopters"], 12.0),
                    0.3 + 0.6 * rnd(),
                ),
            )

    def _add_chat_user(
        self,
        account: _Account,
        rng: random.Random,
        *,
        phases,
        rhythm,
        tz,
        client,
        wrapper,
        turns_mean,
        prompt_logged,
        ip_logged,
        model_at,
        homework_share=0.0,
        client_at=None,
        opening=None,
    ) -> None:
        s = self.scenario

        def stream() -> Iterator[dict]:
            rnd = rng.random
            emit = _Emitter(account, rnd, ("key_" + _hex(rng, 12),), omission_rate=0.02, prompt_logged=prompt_logged)
            default_opening, follow_up = self._ordinary_opening(rnd, wrapper and wrapper[1], homework_share)
            user = _ChatUser(
                emit,
                rnd,
                model_at=model_at,
                opening=opening or default_opening,
                follow_up=follow_up,
                turns_mean=turns_mean,
                max_tokens=_pick(rnd, (None, None, None, 1024, 2048, 4096)),
                temperature=_pick(rnd, (None, None, 0.7, 1.0, 0.2)),
                system_prompt_hash=wrapper and wrapper[0],
                client=client_at or self._home_client(rnd, client, ip_logged),
            )
            starts = _session_starts(rnd, phases, s.end, rhythm, tz, conversations_per_session=1.0 + 1.5 * rnd())
            return _interleave(starts, user.conversation, s.end)

        account.stream = stream

    def _coding_agent(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "coding_agent",
            requests_per_day_median=500 + 1000 * fr(),
            tool_loop_turns_mean=8 + 10 * fr(),
            late_night_share=0.1 + 0.25 * fr(),
            new_model_adopters=0.3 + 0.5 * fr(),
        )
        tools = [(f"agent-cli/{v}", _fingerprint(f"coding-agent-{v}")[:16]) for v in ("1.4.2", "2.0.1", "0.9.8")]
        team_left, org, payment = 0, None, None
        for index in range(count):
            rng = _rng(s.seed, "coding_agent", index)
            rnd = rng.random
            if team_left == 0:  # developers of one company share an org and its card
                team_left, org, payment = _between(rnd, 1, 6), "org_" + _hex(rng, 12), "pm_" + _hex(rng, 16)
            team_left -= 1
            ua_name, system_hash = _pick(rnd, tools)
            ua = f"{ua_name} {_pick(rnd, ('node/20.11.1', 'node/22.3.0', 'python/3.12'))}"
            account = self._new_account(
                rng,
                "coding_agent",
                created_at=self._benign_created_at(rnd, 0.02),
                signup_channel=_weighted(rnd, (("github_oauth", 0.5), ("web", 0.3), ("enterprise_sso", 0.2))),
                org_id=org,
                payment_fingerprint=payment,
                tls_fingerprint=_TLS["node" if "node" in ua else "python"],
            )
            requests_per_day = _lognormal(rnd, p["requests_per_day_median"], 0.6)
            turns_mean = max(3.0, _lognormal(rnd, p["tool_loop_turns_mean"], 0.3))
            adopt_at = self._adoption(rnd, p["new_model_adopters"], 4.0)
            rhythm = _working_rhythm(p["late_night_share"] * 2 * rnd())
            tz = _weighted(rnd, _TIMEZONES)
            account.stream = self._coding_stream(
                account, rng, requests_per_day / turns_mean, turns_mean, adopt_at, rhythm, tz, ua, system_hash
            )

    def _coding_stream(self, account, rng, tasks_per_day, turns_mean, adopt_at, rhythm, tz, ua, system_hash):
        s = self.scenario

        def stream() -> Iterator[dict]:
            rnd = rng.random
            emit = _Emitter(
                account,
                rnd,
                tuple("key_" + _hex(rng, 12) for _ in range(_between(rnd, 1, 3))),
                error_rate=0.02,
                omission_rate=0.005,
            )
            corpus = _corpus()
            coding, pairs, tool_results = corpus.coding, corpus.code_tokens, _tool_results()
            ips = (_ip(rnd), _ip(rnd, _DATACENTER_OCTETS))  # laptop, and a cloud dev box
            base_context = _between(rnd, 2000, 9000)
            counter = 0

            def task(t: float) -> Iterator[dict]:
                nonlocal counter
                counter += 1
                conversation_id = f"conv_{account.account_id[5:]}_{counter:x}"
                model = MODEL_NEW if t >= adopt_at and rnd() < 0.85 else MODEL_CURRENT
                ip = _pick(rnd, ips)
                turns = 1 + int(_exponential(rnd, turns_mean - 1))
                context = base_context + _between(rnd, 0, 3000)
                for turn in range(turns):
                    if turn == 0:
                        prompt = (
                            _pick(rnd, coding)
                            if rnd() < 0.5
                            else _pick(rnd, _DEV_TASKS).format(m=_pick(rnd, _MODULES), f=_pick(rnd, _FUNCS))
                        )
                    else:
                        prompt = _pick(rnd, tool_results)
                    _, trace_output = pairs[int(rnd() * len(pairs))]
                    last = turn == turns - 1
                    wanted = trace_output * _between(rnd, 3, 12) if last else 20 + trace_output * _between(rnd, 1, 6)
                    record = emit(
                        t,
                        model,
                        context,
                        wanted,
                        8192,
                        0.0 if rnd() < 0.7 else None,
                        "stop" if last else "tool_calls",
                        prompt,
                        ip,
                        ua,
                        conversation_id,
                        turn,
                        system_hash,
                    )
                    yield record
                    # tool output joins the context, until the agent compacts it near the window limit
                    context += record["output_tokens"] + _between(rnd, 50, 2500)
                    if context > 160_000:
                        context = base_context + _between(rnd, 5000, 20000)
                    t += emit.last_latency_s + _lognormal(rnd, 4.0, 0.9)

            tasks_per_session = 4.0
            starts = _session_starts(
                rnd,
                [(s.start, tasks_per_day / tasks_per_session)],
                s.end,
                rhythm,
                tz,
                conversations_per_session=tasks_per_session,
                gap_minutes=3.0,
            )
            return _interleave(starts, task, s.end)

        return stream

    def _enterprise_batch(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "enterprise_batch",
            nightly_requests_median=3000 + 6000 * fr(),
            window_hours_median=1.0 + 2.5 * fr(),
            zero_retention_share=0.15 + 0.3 * fr(),
        )
        for index in range(count):
            rng = _rng(s.seed, "enterprise_batch", index)
            rnd = rng.random
            ua = _pick(rnd, (POPULAR_SDK_USER_AGENT, "openai-python/1.54.4", "openai-node/4.76.0", "okhttp/4.12.0"))
            account = self._new_account(
                rng,
                "enterprise_batch",
                created_at=s.start - _DAY * (60 + rnd() * 900),
                signup_channel=_pick(rnd, ("sales", "enterprise_sso")),
                payment_fingerprint="pm_" + _hex(rng, 16),
                tls_fingerprint=_TLS["node" if "node" in ua else "java" if "okhttp" in ua else "python"],
            )
            job = _pick(rnd, _BATCH_TASKS)
            account.stream = self._batch_stream(
                account,
                rng,
                job,
                ua,
                nightly=_lognormal(rnd, p["nightly_requests_median"], 0.5),
                window_h=max(0.5, _lognormal(rnd, p["window_hours_median"], 0.4)),
                local_start_h=0.5 + 2.5 * rnd(),
                tz=_weighted(rnd, _TIMEZONES),
                prompt_logged=rnd() >= p["zero_retention_share"],
            )

    def _batch_stream(self, account, rng, job, ua, *, nightly, window_h, local_start_h, tz, prompt_logged):
        s = self.scenario
        name, template, (out_low, out_high), max_tokens = job

        def stream() -> Iterator[dict]:
            rnd = rng.random
            emit = _Emitter(account, rnd, ("key_" + _hex(rng, 12),), error_rate=0.004, prompt_logged=prompt_logged)
            operation = "text_completion" if rnd() < 0.3 else "chat"
            system_hash = _hex(rng, 16) if operation == "chat" else None
            ips = tuple(f"{_subnet(rnd)}.{_between(rnd, 2, 250)}" for _ in range(_between(rnd, 1, 3)))
            temperature = _pick(rnd, (0.0, 0.0, 0.2))
            first_day = math.floor((s.start - tz * _HOUR) / _DAY) - 1
            day = first_day
            while True:
                window_start = day * _DAY + (local_start_h - tz) * _HOUR + (rnd() - 0.5) * 1200
                if window_start >= s.end:
                    return
                window_end = window_start + window_h * _HOUR
                gap = window_h * _HOUR / max(1.0, nightly * (0.8 + 0.4 * rnd()))
                t = window_start
                while True:
                    t += _exponential(rnd, gap)
                    if t >= window_end or t >= s.end:
                        break
                    if t < s.start:
                        continue
                    prompt = template.format(x=_batch_input(rnd, name))
                    wanted = _between(rnd, out_low, out_high)
                    yield emit(
                        t,
                        MODEL_SMALL if max_tokens < 64 else MODEL_CURRENT,
                        len(prompt) // 4 + 40,
                        wanted,
                        max_tokens,
                        temperature,
                        "stop",
                        prompt,
                        _pick(rnd, ips),
                        ua,
                        system_prompt_hash=system_hash,
                        operation=operation,
                    )
                day += 1

        return stream

    def _eval_pipeline(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "eval_pipeline",
            benchmark_size_low=200 + int(100 * fr()),
            benchmark_size_high=350 + int(150 * fr()),
            run_every_hours_low=3.0 + 2.0 * fr(),
            run_every_hours_high=6.0 + 6.0 * fr(),
            reasoning_share=0.3 + 0.4 * fr(),
        )
        for index in range(count):
            rng = _rng(s.seed, "eval_pipeline", index)
            rnd = rng.random
            account = self._new_account(
                rng,
                "eval_pipeline",
                created_at=s.start - _DAY * (30 + rnd() * 700),
                signup_channel=_pick(rnd, ("web", "enterprise_sso", "github_oauth")),
                payment_fingerprint="pm_" + _hex(rng, 16),
                tls_fingerprint=_TLS["python"],
            )
            size = _between(rnd, p["benchmark_size_low"], p["benchmark_size_high"])
            period = p["run_every_hours_low"] + rnd() * (p["run_every_hours_high"] - p["run_every_hours_low"])
            account.stream = self._eval_stream(account, rng, size, period * _HOUR, p["reasoning_share"])

    def _eval_stream(self, account, rng, size, period, reasoning_share):
        s = self.scenario

        def stream() -> Iterator[dict]:
            rnd = rng.random
            emit = _Emitter(account, rnd, ("key_" + _hex(rng, 12),), error_rate=0.005)
            ua = _pick(
                rnd, ("lm-eval-harness/0.4.5 " + POPULAR_SDK_USER_AGENT, POPULAR_SDK_USER_AGENT, "python-httpx/0.27.2")
            )
            ip = f"{_subnet(rnd)}.{_between(rnd, 2, 250)}"
            max_tokens = _pick(rnd, (1024, 2048, 2048, 4096))
            benchmark = []  # (prompt, output tokens on the current model): fixed for every run
            for _ in range(size):
                reasoning = rnd() < reasoning_share
                forms = [f for f in _EVAL_FORMS if f[1] == reasoning]
                a, b = _between(rnd, 11, 999), _between(rnd, 11, 999)
                prompt = _pick(rnd, forms)[0].format(
                    m=_math_problem(rnd),
                    a=a,
                    b=b,
                    c=a * b,
                    p=a * b + 10,
                    q=a * b - 9,
                    r=a * (b + 1),
                    t=_pick(rnd, _CODING_TASKS).format(n=_between(rnd, 10, 999), k=_between(rnd, 2, 9)),
                )
                output = int(_lognormal(rnd, 700, 0.5)) if reasoning else _between(rnd, 1, 160)
                benchmark.append((prompt, len(prompt) // 4 + 12, output))
            speedup = {MODEL_CURRENT: 1.0, MODEL_SMALL: 0.8, MODEL_NEW: 1.15}
            concurrency_gap = 0.2 + 1.0 * rnd()
            runs = [s.start + rnd() * period + k * period for k in range(int(s.duration_hours * _HOUR / period) + 2)]
            release_run = s.release + (0.5 + 2.5 * rnd()) * _HOUR
            runs = sorted(runs + [release_run])
            adds_new_model = rnd() < 0.7
            t_free = s.start
            for scheduled in runs:
                t = max(scheduled, t_free)
                if t >= s.end:
                    return
                if scheduled == release_run:
                    models = (MODEL_NEW,)
                elif t >= release_run and adds_new_model:
                    models = (MODEL_CURRENT, MODEL_NEW)
                else:
                    models = (MODEL_CURRENT, MODEL_SMALL)
                for model in models:
                    for prompt, input_tokens, output in benchmark:
                        if t >= s.end:
                            return
                        yield emit(
                            t,
                            model,
                            input_tokens,
                            int(output * speedup[model]),
                            max_tokens,
                            0.0,
                            "stop",
                            prompt,
                            ip,
                            ua,
                        )
                        t += _exponential(rnd, concurrency_gap)
                t_free = t

        return stream

    def _shared_nat(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "shared_nat",
            egress_ips=1 + int(4 * fr()),
            homework_share_max=0.2 + 0.4 * fr(),
            sessions_per_day_median=1.5 + 2.0 * fr(),
            university_card_share=0.2 + 0.3 * fr(),
        )
        egress = tuple(f"{_subnet(fr, _RESIDENTIAL_OCTETS)}.{_between(fr, 2, 250)}" for _ in range(p["egress_ips"]))
        tz = _weighted(fr, _TIMEZONES)
        university_org, university_card = "org_" + _hex(family_rng, 12), "pm_" + _hex(family_rng, 16)
        semester_start = s.start - _DAY * (20 + 40 * fr())
        for index in range(count):
            rng = _rng(s.seed, "shared_nat", index)
            rnd = rng.random
            ua, tls = _pick(rnd, _BROWSER_CLIENTS) if rnd() < 0.6 else _weighted(rnd, _CLIENT_WEIGHTS)
            cohort = rnd() < 0.7  # most students signed up in the first week of the semester
            card = rnd()
            account = self._new_account(
                rng,
                "shared_nat",
                created_at=semester_start + rnd() * 7 * _DAY if cohort else s.start - _DAY * (100 + rnd() * 800),
                signup_channel=_pick(rnd, ("edu_sso", "edu_sso", "google_oauth", "web")),
                org_id=university_org if card < p["university_card_share"] else None,
                payment_fingerprint=(
                    university_card
                    if card < p["university_card_share"]
                    else "pm_" + _hex(rng, 16)
                    if card > 0.8
                    else None
                ),
                tls_fingerprint=_TLS[tls],
            )
            self._add_chat_user(
                account,
                rng,
                phases=[(s.start, _lognormal(rnd, p["sessions_per_day_median"], 0.7))],
                rhythm=_STUDENT,
                tz=tz,
                client=(ua, tls),
                wrapper=None,
                turns_mean=max(1.0, _lognormal(rnd, 2.6, 0.3)),
                prompt_logged=True,
                ip_logged=True,
                homework_share=rnd() * p["homework_share_max"],
                model_at=self._model_chooser(rnd, MODEL_CURRENT, self._adoption(rnd, 0.2, 12.0), 0.5),
                client_at=lambda rnd=rnd, ua=ua: (_pick(rnd, egress), ua),
            )

    def _launch_crowd(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "launch_crowd",
            launch_boost=4.0 + 6.0 * fr(),
            launch_day_hours=18.0 + 12.0 * fr(),
            new_model_share=0.8 + 0.15 * fr(),
            new_signup_share=0.1 + 0.2 * fr(),
            test_prompt_share=0.2 + 0.3 * fr(),
        )
        corpus = _corpus()
        for index in range(count):
            rng = _rng(s.seed, "launch_crowd", index)
            rnd = rng.random
            ua, tls = _weighted(rnd, _CLIENT_WEIGHTS)
            launch = s.release + _exponential(rnd, 1.5 * _HOUR)
            new_signup = rnd() < p["new_signup_share"]
            account = self._new_account(
                rng,
                "launch_crowd",
                created_at=launch - rnd() * _HOUR if new_signup else self._benign_created_at(rnd, 0.0),
                signup_channel=_weighted(rnd, (("web", 0.5), ("google_oauth", 0.3), ("github_oauth", 0.2))),
                payment_fingerprint="pm_" + _hex(rng, 16) if rnd() < 0.8 else None,
                tls_fingerprint=_TLS[tls],
            )
            usual = _lognormal(rnd, 2.0, 0.6)
            launch_end = launch + p["launch_day_hours"] * _HOUR
            phases = [
                (s.start, 0.0 if new_signup else usual),
                (launch, usual * p["launch_boost"]),
                (launch_end, usual * 1.5),
            ]

            def model_at(t, rnd=rnd, launch=launch, launch_end=launch_end):
                if t >= launch and rnd() < (p["new_model_share"] if t < launch_end else 0.6):
                    return MODEL_NEW
                return MODEL_CURRENT

            def opening(rnd=rnd):
                if rnd() < p["test_prompt_share"]:
                    form = _pick(rnd, _LAUNCH_TESTS)
                    return form.format(m=_math_problem(rnd), c=_coding_task(rnd), t=_pick(rnd, _TOPICS)), False
                return _pick(rnd, corpus.first_turn), False

            self._add_chat_user(
                account,
                rng,
                phases=phases,
                rhythm=_HUMAN,
                tz=_weighted(rnd, _TIMEZONES),
                client=(ua, tls),
                wrapper=None,
                turns_mean=max(1.0, _lognormal(rnd, 2.5, 0.3)),
                prompt_logged=True,
                ip_logged=True,
                model_at=model_at,
                opening=opening,
            )

    def _reseller(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "reseller",
            conversations_per_day_median=700 + 1000 * fr(),
            end_user_agents=20 + int(60 * fr()),
            new_model_share=0.3 + 0.3 * fr(),
        )
        corpus = _corpus()
        for index in range(count):
            rng = _rng(s.seed, "reseller", index)
            rnd = rng.random
            account = self._new_account(
                rng,
                "reseller",
                created_at=s.start - _DAY * (90 + rnd() * 700),
                signup_channel=_pick(rnd, ("partner", "web")),
                payment_fingerprint="pm_" + _hex(rng, 16),
                tls_fingerprint=_TLS[_pick(rnd, ("python", "node", "go"))],
            )
            per_day = _lognormal(rnd, p["conversations_per_day_median"], 0.4)
            account.stream = self._reseller_stream(account, rng, per_day, p, corpus)

    def _reseller_stream(self, account, rng, per_day, p, corpus):
        s = self.scenario

        def stream() -> Iterator[dict]:
            rnd = rng.random
            emit = _Emitter(
                account, rnd, tuple("key_" + _hex(rng, 12) for _ in range(_between(rnd, 2, 6))), omission_rate=0.01
            )
            uas = tuple(
                _weighted(rnd, _CLIENT_WEIGHTS)[0] + f" app/{_between(rnd, 1, 9)}.{_between(rnd, 0, 30)}"
                for _ in range(p["end_user_agents"])
            )
            subnet = _subnet(rnd)
            servers = tuple(f"{subnet}.{_between(rnd, 2, 250)}" for _ in range(_between(rnd, 2, 8)))
            personas = tuple(_hex(rng, 16) for _ in range(_between(rnd, 3, 10)))
            adopt_at = s.release + _exponential(rnd, 2 * _HOUR)

            def conversation(t: float) -> Iterator[dict]:
                ua = _pick(rnd, uas)
                user = _ChatUser(
                    emit,
                    rnd,
                    model_at=self._model_chooser(rnd, MODEL_CURRENT, adopt_at, p["new_model_share"], 0.3),
                    opening=lambda: (_pick(rnd, corpus.first_turn), False),
                    follow_up=lambda _: _pick(rnd, corpus.follow_up),
                    turns_mean=max(1.0, _lognormal(rnd, 2.8, 0.3)),
                    max_tokens=_pick(rnd, (None, 2048)),
                    temperature=_pick(rnd, (0.7, 0.8, 1.0)),
                    system_prompt_hash=_pick(rnd, personas),
                    client=lambda: (_pick(rnd, servers), ua),
                )
                user.conversations = int(rnd() * 2**40)  # end users' conversation ids, unordered
                return user.conversation(t)

            starts = _session_starts(rnd, [(s.start, per_day)], s.end, _WORLD, 0.0, conversations_per_session=1.0)
            return _interleave(starts, conversation, s.end)

        return stream

    # -- attack families -----------------------------------------------------------------

    def _blatant_extractor(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "blatant_extractor",
            requests_per_hour_low=300 + 300 * fr(),
            requests_per_hour_high=1500 + 1500 * fr(),
            length_hit_median=0.8 + 0.4 * fr(),
        )
        for index in range(count):
            rng = _rng(s.seed, "blatant_extractor", index)
            rnd = rng.random
            begin = s.campaign_start + rnd() * 2 * _HOUR
            campaign = self._campaign(family_rng, "blatant_extractor", begin, 1)
            ua = _pick(rnd, ("python-requests/2.32.3", POPULAR_SDK_USER_AGENT, "python-httpx/0.27.2"))
            account = self._new_account(
                rng,
                "blatant_extractor",
                campaign_id=campaign,
                created_at=begin - (1 + 71 * rnd()) * _HOUR,
                signup_channel=_pick(rnd, ("web", "google_oauth")),
                payment_fingerprint="pm_" + _hex(rng, 16),
                tls_fingerprint=_TLS["python"],
            )
            rate = p["requests_per_hour_low"] + rnd() * (p["requests_per_hour_high"] - p["requests_per_hour_low"])
            account.stream = self._blatant_stream(account, rng, begin, 3600.0 / rate, ua, p["length_hit_median"])

    def _blatant_stream(self, account, rng, begin, period, ua, length_hit):
        s = self.scenario

        def stream() -> Iterator[dict]:
            rnd = rng.random
            emit = _Emitter(account, rnd, ("key_" + _hex(rng, 12),), error_rate=0.05 + 0.1 * rnd(), errors=(429,))
            template = _pick(rnd, _EXTRACTION_TEMPLATES)
            content = _CONTENT[_pick(rnd, tuple(_CONTENT))]
            max_tokens = _pick(rnd, (4096, 8192, 16384))
            ip = _ip(rnd, _DATACENTER_OCTETS)
            t = begin
            while t < s.end:
                prompt = template.replace("{content}", content(rnd))
                wanted = int(_lognormal(rnd, length_hit * max_tokens, 0.35))
                yield emit(t, MODEL_CURRENT, len(prompt) // 4 + 8, wanted, max_tokens, 0.7, "stop", prompt, ip, ua)
                t += period + (rnd() - 0.5) * 0.004  # scripted: only network jitter

        return stream

    def _low_and_slow(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "low_and_slow",
            exchanges_per_account_day=24.0 + 4.0 * fr(),
            shifts_per_day=_between(fr, 2, 4),
            accounts_per_payment=_between(fr, 20, 50),
            templates=_between(fr, 3, 6),
            proxy_ranges=_between(fr, 2, 5),
            creation_batch_size=_between(fr, 50, 200),
            length_hit_median=0.8 + 0.4 * fr(),
            common_tls=fr() < 0.5,
        )
        campaign = self._campaign(family_rng, "low_and_slow", s.campaign_start, count)
        templates = tuple(family_rng.sample(_EXTRACTION_TEMPLATES, p["templates"]))
        focus = tuple(family_rng.sample(sorted(_CONTENT), 2))
        proxies = tuple(_subnet(fr) for _ in range(p["proxy_ranges"]))
        ua = _pick(fr, (POPULAR_SDK_USER_AGENT, "python-httpx/0.27.2", "openai-python/1.54.4"))
        tls = _TLS["python"] if p["common_tls"] else _fingerprint(f"custom-client-{_hex(family_rng, 8)}")
        payments = tuple("pm_" + _hex(family_rng, 16) for _ in range(math.ceil(count / p["accounts_per_payment"])))
        max_tokens = _pick(fr, (4096, 8192))
        shift_offset = fr() * 24 / p["shifts_per_day"] * _HOUR
        batch_created = 0.0
        for index in range(count):
            rng = _rng(s.seed, "low_and_slow", index)
            rnd = rng.random
            if index % p["creation_batch_size"] == 0:  # accounts were opened in batches shortly before
                batch_created = s.campaign_start - (1 + 6 * fr()) * _DAY
            account = self._new_account(
                rng,
                "low_and_slow",
                campaign_id=campaign,
                created_at=batch_created + rnd() * 45 * 60,
                signup_channel="web",
                payment_fingerprint=payments[index // p["accounts_per_payment"]],
                tls_fingerprint=tls,
            )
            account.stream = self._low_and_slow_stream(
                account,
                rng,
                group=index % p["shifts_per_day"],
                p=p,
                shift_offset=shift_offset,
                templates=templates,
                focus=focus,
                proxies=proxies,
                ua=ua,
                max_tokens=max_tokens,
            )

    def _low_and_slow_stream(self, account, rng, *, group, p, shift_offset, templates, focus, proxies, ua, max_tokens):
        s = self.scenario
        shifts = p["shifts_per_day"]
        shift_length = _DAY / shifts

        def stream() -> Iterator[dict]:
            rnd = rng.random
            emit = _Emitter(account, rnd, ("key_" + _hex(rng, 12),), error_rate=0.01, errors=(429, 500))
            day = s.start + math.floor((s.campaign_start - s.start) / _DAY) * _DAY - _DAY
            while day < s.end:
                shift = (group + int((day - s.start) // _DAY)) % shifts  # groups rotate through the shifts daily
                window_start = max(day + shift_offset + shift * shift_length + rnd() * 300, s.campaign_start)
                window_end = min(day + shift_offset + (shift + 1) * shift_length, s.end)
                gap = shift_length / p["exchanges_per_account_day"]
                t = window_start
                while True:
                    t += _exponential(rnd, gap)
                    if t >= window_end:
                        break
                    content = _CONTENT[_pick(rnd, focus)](rnd)
                    prompt = _pick(rnd, templates).replace("{content}", content)
                    ip = f"{_pick(rnd, proxies)}.{1 + int(rnd() * 254)}"
                    wanted = int(_lognormal(rnd, p["length_hit_median"] * max_tokens, 0.4))
                    yield emit(
                        t,
                        MODEL_CURRENT,
                        len(prompt) // 4 + 8,
                        wanted,
                        max_tokens,
                        0.6,
                        "stop",
                        prompt,
                        ip,
                        ua,
                        f"conv_{account.account_id[5:]}_{emit.seq + 1:x}",
                        0,
                    )
                day += _DAY

        return stream

    def _evasive(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "evasive",
            requests_per_day_median=30.0 + 40.0 * fr(),
            accounts_per_payment=_between(fr, 70, 130),
            shared_payment_share=0.5 + 0.4 * fr(),
            ramp_hours=6.0 + 12.0 * fr(),
            length_hit_median=0.75 + 0.4 * fr(),
        )
        campaign = self._campaign(family_rng, "evasive", s.campaign_start, count)
        focus = tuple(family_rng.sample(("math", "coding"), 1)) + (("agentic",) if fr() < 0.3 else ())
        tls = _fingerprint(f"custom-client-{_hex(family_rng, 8)}")
        operator_zones = tuple(family_rng.sample([tz for tz, _ in _TIMEZONES], 2))
        payments = tuple("pm_" + _hex(family_rng, 16) for _ in range(max(1, round(count / p["accounts_per_payment"]))))
        for index in range(count):
            rng = _rng(s.seed, "evasive", index)
            rnd = rng.random
            account = self._new_account(
                rng,
                "evasive",
                campaign_id=campaign,
                created_at=s.campaign_start - (3 + 37 * rnd()) * _DAY,
                signup_channel=_weighted(rnd, (("web", 0.5), ("google_oauth", 0.35), ("mobile_app", 0.15))),
                payment_fingerprint=_pick(rnd, payments)
                if rnd() < p["shared_payment_share"]
                else "pm_" + _hex(rng, 16),
                tls_fingerprint=tls,
            )
            account.stream = self._evasive_stream(account, rng, p, focus, operator_zones)

    def _evasive_stream(self, account, rng, p, focus, zones):
        s = self.scenario

        def stream() -> Iterator[dict]:
            rnd = rng.random
            emit = _Emitter(account, rnd, ("key_" + _hex(rng, 12),))
            asks = tuple(rng.sample(_EVASIVE_ASKS, 4))
            uas = tuple(_weighted(rnd, _CLIENT_WEIGHTS)[0] for _ in range(_between(rnd, 1, 3)))
            ip = _ip(rnd)
            tz = _pick(rnd, zones) + _pick(rnd, (-1, 0, 0, 1))
            per_day = _lognormal(rnd, p["requests_per_day_median"], 0.4)
            burst = 2.0 + 6.0 * rnd()
            max_tokens = _pick(rnd, (None, 4096, 8192))
            cap = max_tokens or 8192
            t = s.campaign_start + rnd() * p["ramp_hours"] * _HOUR
            while True:
                t = _HUMAN.next_after(rnd, t, per_day / burst, tz, s.end)
                if t >= s.end:
                    return
                while t < s.end:
                    if rnd() < 0.02:  # residential IPs change now and then
                        ip = _ip(rnd)
                    prompt = _evasive_prompt(rnd, asks, _CONTENT[_pick(rnd, focus)](rnd))
                    wanted = int(_lognormal(rnd, p["length_hit_median"] * cap, 0.45))
                    if max_tokens is None:
                        wanted = min(wanted, 16000)
                    yield emit(
                        t,
                        MODEL_CURRENT,
                        len(prompt) // 4 + 8,
                        wanted,
                        max_tokens,
                        _pick(rnd, (None, 0.7, 1.0)),
                        "stop",
                        prompt,
                        ip,
                        _pick(rnd, uas),
                        f"conv_{account.account_id[5:]}_{emit.seq + 1:x}",
                        0,
                    )
                    t += emit.last_latency_s + _exponential(rnd, 90.0)
                    if rnd() * burst < 1.0:
                        break

        return stream

    def _model_pivot(self, family_rng: random.Random, count: int) -> None:
        s = self.scenario
        fr = family_rng.random
        p = self._record_parameters(
            "model_pivot",
            requests_per_day_median=20.0 + 40.0 * fr(),
            switch_delay_hours=0.5 + 7.5 * fr(),
            new_model_share=0.4 + 0.2 * fr(),
            accounts_per_payment=_between(fr, 20, 60),
            proxy_ranges=_between(fr, 2, 4),
            length_hit_median=0.8 + 0.4 * fr(),
        )
        campaign = self._campaign(family_rng, "model_pivot", s.campaign_start, count)
        templates = tuple(family_rng.sample(_EXTRACTION_TEMPLATES, _between(fr, 2, 4)))
        focus = ("agentic", "coding") if fr() < 0.5 else ("math", "coding")
        ranges = tuple(_subnet(fr) for _ in range(p["proxy_ranges"]))
        uas = tuple(_pick(fr, (POPULAR_SDK_USER_AGENT, "openai-node/4.76.0", "python-httpx/0.27.2")) for _ in range(2))
        tls = _fingerprint(f"custom-client-{_hex(family_rng, 8)}")
        payments = tuple("pm_" + _hex(family_rng, 16) for _ in range(math.ceil(count / p["accounts_per_payment"])))
        batches = [s.campaign_start - (7 + 14 * fr()) * _DAY for _ in range(_between(fr, 3, 8))]
        switch = s.release + p["switch_delay_hours"] * _HOUR
        for index in range(count):
            rng = _rng(s.seed, "model_pivot", index)
            rnd = rng.random
            account = self._new_account(
                rng,
                "model_pivot",
                campaign_id=campaign,
                created_at=_pick(rnd, batches) + rnd() * 3 * _HOUR,
                signup_channel=_pick(rnd, ("web", "google_oauth")),
                payment_fingerprint=payments[index // p["accounts_per_payment"]],
                tls_fingerprint=tls,
            )
            account.stream = self._pivot_stream(account, rng, p, switch + rnd() * _HOUR, templates, focus, ranges, uas)

    def _pivot_stream(self, account, rng, p, switch, templates, focus, ranges, uas):
        s = self.scenario

        def stream() -> Iterator[dict]:
            rnd = rng.random
            emit = _Emitter(account, rnd, ("key_" + _hex(rng, 12),), errors=(429, 500))
            ip = f"{_pick(rnd, ranges)}.{_between(rnd, 2, 250)}"
            ua = _pick(rnd, uas)
            per_day = _lognormal(rnd, p["requests_per_day_median"], 0.3)
            max_tokens = _pick(rnd, (4096, 8192))
            t = s.campaign_start + rnd() * _HOUR
            while True:
                t = _FLAT.next_after(rnd, t, per_day, 0.0, s.end)
                if t >= s.end:
                    return
                model = MODEL_NEW if t >= switch and rnd() < p["new_model_share"] else MODEL_CURRENT
                prompt = _pick(rnd, templates).replace("{content}", _CONTENT[_pick(rnd, focus)](rnd))
                wanted = int(_lognormal(rnd, p["length_hit_median"] * max_tokens, 0.4))
                yield emit(t, model, len(prompt) // 4 + 8, wanted, max_tokens, 0.7, "stop", prompt, ip, ua)

        return stream

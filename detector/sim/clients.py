"""Who sends the requests and from where: client stacks, egress networks, and the rhythms of the day.

Clients are user agents with the TLS fingerprint of their stack. One SDK version dominates, as it
does on real APIs, so the *popular SDK* is what thousands of ordinary customers and any attacker
hiding among them send alike; browsers change per person; a *custom client* is one stack that only
its operator uses. Egress is a datacenter range, a residential address (home users, residential
proxy pools) or a shared NAT (a campus, an office, a proxy exit that many accounts sit behind).
Rhythms are activity by local hour of the week; arrivals follow them by thinning a Poisson process.

>>> from detector.sim.sampling import seeded, weighted
>>> rnd = seeded(1, "clients").random
>>> ua, tls = weighted(rnd, CLIENT_WEIGHTS)
>>> TLS[tls] == fingerprint(TLS_STACKS[tls])
True
"""

from __future__ import annotations

import math

from detector.sim.sampling import DAY, HOUR, fingerprint, pick

TLS_STACKS = {
    "python": "python3.11-openssl3.0",
    "python-old": "python3.9-openssl1.1",
    "node": "node20-boringssl",
    "go": "go1.22-crypto-tls",
    "curl": "curl8-openssl3",
    "java": "okhttp4-conscrypt",
    "chrome": "chrome131",
    "firefox": "firefox133",
    "safari": "safari18",
}
TLS = {stack: fingerprint(name) for stack, name in TLS_STACKS.items()}

POPULAR_SDK_USER_AGENT = "openai-python/1.55.3"

# (user agent, tls stack, weight): one SDK version dominates, as it does on real APIs.
CLIENTS = (
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
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "chrome",
        0.12,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "chrome",
        0.06,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
        "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "safari",
        0.04,
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "firefox", 0.03),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) "
        "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "safari",
        0.02,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "chrome",
        0.01,
    ),
)
CLIENT_WEIGHTS = tuple(((agent, stack), weight) for agent, stack, weight in CLIENTS)
BROWSER_CLIENTS = tuple((agent, stack) for agent, stack, _ in CLIENTS if agent.startswith("Mozilla"))

# First octets of ordinary public address space (no private, loopback, multicast or reserved).
RESIDENTIAL_OCTETS = (
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
DATACENTER_OCTETS = (3, 13, 18, 20, 34, 35, 44, 45, 52, 54, 104, 107, 134, 137, 139, 143, 146, 157, 159, 167, 185, 194)


def address(rnd, octets=RESIDENTIAL_OCTETS) -> str:
    """One public IPv4 address whose first octet is drawn from ``octets``."""
    return f"{pick(rnd, octets)}.{int(rnd() * 256)}.{int(rnd() * 256)}.{1 + int(rnd() * 254)}"


def subnet(rnd, octets=DATACENTER_OCTETS) -> str:
    """A /24 prefix ("a.b.c"): hosts of one range share it."""
    return f"{pick(rnd, octets)}.{int(rnd() * 256)}.{int(rnd() * 256)}"


# (UTC offset in hours, share of users)
TIMEZONES = (
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


def _by_hour(weights: str) -> tuple[float, ...]:
    """Relative activity by local hour, 00..23, from 24 numbers."""
    return tuple(float(weight) for weight in weights.split())


# Relative activity by local hour, 00..23.
HUMAN_DAY = _by_hour(
    "0.10 0.06 0.04 0.03 0.03 0.05 0.12 0.30 0.55 0.80 0.95 1.0"
    " 0.85 0.90 1.0 0.95 0.85 0.70 0.60 0.62 0.68 0.60 0.40 0.20"
)
STUDENT_DAY = _by_hour(
    "0.35 0.25 0.12 0.06 0.04 0.03 0.04 0.10 0.30 0.55 0.75 0.85"
    " 0.80 0.85 0.90 0.90 0.85 0.75 0.70 0.80 0.95 1.0 0.85 0.60"
)
WORK_DAY = _by_hour(
    "0.08 0.05 0.03 0.02 0.02 0.03 0.06 0.20 0.55 0.90 1.0 1.0"
    " 0.70 0.90 1.0 1.0 0.95 0.75 0.45 0.30 0.30 0.28 0.22 0.14"
)
FLAT_DAY = _by_hour(
    "0.85 0.85 0.80 0.80 0.80 0.85 0.90 0.95 1.0 1.0 1.0 1.0 1.0 1.0 1.0 1.0 1.0 1.0 0.95 0.95 0.95 0.90 0.90 0.85"
)


class Rhythm:
    """Activity by local hour of the week; arrivals follow it by thinning a Poisson process."""

    __slots__ = ("weights", "mean")

    def __init__(self, day: tuple[float, ...], weekend: float = 1.0):
        week = [day[hour % 24] * (weekend if hour >= 120 else 1.0) for hour in range(168)]
        peak = max(week)
        self.weights = tuple(weight / peak for weight in week)
        self.mean = sum(self.weights) / 168

    def next_after(self, rnd, at: float, per_day: float, tz: float, limit: float) -> float:
        """The next arrival after ``t`` for ``per_day`` arrivals on an average day (``limit`` if none before it)."""
        peak = per_day / (DAY * self.mean)
        weights = self.weights
        offset = tz + 72.0  # the epoch began on a Thursday: +72 h puts index 0 at Monday 00:00
        while True:
            at -= math.log(1.0 - rnd()) / peak
            if at >= limit:
                return limit
            if rnd() < weights[int((at / HOUR + offset) % 168.0)]:
                return at


HUMAN = Rhythm(HUMAN_DAY, weekend=0.6)
STUDENT = Rhythm(STUDENT_DAY, weekend=0.8)
FLAT = Rhythm(FLAT_DAY)
WORLD = Rhythm(tuple(sum(share * HUMAN_DAY[int(hour + zone) % 24] for zone, share in TIMEZONES) for hour in range(24)))


def working_rhythm(night_share: float) -> Rhythm:
    """Office hours plus late-night sessions, more of them for some developers than others."""
    day = tuple(weight + (night_share if hour >= 21 or hour <= 2 else 0.0) for hour, weight in enumerate(WORK_DAY))
    return Rhythm(day, weekend=0.35)


def custom_client(campaign_rng) -> tuple[str, str]:
    """A user agent and TLS fingerprint that only one operator's tooling has."""
    tag = format(campaign_rng.getrandbits(32), "08x")
    agent = pick(campaign_rng.random, ("harvest", "dsgen", "collector", "qa-runner", "pipeline", "bulkgen"))
    return f"{agent}/{1 + tag.count('a')}.{int(tag[:2], 16) % 20} (+{tag})", fingerprint(f"custom-client-{tag}")

"""Small seeded random helpers shared by the simulator's modules.

Every stream draws from its own ``random.Random`` seeded by a hash of names (scenario seed, family,
account index), so adding a family or a campaign never shifts the draws of another, and the same
seed gives the same bytes. The helpers take a bound ``rng.random`` (``rnd``): the fast path in
per-record loops.

>>> rnd = seeded(7, "example").random
>>> 3 <= between(rnd, 3, 5) <= 5
True
"""

from __future__ import annotations

import hashlib
import math
import random
from statistics import NormalDist

HOUR = 3600.0
DAY = 86400.0

# Standard normal quantiles: picking one at a random index is several times faster than gauss().
_NORMAL_QUANTILES = tuple(NormalDist().inv_cdf((i + 0.5) / 4096) for i in range(4096))


def seeded(*parts) -> random.Random:
    """A generator seeded by the names in ``parts``: independent of every other stream's draws."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def pick(rnd, seq):
    return seq[int(rnd() * len(seq))]


def between(rnd, low: int, high: int) -> int:
    return low + int(rnd() * (high - low + 1))


def uniform(rnd, low: float, high: float) -> float:
    return low + (high - low) * rnd()


def lognormal(rnd, median: float, sigma: float) -> float:
    return median * math.exp(sigma * _NORMAL_QUANTILES[int(rnd() * 4096)])


def exponential(rnd, mean: float) -> float:
    return -mean * math.log(1.0 - rnd())


def weighted(rnd, choices: tuple) -> object:
    """Pick from ((value, weight), ...) whose weights sum to 1."""
    remaining = rnd()
    for value, weight in choices:
        remaining -= weight
        if remaining < 0:
            return value
    return choices[-1][0]


def hex_id(rng: random.Random, digits: int) -> str:
    return format(rng.getrandbits(4 * digits), f"0{digits}x")


def fingerprint(name: str) -> str:
    """A JA3-style 32-hex TLS fingerprint (or any stable id), the same for the same name."""
    return hashlib.md5(name.encode()).hexdigest()

"""The records every figure is measured on: the simulator's labeled mix, as request.v1 JSON lines.

Benchmarks on records without prompt text or attack traffic would flatter the detector: prompt
analysis and scoring are where its time goes. So the workload is the default scenario's family
mix (ordinary chat, coding agents, batch jobs, NATs, launch crowds, resellers, and the four
attack families), squeezed into as many event-time hours as give the wanted record count.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from detector.sim.scenario import Scenario
from detector.sim.traffic import generate

RECORDS_PER_HOUR = 10_500
"""About how many records an event-time hour of ``Scenario()`` holds (504k records in 48 h at seed 7; the
campaigns are drawn from the seed, so the mix differs from the pre-issue-12 simulator's 586k)."""


def scenario_for(records: int, hours: float | None = None) -> Scenario:
    """The default mix with about ``records`` records (a little more: callers take the head).

    Without ``hours``, the default accounts over as many hours as that takes (6 at least, so that
    campaigns start). With ``hours``, that window and as many accounts as give ``records``.
    """
    if hours is None:
        return Scenario().scaled(1.0, hours=max(6.0, 1.25 * records / RECORDS_PER_HOUR))
    return Scenario().scaled(1.25 * records / (RECORDS_PER_HOUR * hours), hours=hours)


@dataclass
class Workload:
    """Request lines in event-time order, with what the latency figure needs to trace them."""

    lines: list[bytes]
    accounts: list[str]
    """The account of each line (the Kafka key)."""
    timestamps_ms: list[int]
    """The event time of each line in milliseconds: alerts carry it as their ``time``."""
    scenario: Scenario
    seconds: float

    @property
    def records(self) -> int:
        return len(self.lines)

    @property
    def mean_bytes(self) -> float:
        return sum(map(len, self.lines)) / max(1, len(self.lines))

    def head(self, records: int) -> Workload:
        return Workload(
            self.lines[:records], self.accounts[:records], self.timestamps_ms[:records], self.scenario, self.seconds
        )

    def write(self, path: Path) -> Path:
        """As a JSON-lines file, the input of ``detector replay``."""
        with open(path, "wb") as out:
            for start in range(0, len(self.lines), 20_000):
                out.write(b"\n".join(self.lines[start : start + 20_000]) + b"\n")
        return path


def build(records: int, hours: float | None = None) -> Workload:
    """The first ``records`` records of :func:`scenario_for` (fewer if the scenario runs out)."""
    scenario = scenario_for(records, hours)
    started = time.perf_counter()
    lines, accounts, timestamps = [], [], []
    dumps = orjson.dumps
    for record in itertools.islice(generate(scenario), records):
        lines.append(dumps(record))
        accounts.append(record["account_id"])
        timestamps.append(round(record["timestamp"] * 1000))
    return Workload(lines, accounts, timestamps, scenario, time.perf_counter() - started)

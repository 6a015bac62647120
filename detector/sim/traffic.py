"""A scenario's traffic as one stream: every family's accounts merged in event-time order, and its labels.

This is the simulator's public face: ``generate`` (records, lazily), ``labels`` (ground truth and
the drawn tactics), ``describe`` (the tactics alone) and ``write`` (both to files).

>>> from detector.sim.scenario import Scenario
>>> records = generate(Scenario.demo())
>>> first, second = next(records), next(records)
>>> first["timestamp"] <= second["timestamp"] and first["event_id"] != second["event_id"]
True
"""

from __future__ import annotations

import gzip
import heapq
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import orjson

from detector.sim.accounts import Population
from detector.sim.attacks import ATTACK_FAMILIES, add_campaigns
from detector.sim.benign import BENIGN_FAMILIES, add_benign
from detector.sim.sampling import HOUR
from detector.sim.scenario import TACTICS, Scenario


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


def population(scenario: Scenario) -> Population:
    """Every account of the scenario (benign families, then the campaigns), streams not yet started."""
    people = Population(scenario)
    add_benign(people)
    add_campaigns(people)
    return people


def generate(scenario: Scenario) -> Iterator[dict]:
    """request.v1 records of the whole scenario in event-time order, lazily.

    Memory stays modest: each account is a generator, and only a few minutes of event time are
    held and sorted at once.
    """
    return _in_event_time_order([account.stream() for account in population(scenario).accounts])


def labels(scenario: Scenario) -> dict:
    """Ground truth: each account's family, label and campaign; each campaign's start, size and drawn
    tactics; the scenario's whole tactic set and the benign families' drawn parameters."""
    people = population(scenario)
    return _labels(scenario, people)


def describe(scenario: Scenario) -> dict:
    """The drawn tactics and parameters without the accounts: what ``detector simulate --describe`` prints."""
    truth = _labels(scenario, population(scenario))
    families = Counter(account["family"] for account in truth["accounts"].values())
    return {"scenario": truth["scenario"], "campaigns": truth["campaigns"], "accounts_by_family": dict(families)}


def _labels(scenario: Scenario, people: Population) -> dict:
    accounts = {
        account.account_id: {
            "family": account.family,
            "label": "attack" if account.family in ATTACK_FAMILIES else "benign",
            "campaign_id": account.campaign_id,
        }
        for account in people.accounts
    }
    present = {
        dimension: [
            value
            for value in values
            if any(value in campaign["tactics"][dimension] for campaign in people.campaigns.values())
        ]
        for dimension, values in TACTICS.items()
    }
    return {
        "accounts": accounts,
        "campaigns": people.campaigns,
        "scenario": {
            **scenario.describe(),
            "tactics": present,
            "parameters": people.parameters,
        },
    }


def write(scenario: Scenario, records_path: str | Path, labels_path: str | Path) -> SimulationSummary:
    """Write the records as JSON lines (gzip when the name ends in .gz) and the labels as JSON.

    The gzip header carries no timestamp, so the same seed gives the same bytes.
    """
    began = time.perf_counter()
    people = population(scenario)
    truth = _labels(scenario, people)
    family_of = {account: value["family"] for account, value in truth["accounts"].items()}
    by_family = dict.fromkeys(BENIGN_FAMILIES + ATTACK_FAMILIES, 0)
    records_path, labels_path = Path(records_path), Path(labels_path)
    count, first, last = 0, None, None
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    with _open_for_writing(records_path) as out:
        batch: list[bytes] = []
        for record in _in_event_time_order([account.stream() for account in people.accounts]):
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
        attack_accounts=sum(1 for value in truth["accounts"].values() if value["label"] == "attack"),
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
            slice_seconds = min(6 * HOUR, slice_seconds * 2)

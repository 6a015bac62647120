"""(e) Bytes of state per tracked account, and (f) what restoring that state costs.

Run as a child process per size (``python bench/state_figures.py fed --accounts 100000``) so
that each resident-set figure starts from a clean interpreter and prints one JSON object.

* ``fed``: realistic requests of N distinct accounts go through a worker-mode ``Detector`` (the
  detect stage's state: profiles, alert book, population models). Simulated accounts are cloned
  (``acct_x.0``, ``acct_x.1``, ...) two records per clone, each clone getting a slice of the
  original's traffic, so prompt analysis and scoring fill every profile as live traffic would.
* ``restored``: N profiles decoded from the MessagePack of fed profiles, as a restart that reads
  a snapshot or changelog would build them (every float a distinct object: the upper bound).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import scenario_for

from detector.detection.core import Detector
from detector.detection.profile import AccountProfile
from detector.detection.records import decode_request
from detector.sim.traffic import generate
from detector.stream import state

RECORDS_PER_CLONE = 2
_encode = msgspec.msgpack.Encoder().encode


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def cloned_requests(accounts: int) -> list:
    """Decoded requests of ``accounts`` distinct accounts, in event-time order.

    Each simulated account is split into clones of ``RECORDS_PER_CLONE`` consecutive requests, so
    a few thousand simulated accounts become as many tracked accounts as wanted.
    """
    seen: dict[str, int] = {}
    clones = 0
    requests = []
    for record in generate(scenario_for(accounts * RECORDS_PER_CLONE)):
        account = record["account_id"]
        count = seen.get(account, 0)
        seen[account] = count + 1
        if count % RECORDS_PER_CLONE == 0:
            if clones == accounts:
                break
            clones += 1
        record["account_id"] = f"{account}.{count // RECORDS_PER_CLONE}"
        requests.append(decode_request(orjson.dumps(record)))
    if clones < accounts:
        raise SystemExit(f"state_figures: the workload yielded {clones} accounts, not {accounts}")
    return requests


def feed(requests: list) -> Detector:
    """A worker-mode detector that has processed ``requests`` (its account summaries dropped: they
    would go to the link stage)."""
    detector = Detector()
    process = detector.process
    for request in requests:
        process(request)
    return detector


def fed(accounts: int, snapshot_out: Path | None) -> dict:
    requests = cloned_requests(accounts)
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    detector = feed(requests)
    seconds = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    sizes = [len(_encode(profile)) for profile in detector.profiles.values()]
    result = {
        "mode": "fed",
        "accounts": len(detector.profiles),
        "records": len(requests),
        "records_per_s": len(requests) / seconds,
        "rss_growth_bytes": after - before,
        "bytes_per_account": (after - before) / len(detector.profiles),
        "rss_total_bytes": after,
        "msgpack_mean_bytes": statistics.fmean(sizes),
        "msgpack_max_bytes": max(sizes),
    }
    if snapshot_out is not None:
        started = time.perf_counter()
        result["snapshot_bytes"] = state.save(detector, snapshot_out)
        result["snapshot_save_seconds"] = time.perf_counter() - started
        data = snapshot_out.read_bytes()
        started = time.perf_counter()
        restored_detector = state.restore(Detector(), data)
        result["snapshot_restore_seconds"] = time.perf_counter() - started
        assert len(restored_detector.profiles) == accounts
    return result


def restored(accounts: int, sample_accounts: int) -> dict:
    sample = feed(cloned_requests(sample_accounts))
    blobs = [_encode(profile) for profile in sample.profiles.values()]
    del sample
    gc.collect()
    before = rss_bytes()
    detector = Detector()
    base = rss_bytes()
    decode = msgspec.msgpack.Decoder(AccountProfile).decode
    profiles = detector.profiles
    started = time.perf_counter()
    for index, blob in zip(range(accounts), itertools.cycle(blobs)):
        profiles[f"acct_{index:016x}"] = decode(blob)
    seconds = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    # A full pass of the cycle collector stalls the worker's loop as long as it takes: it scans every
    # tracked container. The first pass here also untracks the tuples msgspec just decoded.
    gc_seconds = []
    for _ in range(2):
        started = time.perf_counter()
        gc.collect()
        gc_seconds.append(time.perf_counter() - started)
    # What the worker's periodic snapshot costs when it holds this many accounts: in all, and the
    # longest its event loop waits (the worker yields it between parts).
    part_seconds = []
    snapshot_size = 0
    started = time.perf_counter()
    for part in state.snapshot_parts(detector):
        part_seconds.append(time.perf_counter() - started)
        snapshot_size += len(part)
        started = time.perf_counter()
    # Python-object bytes apart from allocator slack, on a smaller copy: tracing is slow and
    # its own bookkeeping would inflate the resident set measured above.
    traced_accounts = min(accounts, 50_000)
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    copy = {f"acct_{index:016x}": decode(blob) for index, blob in zip(range(traced_accounts), itertools.cycle(blobs))}
    traced = tracemalloc.get_traced_memory()[0] - traced_before
    tracemalloc.stop()
    del copy
    return {
        "mode": "restored",
        "accounts": len(profiles),
        "sample_accounts": len(blobs),
        "rss_growth_bytes": after - base,
        "bytes_per_account": (after - base) / accounts,
        "traced_bytes_per_account": traced / traced_accounts,
        "rss_total_bytes": after,
        "rss_before_detector_bytes": before,
        "decode_seconds": seconds,
        "snapshot_bytes": snapshot_size,
        "gc_full_pass_seconds": gc_seconds[-1],
        "gc_first_pass_seconds": gc_seconds[0],
        "gc_tracked_objects": len(gc.get_objects()),
        "snapshot_encode_seconds": sum(part_seconds),
        "snapshot_longest_part_seconds": max(part_seconds),
        "snapshot_parts": len(part_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("fed", "restored"))
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--sample-accounts", type=int, default=20_000, help="restored: fed profiles to clone")
    parser.add_argument("--snapshot-out", type=Path, help="fed: save the detector's state snapshot here, timed")
    args = parser.parse_args()
    result = (
        fed(args.accounts, args.snapshot_out) if args.mode == "fed" else restored(args.accounts, args.sample_accounts)
    )
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()

"""Prompt text never leaves: a secret planted in prompts reaches no output of any path, read whole."""

from __future__ import annotations

import asyncio
import base64
import binascii
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from detector.detection.records import decode_envelope
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate, labels
from tests.integration.harness import Topics, Worker, produce, wait_for_records

pytestmark = pytest.mark.integration

SECRET = "S3CRET-planted-in-a-prompt-9f2c1e"
Y2099 = "2099-12-31T00:00:00Z"


def planted_traffic() -> tuple[list[dict], list[tuple[bytes | None, bytes]]]:
    """The demo scenario with the secret in every third prompt (extractor, campaign and ordinary accounts
    alike), and messages that exercise every path a record can take: accepted alone and in an NDJSON
    batch or a JSON array, rejected as not JSON, as invalid, inside a batch, as too long a prompt, as
    stamped in 2099 and as a repeat; each rejected one carries the secret in its prompt."""
    records = list(generate(Scenario.demo(seed=11)))
    for record in records[::3]:
        record["prompt_text"] = f"{record.get('prompt_text') or ''} {SECRET}"
    secret = SECRET.encode()
    planted = next(r for r in records if SECRET in (r.get("prompt_text") or ""))
    messages: list[tuple[bytes | None, bytes]] = [(r["account_id"].encode(), orjson.dumps(r)) for r in records]
    batch = [orjson.dumps(r) for r in records[10:14]]
    bad_in_batch = orjson.dumps({"event_id": "bad-in-batch", "prompt_text": SECRET})
    messages += [
        (b"raw", b"not json, just text with " + secret),
        (b"half", b'{"event_id": "half", "prompt_text": "' + secret + b'", oops'),
        (b"missing", orjson.dumps({"event_id": "missing", "account_id": "m", "prompt_text": SECRET})),
        (b"escaped", b'{"event_id": "esc", "prompt\\u005ftext": "' + secret + b'"}'),
        (b"array", b"[" + b",".join([*batch[:2], bad_in_batch]) + b"]"),
        (b"ndjson", b"\n".join([*batch[2:], bad_in_batch])),
        (b"long", orjson.dumps({**planted, "event_id": "long", "prompt_text": SECRET * 40_000})),
        (b"future", orjson.dumps({**planted, "event_id": "future", "timestamp": Y2099})),
        (planted["account_id"].encode(), orjson.dumps(planted)),  # a producer's retry
    ]
    return records, messages


def leaks(data: bytes) -> bool:
    """Whether ``data`` holds the secret: as is, or inside a base64 string of a JSON value (dead letters)."""
    if SECRET.encode() in data:
        return True
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return any(SECRET.encode() in decoded for decoded in _base64_strings(value))


def _base64_strings(value) -> list[bytes]:
    if isinstance(value, dict):
        return [decoded for item in value.values() for decoded in _base64_strings(item)]
    if isinstance(value, list):
        return [decoded for item in value for decoded in _base64_strings(item)]
    if isinstance(value, str) and len(value) >= 8 and len(value) % 4 == 0:
        try:
            return [base64.b64decode(value, validate=True)]
        except (binascii.Error, ValueError):
            return []
    return []


async def every_topic(bootstrap: str) -> dict[str, list[tuple[bytes | None, bytes | None]]]:
    """Every message of every topic on the broker, whatever topics exist now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = sorted(await consumer.topics())
        partitions = [tp for topic in topics for tp in _partitions(consumer, topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        read: dict[str, list[tuple[bytes | None, bytes | None]]] = {topic: [] for topic in topics}
        remaining = {tp for tp in partitions if ends[tp] > 0}
        deadline = time.monotonic() + 120.0
        while remaining:
            assert time.monotonic() < deadline, f"could not read to the end of {sorted(remaining)}"
            for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                read[tp.topic] += [(m.key, m.value) for m in messages]
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return read
    finally:
        await consumer.stop()


def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def test_a_secret_in_prompts_appears_in_no_output_of_the_worker_replay_or_eval(broker, tmp_path, unique_name):
    records, messages = planted_traffic()
    topics = Topics(unique_name, 2)
    data_dir = tmp_path / "data"
    membership_topic = f"{unique_name}.members"

    async def scenario():
        await topics.create(broker.bootstrap)
        worker = Worker(
            broker.bootstrap,
            topics,
            f"{unique_name}-app",
            tmp_path,
            data_dir=data_dir,
            log_level="debug",
            snapshot_interval_s="2",
            membership_topic=membership_topic,
        )
        try:
            await produce(broker.bootstrap, topics.input, messages)
            await wait_for_records(
                [worker], sum(len(decode_envelope(value)[0] + decode_envelope(value)[1]) for _, value in messages)
            )
            await asyncio.sleep(4)  # a periodic snapshot publishes the profiles to the state topic
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5) as response:
                metrics = response.read()
        finally:
            status = worker.stop()
        assert status == 0, worker.log_tail()
        return metrics, worker.log_path.read_bytes(), await every_topic(broker.bootstrap)

    metrics, log, written = asyncio.run(scenario())
    app_topics = {topic for topic in written if unique_name in topic}
    # the check sees the secret where it is: in the input, which the test wrote
    assert any(leaks(value) for _, value in written.pop(topics.input))
    worker_outputs = {topic: values for topic, values in written.items() if values}
    # the run exercised what it claims to: alerts, dead letters, membership, state, internal topics
    assert {topics.alerts, topics.dlq, membership_topic} <= {t for t, values in written.items() if values}
    assert any(topic.endswith("-account-state") and written[topic] for topic in app_topics)
    for internal in ("-account-summaries", "-campaign-news", "-campaign-state"):
        assert any(topic.endswith(internal) and written[topic] for topic in app_topics), internal
    reasons = {orjson.loads(value)["reason"] for _, value in written[topics.dlq]}
    assert {"invalid_json", "missing_field", "out_of_range", "future_timestamp", "duplicate_event"} <= reasons
    assert b"DEBUG" in log and (data_dir / "detector-state.msgpack").is_file()

    leaked = [
        f"topic {topic}"
        for topic, values in worker_outputs.items()
        if any(leaks(key or b"") or leaks(value or b"") for key, value in values)
    ]
    leaked += [f"file {path}" for path in sorted(data_dir.rglob("*")) if path.is_file() and leaks(path.read_bytes())]
    leaked += ["debug log"] * leaks(log) + ["/metrics"] * leaks(metrics)
    leaked += _replay_and_eval_leaks(records, messages, tmp_path / "offline")
    assert not leaked, f"the secret left the detector through: {leaked}"


def _replay_and_eval_leaks(records: list[dict], messages, folder: Path) -> list[str]:
    """``detector replay`` (one and two workers) and ``detector eval`` over the same messages: every file
    they write, and what they print."""
    folder.mkdir()
    source = folder / "records.jsonl"
    source.write_bytes(b"\n".join(value for _, value in messages) + b"\n")  # an NDJSON message: a line each
    truth = folder / "labels.json"
    truth.write_bytes(orjson.dumps(labels(Scenario.demo(seed=11))))
    runs = []
    for workers in (1, 2):
        out = folder / f"replay-{workers}"
        out.mkdir()
        runs.append(
            subprocess.run(
                [sys.executable, "-m", "detector.cli", "replay", str(source), "-o", str(out / "alerts.jsonl"),
                 "--dlq", str(out / "dlq.jsonl"), "--members", str(out / "members.jsonl"), "--workers", str(workers)],
                capture_output=True, check=True,
            )
        )  # fmt: skip
    report = folder / "report"
    runs.append(
        subprocess.run(
            [sys.executable, "-m", "detector.cli", "eval", str(source), str(truth), "--report", str(report)],
            capture_output=True,
            check=True,
        )
    )
    assert (report / "report.json").is_file() and (folder / "replay-1" / "dlq.jsonl").stat().st_size
    leaked = [f"file {p}" for p in sorted(folder.rglob("*")) if p.is_file() and p != source and leaks(p.read_bytes())]
    leaked += [f"output of {' '.join(run.args[3:5])}" for run in runs if leaks(run.stdout) or leaks(run.stderr)]
    # dead-letter files are JSON lines: each line is checked on its own, base64 included
    for dlq in sorted(folder.rglob("dlq.jsonl")):
        leaked += [f"line of {dlq}" for line in dlq.read_bytes().splitlines() if leaks(line)]
    return leaked

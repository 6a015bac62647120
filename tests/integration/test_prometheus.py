"""A real Prometheus scrapes a real worker: the counts it shows are the records fed, and every
alert rule and dashboard query runs against the worker's series without error."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import pytest
import yaml

from detector.sim.scenario import Scenario
from detector.sim.traffic import generate
from tests.integration.harness import ChildProcess, Topics, Worker, free_port, produce, wait_for_records

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
JOB = "distillation-detector"
"""The job name the alert rules select on."""
MALFORMED = [
    (b"bad-json", b"{not json"),
    (
        b"bad-missing",
        b'{"event_id": "m1", "account_id": "acct_x", "model": "m", "input_tokens": 1,'
        b' "output_tokens": 1, "status_code": 200}',
    ),
    (
        b"bad-range",
        b'{"event_id": "r1", "timestamp": 1772409600, "account_id": "acct_x", "model": "m",'
        b' "input_tokens": -5, "output_tokens": 1, "status_code": 200}',
    ),
]
"""One record each rejected as invalid_json, missing_field (timestamp) and out_of_range."""


class Prometheus(ChildProcess):
    """The ``prometheus`` server on a free loopback port, scraping given targets every second."""

    def __init__(self, binary: str, workdir: Path, targets: list[str], rule_files: list[Path]):
        self.port = free_port()
        self.workdir = workdir
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        super().__init__(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            workdir / "prometheus.log",
            stop_timeout=20.0,
            cwd=workdir,
        )

    def get(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # a bad query answers 400 with a JSON error
            return json.loads(error.read())

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready in {timeout:.0f} s:\n{self.log_tail()}")

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, or None while it has no result."""
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None


def wait_until(read, expected, timeout: float, what: str):
    """Poll ``read()`` until it returns ``expected``; fail with the last value after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    seen = read()
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = read()
    assert seen == expected, f"{what}: expected {expected}, Prometheus shows {seen} after {timeout:.0f} s"
    return seen


def dashboard_queries() -> list[str]:
    """The dashboard's panel queries with Grafana's variables filled in as Grafana would."""
    dashboard = json.loads((DEPLOY / "grafana" / "detector-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return [q.replace("$__rate_interval", "1m").replace("$job", JOB).replace("$instance", ".+") for q in queries]


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus server is not installed (Debian: apt-get install prometheus)")
    return binary


def test_prometheus_scraping_a_worker_counts_every_record_and_runs_every_rule(
    broker, unique_name, tmp_path, prometheus_binary
):
    """200 valid and 3 malformed records: Prometheus shows 200 accepted and 3 rejected, one per
    reason; the alert rules evaluate without error and the dashboard's queries all run."""
    valid = list(itertools.islice(generate(Scenario.demo(seed=5)), 200))
    messages = [(record["account_id"].encode(), orjson.dumps(record)) for record in valid] + MALFORMED
    topics = Topics(unique_name, 1)
    rules = DEPLOY / "prometheus" / "alerts.yml"
    rule_names = {rule["alert"] for group in yaml.safe_load(rules.read_text())["groups"] for rule in group["rules"]}

    async def feed(worker: Worker) -> None:
        await produce(broker.bootstrap, topics.input, messages)
        await wait_for_records([worker], len(messages), timeout=40)

    asyncio.run(topics.create(broker.bootstrap))
    worker = Worker(broker.bootstrap, topics, f"{unique_name}-app", tmp_path)
    prometheus = Prometheus(prometheus_binary, tmp_path, [f"127.0.0.1:{worker.metrics_port}"], [rules])
    try:
        prometheus.wait_ready()
        # a first scrape before the records arrive, so rates over the window see them arrive
        wait_until(
            lambda: prometheus.value(f'detector_records_accepted_total{{job="{JOB}"}}'),
            0.0,
            20,
            "a first scrape of the idle worker",
        )
        asyncio.run(feed(worker))

        wait_until(
            lambda: prometheus.value(f'detector_records_accepted_total{{job="{JOB}"}}'),
            200.0,
            15,
            "detector_records_accepted_total",
        )
        wait_until(
            lambda: prometheus.value(f'sum(detector_records_rejected_total{{job="{JOB}"}})'),
            3.0,
            15,
            "sum(detector_records_rejected_total)",
        )
        by_reason = prometheus.get("/api/v1/query", query="sum by (reason) (detector_records_rejected_total) > 0")
        assert {r["metric"]["reason"]: float(r["value"][1]) for r in by_reason["data"]["result"]} == {
            "invalid_json": 1.0,
            "missing_field": 1.0,
            "out_of_range": 1.0,
        }
        assert prometheus.value(f'detector_messages_total{{job="{JOB}"}}') == float(len(messages))
        assert prometheus.value(f'up{{job="{JOB}"}}') == 1.0

        def rule_health() -> dict[str, str]:
            groups = prometheus.get("/api/v1/rules")["data"]["groups"]
            return {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}

        wait_until(rule_health, {name: "ok" for name in rule_names}, 10, "alert rule health")

        failed = {}
        for query in dashboard_queries():
            answer = prometheus.get("/api/v1/query", query=query)
            if answer["status"] != "success":
                failed[query] = answer.get("error")
        assert failed == {}
        accepted_rate = next(q for q in dashboard_queries() if q.startswith("sum(rate(detector_records_accepted_total"))
        deadline = time.monotonic() + 15  # a rate needs two scrapes after the records arrived
        while (prometheus.value(accepted_rate) or 0.0) <= 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (prometheus.value(accepted_rate) or 0.0) > 0
    finally:
        exit_status = prometheus.stop()
        worker.stop()
    assert exit_status == 0, prometheus.log_tail()
    assert (tmp_path / "data").is_dir()

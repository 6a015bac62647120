"""The deployment files agree with the code: metric names, DETECTOR_* settings, commands, anchors."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from detector.cli import build_parser, main
from detector.detection.alerting import ACCOUNT_ALERT_TYPE, CAMPAIGN_ALERT_TYPE, Alert
from detector.errors import ConfigError
from detector.stream.config import PREFIX, Settings
from detector.stream.metrics import DetectorMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "detector-dashboard.json"
ENV_EXAMPLE = DEPLOY / "detector.env.example"
KUBERNETES = DEPLOY / "kubernetes"
RUNBOOK = ROOT / "docs" / "runbook.md"

SETTINGS_FIELDS = {field.name: field for field in dataclasses.fields(Settings)}
TARGET_LABELS = {"job", "instance"}
"""Labels Prometheus attaches to every scraped sample."""
PROMETHEUS_OWN_METRICS = {"up"}
"""Series Prometheus writes itself for each target."""


def exposed_metrics() -> dict[str, set[str]]:
    """Sample names the worker exposes, each with its label names.

    Names come from the text exposition of a fresh registry: counters under ``_total``,
    histograms as ``_bucket`` (with ``le``), ``_count`` and ``_sum``.
    """
    registry = CollectorRegistry()
    metrics = DetectorMetrics.create(registry)
    # Label names are not in the exposition until a child exists, so read them from the metric.
    labels = {metric._name: set(metric._labelnames) for metric in vars(metrics).values()}
    exposed: dict[str, set[str]] = {}
    for line in generate_latest(registry).decode().splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split(" ")
        base = name.removesuffix("_total").removesuffix("_created")
        own = labels.get(base, set())
        if kind == "histogram":
            exposed[f"{name}_bucket"] = own | {"le"}
            exposed[f"{name}_count"] = own
            exposed[f"{name}_sum"] = own
        else:
            exposed[name] = own
    return exposed


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    """Every PromQL query of the dashboard: panel targets and template-variable queries."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    queries += [variable["definition"] for variable in dashboard["templating"]["list"] if variable["type"] == "query"]
    return queries


def problems_in_query(expr: str, exposed: dict[str, set[str]]) -> list[str]:
    """Metric names the worker does not expose, and labels that no series in the query carries."""
    problems = []
    names = set(re.findall(r"\b(detector_[a-z0-9_]+)", expr))
    problems += [f"unknown metric {name}" for name in sorted(names - exposed.keys())]
    if not names and not PROMETHEUS_OWN_METRICS & set(re.findall(r"\b([a-z_]+)\s*\{", expr)):
        problems.append("reads no detector metric")
    for name, matchers in re.findall(r"\b(detector_[a-z0-9_]+)\s*\{([^}]*)\}", expr):
        for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
            if name in exposed and label not in exposed[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {label}")
    known = set().union(*(exposed.get(name, set()) for name in names)) | TARGET_LABELS
    for grouping in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        for label in filter(None, (part.strip() for part in grouping.split(","))):
            if label not in known:
                problems.append(f"grouping by {label}, which none of {sorted(names)} carries")
    return problems


def test_alert_rules_read_only_metrics_the_worker_exposes():
    exposed = exposed_metrics()
    assert {"detector_records_accepted_total", "detector_message_processing_seconds_bucket"} <= exposed.keys()
    problems = {rule["alert"]: problems_in_query(rule["expr"], exposed) for rule in alert_rules()}
    assert {alert: found for alert, found in problems.items() if found} == {}


def test_dashboard_reads_only_metrics_the_worker_exposes():
    exposed = exposed_metrics()
    queries = dashboard_queries()
    assert len(queries) >= 10
    problems = {expr: problems_in_query(expr, exposed) for expr in queries}
    assert {expr: found for expr, found in problems.items() if found} == {}


def test_query_check_catches_a_misspelt_metric_and_a_foreign_label():
    """The two checks above would notice a drifted name or label."""
    exposed = exposed_metrics()
    assert problems_in_query("rate(detector_records_rejected[5m])", exposed) == [
        "unknown metric detector_records_rejected"
    ]
    assert problems_in_query('sum by (reason) (detector_alerts_total{severity="critical"})', exposed) == [
        "grouping by reason, which none of ['detector_alerts_total'] carries"
    ]


def env_assignments(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(active, commented-out) ``DETECTOR_*=value`` lines of an environment file."""
    active, commented = {}, {}
    for line in text.splitlines():
        match = re.fullmatch(r"(#\s*)?(DETECTOR_[A-Z0-9_]+)=(.*)", line.strip())
        if match:
            (commented if match.group(1) else active)[match.group(2)] = match.group(3)
    return active, commented


def setting_name(variable: str) -> str:
    return variable.removeprefix(PREFIX).lower()


def test_env_example_documents_every_setting_and_nothing_else():
    text = ENV_EXAMPLE.read_text()
    active, commented = env_assignments(text)
    assert {setting_name(v) for v in active | commented} == set(SETTINGS_FIELDS)
    assert not active.keys() & commented.keys()
    mentioned = {setting_name(v) for v in re.findall(r"DETECTOR_[A-Z0-9_]+", text)}
    assert mentioned - set(SETTINGS_FIELDS) == set()


def test_env_example_commented_lines_show_the_real_defaults():
    """A commented-out line claims the default; where the default is empty it shows an example."""
    _, commented = env_assignments(ENV_EXAMPLE.read_text())
    wrong = {}
    for variable, shown in commented.items():
        default = SETTINGS_FIELDS[setting_name(variable)].default
        if default != "" and type(default)(shown) != default:
            wrong[variable] = (shown, default)
    assert wrong == {}


def test_env_example_is_a_configuration_the_worker_accepts():
    active, _ = env_assignments(ENV_EXAMPLE.read_text())
    settings = Settings.from_env(active)
    assert settings.security_protocol == "SASL_SSL" and settings.partitions == int(active["DETECTOR_PARTITIONS"])


def kubernetes_objects() -> dict[tuple[str, str], dict]:
    objects = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and "kind" in document and "metadata" in document:
                objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def worker_pod(objects) -> dict:
    return objects[("Deployment", "distillation-detector")]["spec"]["template"]["spec"]


def test_configmap_holds_only_real_settings_the_worker_accepts():
    """With the SASL credentials the Secret adds, the ConfigMap is a configuration that starts."""
    objects = kubernetes_objects()
    data = objects[("ConfigMap", "distillation-detector")]["data"]
    assert {setting_name(key) for key in data} - set(SETTINGS_FIELDS) == set()
    secret = {"DETECTOR_SASL_USERNAME": "user", "DETECTOR_SASL_PASSWORD": "secret"}
    assert not secret.keys() & data.keys(), "credentials belong in the Secret, not the ConfigMap"
    settings = Settings.from_env({**data, **secret})
    assert settings.security_protocol.startswith("SASL")


def test_deployment_runs_the_worker_with_the_configmap_and_secret():
    objects = kubernetes_objects()
    pod = worker_pod(objects)
    (container,) = pod["containers"]
    program, *arguments = container["command"]
    assert program == "detector" and build_parser().parse_args(arguments).command == "worker"
    sources = {
        (kind, ref["name"])
        for source in container["envFrom"]
        for kind, ref in source.items()
        if kind in ("configMapRef", "secretRef")
    }
    assert sources == {("configMapRef", "distillation-detector"), ("secretRef", "distillation-detector-kafka")}
    assert ("ConfigMap", "distillation-detector") in objects


def test_pod_gets_no_service_link_variables():
    """Kubernetes' service links would add DETECTOR_SERVICE_HOST and such for a Service named "detector",
    which the worker rejects as unknown settings."""
    assert worker_pod(kubernetes_objects())["enableServiceLinks"] is False
    with pytest.raises(ConfigError, match="unknown settings"):
        Settings.from_env({"DETECTOR_SERVICE_HOST": "10.0.0.1"})


def test_probes_service_and_scrape_annotations_point_at_the_metrics_port():
    objects = kubernetes_objects()
    port = int(objects[("ConfigMap", "distillation-detector")]["data"]["DETECTOR_METRICS_PORT"])
    (container,) = worker_pod(objects)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[container["livenessProbe"]["tcpSocket"]["port"]] == port
    service = objects[("Service", "distillation-detector-metrics")]
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert int(service["metadata"]["annotations"]["prometheus.io/port"]) == port
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == port and ports[service_port["targetPort"]] == port
    pod_labels = objects[("Deployment", "distillation-detector")]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def test_kubernetes_manifests_match_the_api_schema():
    validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (pip install kubernetes-validate: 108 MB of API schemas)",
    )
    for document in kubernetes_objects().values():
        validate.validate(document, "1.30.0", strict=True)


def test_systemd_unit_runs_the_worker_and_does_not_restart_on_a_configuration_error(monkeypatch, capsys):
    """RestartPreventExitStatus matches what ``detector worker`` returns for a bad setting."""
    unit = (DEPLOY / "systemd" / "detector-worker.service").read_text()
    directives = dict(re.findall(r"^(\w+)=(.*)$", unit, flags=re.MULTILINE))
    *_, program, command = directives["ExecStart"].split()
    assert Path(program).name == "detector" and command == "worker"
    monkeypatch.setenv("DETECTOR_METRICS_PORTT", "9108")
    assert main(["worker"]) == int(directives["RestartPreventExitStatus"])
    assert "DETECTOR_METRICS_PORTT" in capsys.readouterr().err


def test_topics_script_creates_the_topics_the_worker_uses(tmp_path):
    """With the worker's DETECTOR_* variables, or none, it creates the same three topics the worker reads and writes."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    calls = tmp_path / "calls"
    stub = tmp_path / "kafka-topics.sh"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    stub.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}

    def created(env: dict[str, str]) -> dict[str, str]:
        calls.unlink(missing_ok=True)
        subprocess.run(
            [bash, str(DEPLOY / "kafka" / "topics.sh")],
            check=True,
            env={**base, "KAFKA_TOPICS": str(stub), "BOOTSTRAP": "b:9092", **env},
        )
        topics = {}
        for line in calls.read_text().splitlines():
            arguments = line.split()
            assert "--create" in arguments and arguments[arguments.index("--bootstrap-server") + 1] == "b:9092"
            topics[arguments[arguments.index("--topic") + 1]] = arguments[arguments.index("--partitions") + 1]
        return topics

    topic_fields = [name for name in SETTINGS_FIELDS if name.endswith("_topic")]
    defaults = Settings()
    assert created({}) == {getattr(defaults, name): str(defaults.partitions) for name in topic_fields}
    active, _ = env_assignments(ENV_EXAMPLE.read_text())
    custom = {**active, **{f"{PREFIX}{name.upper()}": f"gw.{name}" for name in topic_fields}}
    assert created(custom) == {f"gw.{name}": active["DETECTOR_PARTITIONS"] for name in topic_fields}


def test_topics_script_creates_the_membership_topic_compacted(tmp_path):
    """Only the newest campaign of an account matters, and workers read the topic from the start."""
    calls = tmp_path / "calls"
    stub = tmp_path / "kafka-topics.sh"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    subprocess.run(["bash", str(DEPLOY / "kafka" / "topics.sh")], check=True, env={**env, "KAFKA_TOPICS": str(stub)})
    policies = {}
    for line in calls.read_text().splitlines():
        arguments = line.split()
        policies[arguments[arguments.index("--topic") + 1]] = [
            value
            for flag, value in zip(arguments, arguments[1:], strict=False)
            if flag == "--config" and value.startswith("cleanup.policy=")
        ]
    defaults = Settings()
    assert policies[defaults.membership_topic] == ["cleanup.policy=compact"]
    assert policies[defaults.input_topic] == ["cleanup.policy=delete"]


def github_anchors(markdown: str) -> set[str]:
    """The fragment ids GitHub gives the headings of a Markdown file."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


def test_every_alert_rule_links_to_its_own_runbook_section():
    anchors = github_anchors(RUNBOOK.read_text())
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        assert url.endswith(f"/docs/runbook.md#{rule['alert'].lower()}"), url
        assert rule["alert"].lower() in anchors, f"docs/runbook.md has no section {rule['alert']}"


def test_runbook_has_the_sections_alert_events_link_to():
    """Each alert event's data.runbook_url ends in an anchor that exists in the runbook."""
    anchors = github_anchors(RUNBOOK.read_text())
    for kind in (ACCOUNT_ALERT_TYPE, CAMPAIGN_ALERT_TYPE):
        alert = Alert(
            subject="acct_1",
            dedup_key="k",
            sequence=1,
            status="firing",
            severity="critical",
            risk_score=90.0,
            account_ids=("acct_1",),
            summary="s",
            evidence=(),
            first_seen=0.0,
            last_seen=0.0,
            time=0.0,
            event_count=1,
            type=kind,
        )
        fragment = alert.to_cloudevent()["data"]["runbook_url"].rpartition("#")[2]
        assert fragment in anchors


def promtool(*arguments: str) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus)")
    return subprocess.run([binary, *arguments], capture_output=True, text=True, cwd=ROOT)


def test_promtool_accepts_the_alert_rules():
    result = promtool("check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_alert_rules_fire_when_and_only_when_their_tests_say():
    """deploy/prometheus/alerts.test.yml: each alert on made-up series, at the times it must and must not fire."""
    result = promtool("test", "rules", str(DEPLOY / "prometheus" / "alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "prometheus" / "alerts.test.yml").read_text()))
    assert tested == {rule["alert"] for rule in alert_rules()}


def test_promtool_accepts_the_example_prometheus_config():
    result = promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr

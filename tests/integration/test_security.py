"""The real worker against a broker that requires TLS and/or SASL: it alerts, refuses to start on
bad credentials with one clear line, and never shows the password.

TLS and SASL are served by the embedded broker's front (``detector/sim/secure_front.py``): the
Tansu inside cannot authenticate anyone or speak TLS itself. Tansu's own ``--authentication`` is
still used where it can be: it refuses every credential, which is the start-up error's case.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from aiokafka.helpers import create_ssl_context

from detector.sim.broker import EmbeddedBroker, TlsServerFiles
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate, labels
from detector.stream.security import REDACTED
from tests.integration.harness import Topics, Worker, produce, read_all, wait_for_records

pytestmark = pytest.mark.integration

USER = "detector"
PASSWORD = f"pw-{secrets.token_urlsafe(18)}"
"""Random per run, so finding it anywhere cannot be a coincidence."""
STARTUP_ERROR_WITHIN_S = 30.0


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _issue(directory: Path, name: str, ca: str, subject_alt_name: str) -> None:
    """A key and a certificate for ``name``, signed by the CA files named ``ca``."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{directory}/{name}.key",
             "-out", f"{directory}/{name}.csr", "-subj", f"/CN={name}")  # fmt: skip
    (directory / f"{name}.ext").write_text(f"subjectAltName={subject_alt_name}\n")
    _openssl("x509", "-req", "-in", f"{directory}/{name}.csr", "-CA", f"{directory}/{ca}.pem",
             "-CAkey", f"{directory}/{ca}.key", "-CAcreateserial", "-days", "2",
             "-out", f"{directory}/{name}.pem", "-extfile", f"{directory}/{name}.ext")  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA; a server certificate for 127.0.0.1 and a client certificate it signed; a second CA
    that signed nothing the broker shows."""
    directory = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=test {ca}",
                 "-keyout", f"{directory}/{ca}.key", "-out", f"{directory}/{ca}.pem")  # fmt: skip
    _issue(directory, "broker", "ca", "IP:127.0.0.1")
    _issue(directory, "worker", "ca", "DNS:detector-worker")
    return directory


@pytest.fixture(scope="module")
def brokers(pki, tmp_path_factory):
    """``brokers(sasl, tls)``: an embedded broker requiring SASL and/or mutual TLS, one per kind."""
    started: dict[tuple[bool, bool], EmbeddedBroker] = {}
    log_dir = tmp_path_factory.mktemp("secure-brokers")

    def get(sasl: bool, tls: bool) -> EmbeddedBroker:
        if (sasl, tls) not in started:
            started[sasl, tls] = EmbeddedBroker(
                log_path=log_dir / f"tansu-sasl{int(sasl)}-tls{int(tls)}.log",
                sasl_users={USER: PASSWORD} if sasl else None,
                tls=TlsServerFiles(str(pki / "broker.pem"), str(pki / "broker.key"), str(pki / "ca.pem"))
                if tls
                else None,
            ).start()
        return started[sasl, tls]

    yield get
    for broker in started.values():
        broker.stop()


def worker_settings(pki: Path, protocol: str, mechanism: str | None, password: str = PASSWORD, ca: str = "ca") -> dict:
    """The DETECTOR_* security settings (lower-case names) of a worker on ``protocol``."""
    settings = {"security_protocol": protocol}
    if protocol.startswith("SASL"):
        settings.update(sasl_mechanism=mechanism, sasl_username=USER, sasl_password=password)
    if protocol.endswith("SSL"):
        settings.update(
            ssl_cafile=str(pki / f"{ca}.pem"), ssl_certfile=str(pki / "worker.pem"), ssl_keyfile=str(pki / "worker.key")
        )
    return settings


def client_options(pki: Path, protocol: str, mechanism: str | None) -> dict:
    """The same settings for the test's own aiokafka clients."""
    options: dict = {"security_protocol": protocol}
    if protocol.startswith("SASL"):
        options.update(sasl_mechanism=mechanism, sasl_plain_username=USER, sasl_plain_password=PASSWORD)
    if protocol.endswith("SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=str(pki / "ca.pem"), certfile=str(pki / "worker.pem"), keyfile=str(pki / "worker.key")
        )
    return options


@pytest.fixture(scope="module")
def blatant_traffic() -> tuple[list[tuple[bytes, bytes]], str]:
    """~2k records of a few dozen ordinary accounts and one blatant extractor, and that extractor's id."""
    blatant = {**Scenario.demo(seed=5).plans[0], "wording": ("reasoning",), "capability": ("math",)}
    scenario = dataclasses.replace(
        Scenario.demo(seed=5),
        duration_hours=3.0,
        scale=0.01,
        campaigns=1,
        plans=(blatant,),  # asks for its reasoning too: paged well above the threshold, not at its edge
        campaign_start_hours=0.5,
        new_model_release_hours=2.0,
    )
    messages = [(r["account_id"].encode(), orjson.dumps(r)) for r in generate(scenario)]
    (extractor,) = [a for a, label in labels(scenario)["accounts"].items() if label["family"] == "blatant_extractor"]
    return messages, extractor


def metrics_page(worker: Worker) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5) as response:
        return response.read().decode()


SECURED = [
    pytest.param("SASL_PLAINTEXT", "SCRAM-SHA-256", id="sasl_plaintext-scram-sha-256"),
    pytest.param("SASL_PLAINTEXT", "SCRAM-SHA-512", id="sasl_plaintext-scram-sha-512"),
    pytest.param("SASL_SSL", "PLAIN", id="sasl_ssl-plain"),
    pytest.param("SSL", None, id="ssl-client-certificate"),
]


@pytest.mark.parametrize(("protocol", "mechanism"), SECURED)
def test_worker_alerts_through_a_secured_broker_and_never_shows_the_password(
    brokers, pki, tmp_path, unique_name, blatant_traffic, protocol, mechanism
):
    """Configured only through DETECTOR_* variables, the worker consumes, detects and publishes the
    extractor's alert over TLS and/or SASL; its debug log and /metrics never hold the password."""
    broker = brokers(sasl=protocol.startswith("SASL"), tls=protocol.endswith("SSL"))
    messages, extractor = blatant_traffic
    options = client_options(pki, protocol, mechanism)
    topics = Topics(unique_name, 2)

    async def scenario() -> tuple[list[dict], str, Path]:
        await topics.create(broker.bootstrap, **options)
        worker = Worker(
            broker.bootstrap,
            topics,
            f"{unique_name}-app",
            tmp_path,
            log_level="debug",
            **worker_settings(pki, protocol, mechanism),
        )
        try:
            await produce(broker.bootstrap, topics.input, messages, **options)
            await wait_for_records([worker], len(messages), timeout=90)
            alerts = await read_all(broker.bootstrap, topics.alerts, settle=3.0, **options)
            return alerts, metrics_page(worker), worker.log_path
        finally:
            worker.stop()

    alerts, metrics, log_path = asyncio.run(scenario())
    assert extractor in {m["value"]["subject"] for m in alerts if m["value"]["data"]["status"] == "firing"}
    log = log_path.read_text(errors="replace")
    if mechanism:
        assert f"Authenticated as {USER} via {mechanism}" in log  # the debug log did see the SASL exchange
    if mechanism == "PLAIN":
        assert REDACTED in log  # aiokafka logs PLAIN's request, password included, at debug level
    assert PASSWORD not in log
    assert PASSWORD not in metrics
    assert "detector_records_accepted_total" in metrics


def run_until_exit(worker: Worker) -> tuple[int, float, str]:
    """Wait (bounded) for a worker that must exit by itself: its status, seconds taken, and log."""
    started = time.monotonic()
    try:
        worker.process.wait(timeout=STARTUP_ERROR_WITHIN_S)
    except subprocess.TimeoutExpired:
        worker.stop()
        raise AssertionError(
            f"the worker still ran {STARTUP_ERROR_WITHIN_S:.0f} s after start:\n{worker.log_tail()}"
        ) from None
    elapsed = time.monotonic() - started
    worker.stop()
    return worker.process.returncode, elapsed, worker.log_path.read_text(errors="replace")


def last_line(log: str) -> str:
    return log.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        pytest.param("SASL_PLAINTEXT", "PLAIN", id="plain"),
        pytest.param("SASL_PLAINTEXT", "SCRAM-SHA-256", id="scram-sha-256"),
        pytest.param("SASL_SSL", "SCRAM-SHA-512", id="sasl_ssl-scram-sha-512"),
    ],
)
def test_a_wrong_password_is_a_one_line_start_up_error_without_the_password(
    brokers, pki, tmp_path, unique_name, protocol, mechanism
):
    """The broker refuses the password: the worker exits non-zero at once, and its last line names
    the user, the mechanism and the broker, quoting neither the wrong password nor the right one."""
    broker = brokers(sasl=True, tls=protocol.endswith("SSL"))
    wrong = f"wrong-{secrets.token_urlsafe(12)}"
    worker = Worker(
        broker.bootstrap,
        Topics(unique_name, 1),
        f"{unique_name}-app",
        tmp_path,
        log_level="debug",
        **worker_settings(pki, protocol, mechanism, password=wrong),
    )
    status, elapsed, log = run_until_exit(worker)
    assert status == 2, log
    assert last_line(log).startswith(
        f"detector worker: authentication failed for user '{USER}' with mechanism {mechanism} "
        f"at broker {broker.bootstrap}: "
    ), log
    assert wrong not in log and PASSWORD not in log
    assert "Traceback" not in log


def test_credentials_the_embedded_tansu_refuses_are_a_start_up_error(pki, tmp_path, tmp_path_factory, unique_name):
    """Tansu itself with --authentication (it admits nobody, as it stores no SCRAM credential) ends
    the SCRAM exchange with ``e=unknown-user`` instead of an error code: still one clear line."""
    log_path = tmp_path_factory.mktemp("tansu-authentication") / "tansu.log"
    with EmbeddedBroker(require_authentication=True, log_path=log_path) as broker:
        worker = Worker(
            broker.bootstrap,
            Topics(unique_name, 1),
            f"{unique_name}-app",
            tmp_path,
            **worker_settings(pki, "SASL_PLAINTEXT", "SCRAM-SHA-512"),
        )
        status, _, log = run_until_exit(worker)
    assert status == 2, log
    assert last_line(log) == (
        f"detector worker: authentication failed for user '{USER}' with mechanism SCRAM-SHA-512 at broker "
        f"{broker.bootstrap}: it ended the SCRAM exchange without accepting the credentials"
    )
    assert PASSWORD not in log


def test_a_broker_certificate_from_another_ca_is_a_one_line_start_up_error(brokers, pki, tmp_path, unique_name):
    """DETECTOR_SSL_CAFILE names a CA that did not sign the broker's certificate: the worker says so."""
    broker = brokers(sasl=False, tls=True)
    worker = Worker(
        broker.bootstrap,
        Topics(unique_name, 1),
        f"{unique_name}-app",
        tmp_path,
        **worker_settings(pki, "SSL", None, ca="other-ca"),
    )
    status, _, log = run_until_exit(worker)
    assert status == 2, log
    assert re.fullmatch(
        rf"detector worker: TLS handshake with broker {re.escape(broker.bootstrap)} failed: "
        r"CERTIFICATE_VERIFY_FAILED; check DETECTOR_SSL_CAFILE .*",
        last_line(log),
    ), log

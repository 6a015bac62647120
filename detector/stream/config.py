"""Settings of the worker, read once from ``DETECTOR_*`` environment variables and frozen.

Nothing reads the environment at import time: :meth:`Settings.from_env` is called by the CLI.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from detector.detection.policy import DetectionPolicy
from detector.errors import ConfigError

PREFIX = "DETECTOR_"
_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class Settings:
    """Every setting, its environment variable being ``DETECTOR_`` + the field name in capitals."""

    broker_url: str = "kafka://localhost:9092"
    """Comma-separated bootstrap servers, ``kafka://host:port``."""
    app_id: str = "distillation-detector"
    """Faust application id: the prefix of internal topics and of the consumer groups."""
    input_topic: str = "llm.requests"
    alerts_topic: str = "llm.alerts"
    dlq_topic: str = "llm.requests.dlq"
    membership_topic: str = "llm.campaign-members"
    """Compacted; key = account_id, value = {"campaign_id", "since"} (campaign_id null when it left)."""
    partitions: int = 8
    """Partitions of the topics the detector creates (alerts, dead letters, internal ones)."""
    replication_factor: int = 1
    auto_offset_reset: str = "earliest"
    """Where a new consumer group starts on the input topic: ``earliest`` or ``latest``."""
    metrics_port: int = 9108
    """Prometheus metrics port (0 disables the endpoint)."""
    metrics_host: str = "0.0.0.0"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = dataclasses.field(default="", repr=False)
    """Never in ``repr(settings)``, so never in a log line or error that shows the settings."""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    session_timeout_s: float = 30.0
    """Consumer-group session timeout: how long a dead worker keeps its partitions."""
    fetch_max_wait_ms: int = 100
    """Longest a fetch waits on the broker for records; each agent hop can wait this long
    (Faust hard-codes 1,500 ms: campaign alerts cross three hops)."""
    data_dir: str = "./detector-data"
    """Local data directory (one per worker): Faust's files and the state snapshot."""
    snapshot_interval_s: float = 60.0
    """How often the worker snapshots its state to the data directory (0: never; it still saves on shutdown)."""
    campaign_update_interval_s: float = 30.0
    """Fewest seconds (wall time) between two updates of one campaign's alert; a newer update
    replaces a waiting one, resolutions are not held (0: every update at once, as replay does)."""
    alert_source: str = "urn:distillation-detector"
    """CloudEvents ``source`` of every alert."""
    runbook_url: str = "https://github.com/distillation-detector/detector/blob/main/docs/runbook.md"
    policy_file: str = ""
    """Optional JSON overriding :class:`~detector.detection.policy.DetectionPolicy` defaults."""
    log_level: str = "info"

    def __post_init__(self):
        if self.security_protocol not in _SECURITY_PROTOCOLS:
            raise ConfigError(
                f"DETECTOR_SECURITY_PROTOCOL: expected one of {_SECURITY_PROTOCOLS}; got {self.security_protocol!r}"
            )
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism not in _SASL_MECHANISMS:
            raise ConfigError(
                f"DETECTOR_SASL_MECHANISM: expected one of {_SASL_MECHANISMS}; got {self.sasl_mechanism!r}"
            )
        if self.security_protocol.startswith("SASL") and not (self.sasl_username and self.sasl_password):
            raise ConfigError("DETECTOR_SASL_USERNAME and DETECTOR_SASL_PASSWORD are required with SASL")
        if self.auto_offset_reset not in ("earliest", "latest"):
            raise ConfigError(
                f"DETECTOR_AUTO_OFFSET_RESET: expected 'earliest' or 'latest'; got {self.auto_offset_reset!r}"
            )
        if self.partitions < 1 or self.replication_factor < 1:
            raise ConfigError("DETECTOR_PARTITIONS and DETECTOR_REPLICATION_FACTOR must be at least 1")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"DETECTOR_METRICS_PORT: expected 0-65535; got {self.metrics_port}")
        for name in ("input_topic", "alerts_topic", "dlq_topic", "membership_topic", "app_id", "broker_url"):
            if not getattr(self, name):
                raise ConfigError(f"DETECTOR_{name.upper()} must not be empty")
        if not 1 <= self.fetch_max_wait_ms <= 60_000:
            raise ConfigError(f"DETECTOR_FETCH_MAX_WAIT_MS: expected 1-60000; got {self.fetch_max_wait_ms}")
        if self.snapshot_interval_s < 0:
            raise ConfigError(f"DETECTOR_SNAPSHOT_INTERVAL_S: expected seconds >= 0; got {self.snapshot_interval_s}")
        if self.campaign_update_interval_s < 0:
            raise ConfigError(
                f"DETECTOR_CAMPAIGN_UPDATE_INTERVAL_S: expected seconds >= 0; got {self.campaign_update_interval_s}"
            )
        if self.policy_file and not Path(self.policy_file).is_file():
            raise ConfigError(f"DETECTOR_POLICY_FILE: no such file {self.policy_file!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Settings from ``DETECTOR_*`` variables (``environ`` defaults to ``os.environ``)."""
        environ = os.environ if environ is None else environ
        values = {}
        for spec in dataclasses.fields(cls):
            raw = environ.get(PREFIX + spec.name.upper())
            if raw is None:
                continue
            kind = type(spec.default)
            try:
                values[spec.name] = kind(raw)
            except ValueError:
                raise ConfigError(f"{PREFIX}{spec.name.upper()}: expected {kind.__name__}; got {raw!r}") from None
        unknown = sorted(
            k
            for k in environ
            if k.startswith(PREFIX) and k[len(PREFIX) :].lower() not in {f.name for f in dataclasses.fields(cls)}
        )
        if unknown:
            raise ConfigError(f"unknown settings {unknown}: see the README for the DETECTOR_* variables")
        values.update(overrides)
        return cls(**values)

    def policy(self) -> DetectionPolicy:
        """The detection policy: defaults, or the policy file's overrides."""
        return DetectionPolicy.from_file(self.policy_file) if self.policy_file else DetectionPolicy()

    @property
    def snapshot_path(self) -> Path:
        """Where the worker keeps its state between restarts."""
        return Path(self.data_dir) / "detector-state.msgpack"

    @property
    def detect_group(self) -> str:
        """The consumer group reading the input topic."""
        return f"{self.app_id}-detect"

    @property
    def campaign_group(self) -> str:
        """The consumer group of the campaign stage (one member at a time reads the summaries)."""
        return f"{self.app_id}-campaigns"

    @property
    def state_topic(self) -> str:
        """Internal, compacted, keyed by account: profiles handed from worker to worker."""
        return f"{self.app_id}-account-state"

    @property
    def summaries_topic(self) -> str:
        """Internal, one partition: account summaries and input progress for the campaign stage."""
        return f"{self.app_id}-account-summaries"

    @property
    def news_topic(self) -> str:
        """Internal, one partition, compacted: membership changes and the campaign clock, in order,
        for the detect steps (see :meth:`Detector.decide <detector.detection.core.Detector.decide>`)."""
        return f"{self.app_id}-campaign-news"

    @property
    def campaign_state_topic(self) -> str:
        """Internal, one partition, compacted: checkpoints of the campaign stage."""
        return f"{self.app_id}-campaign-state"

    @property
    def bootstrap_servers(self) -> str:
        """``host:port,...`` without the ``kafka://`` scheme, as aiokafka wants it."""
        return ",".join(part.strip().removeprefix("kafka://") for part in self.broker_url.split(",") if part.strip())

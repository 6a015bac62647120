"""Prometheus metrics of the detector, declared once against an injected registry.

Names carry their unit. Every known label combination is created at start-up, so each series
exists at 0 before its first event and ``increase()`` sees that event (a series born at 1 is
invisible to it).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from detector.detection.hygiene import HYGIENE_REASONS

REJECTION_REASONS = (
    "invalid_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "invalid_timestamp",
    "invalid_ip",
    "empty_message",
    "too_large",
    "invalid_encoding",
    "invalid_value",
    *HYGIENE_REASONS,
)
ALERT_TYPES = ("dev.distillation-detector.account.alert.v1", "dev.distillation-detector.campaign.alert.v1")
ALERT_STATUSES = ("firing", "resolved")
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class DetectorMetrics:
    """Every metric the worker and replay export."""

    messages: Counter
    records_accepted: Counter
    rejections: Counter
    alerts: Counter
    accounts_tracked: Gauge
    accounts_evicted: Counter
    accounts_published: Counter
    accounts_adopted: Counter
    campaign_updates_superseded: Counter
    open_alerts: Gauge
    watermark: Gauge
    input_lag_records: Gauge
    input_lag_seconds: Gauge
    broker_up: Gauge
    batch_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str = "detector") -> DetectorMetrics:
        """Declare the metrics in ``registry`` (a fresh one per app keeps tests independent)."""
        metrics = cls._declare(registry, namespace)
        for reason in REJECTION_REASONS:
            metrics.rejections.labels(reason)
        for kind in ALERT_TYPES:
            for status in ALERT_STATUSES:
                for severity in SEVERITIES:
                    metrics.alerts.labels(kind, status, severity)
        return metrics

    @classmethod
    def _declare(cls, registry: CollectorRegistry, namespace: str) -> DetectorMetrics:
        return cls(
            messages=Counter(
                "messages", "Kafka messages consumed from the input topic", namespace=namespace, registry=registry
            ),
            records_accepted=Counter(
                "records_accepted", "request.v1 records that passed validation", namespace=namespace, registry=registry
            ),
            rejections=Counter(
                "records_rejected",
                "records sent to the dead-letter topic, by reason",
                ["reason"],
                namespace=namespace,
                registry=registry,
            ),
            alerts=Counter(
                "alerts",
                "alerts emitted, by type, status and severity",
                ["type", "status", "severity"],
                namespace=namespace,
                registry=registry,
            ),
            accounts_tracked=Gauge(
                "accounts_tracked", "accounts with a profile in this worker", namespace=namespace, registry=registry
            ),
            accounts_evicted=Counter(
                "accounts_evicted",
                "profiles dropped: idle past their TTL or over the memory cap",
                namespace=namespace,
                registry=registry,
            ),
            accounts_published=Counter(
                "accounts_published",
                "changed profiles sent to the account-state topic",
                namespace=namespace,
                registry=registry,
            ),
            accounts_adopted=Counter(
                "accounts_adopted",
                "profiles taken over from other workers on a rebalance",
                namespace=namespace,
                registry=registry,
            ),
            campaign_updates_superseded=Counter(
                "campaign_updates_superseded",
                "campaign alert updates replaced by a newer one while they waited "
                "their turn (DETECTOR_CAMPAIGN_UPDATE_INTERVAL_S)",
                namespace=namespace,
                registry=registry,
            ),
            open_alerts=Gauge(
                "open_alerts", "account alerts currently firing in this worker", namespace=namespace, registry=registry
            ),
            watermark=Gauge(
                "watermark_timestamp_seconds",
                "newest record event time seen (epoch seconds)",
                namespace=namespace,
                registry=registry,
            ),
            input_lag_records=Gauge(
                "input_lag_records",
                "records of an owned input partition not processed yet (high watermark minus position)",
                ["partition"],
                namespace=namespace,
                registry=registry,
            ),
            input_lag_seconds=Gauge(
                "input_lag_seconds",
                "how long the oldest record not processed yet of an owned input partition has waited "
                "(now minus its Kafka timestamp; 0 when caught up)",
                ["partition"],
                namespace=namespace,
                registry=registry,
            ),
            broker_up=Gauge(
                "broker_up",
                "1 while a broker answers the worker's metadata requests, 0 while none does",
                namespace=namespace,
                registry=registry,
            ),
            batch_seconds=Histogram(
                "message_processing_seconds",
                "time to validate and score one input message",
                namespace=namespace,
                registry=registry,
                buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
            ),
        )

"""Start the Faust worker with its Prometheus endpoint: the body of ``detector worker``."""

from __future__ import annotations

import logging

import faust
from prometheus_client import start_http_server

from detector.stream.app import create_app
from detector.stream.config import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; Faust leaves the consumer group cleanly on the way out."""
    app = create_app(settings)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=app.metrics_registry)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()

"""Start the Faust worker with its Prometheus endpoint: the body of ``detector worker``."""

from __future__ import annotations

import logging

import faust
from prometheus_client import start_http_server

from detector.stream.app import create_app
from detector.stream.config import Settings
from detector.stream.security import SecretRedactor, check_broker_access

log = logging.getLogger(__name__)


class _Worker(faust.Worker):
    """Faust's worker, its log handlers filtered by a :class:`SecretRedactor` once it sets them up."""

    def __init__(self, *args, redactor: SecretRedactor, **kwargs):
        super().__init__(*args, **kwargs)
        self.redactor = redactor

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        self.redactor.install(logger)


def run_worker(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; Faust leaves the consumer group cleanly on the way out.

    Credentials are tried first: a refused password is a :class:`~detector.errors.ConfigError`
    before anything starts.
    """
    check_broker_access(settings)
    app = create_app(settings)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=app.metrics_registry)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    worker = _Worker(app, loglevel=settings.log_level, quiet=True, redactor=SecretRedactor([settings.sasl_password]))
    worker.execute_from_commandline()

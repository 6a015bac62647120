"""Start the Faust worker with its Prometheus endpoint: the body of ``detector worker``."""

from __future__ import annotations

import logging

import faust
from prometheus_client import start_http_server

from detector.stream.app import create_app
from detector.stream.broker_health import RateLimitedLog, preflight
from detector.stream.config import Settings
from detector.stream.security import SecretRedactor

log = logging.getLogger(__name__)


class _Worker(faust.Worker):
    """Faust's worker, its log handlers filtered once it sets them up: by a :class:`SecretRedactor`,
    and by a :class:`RateLimitedLog` (a broker outage made aiokafka and Faust log ~260 lines a second)."""

    def __init__(self, *args, redactor: SecretRedactor, **kwargs):
        super().__init__(*args, **kwargs)
        self.redactor = redactor
        self.rate_limit = RateLimitedLog()

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        for handler in logger.handlers:  # on handlers: the libraries' loggers propagate to them
            handler.addFilter(self.rate_limit)
        self.redactor.install(logger)


def run_worker(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; Faust leaves the consumer group cleanly on the way out.

    First the worker waits for a broker, tries the credentials and checks the internal topics
    (:func:`~detector.stream.broker_health.preflight`): a refused password or an internal topic
    with another partition count is a :class:`~detector.errors.ConfigError` before anything starts.
    """
    preflight(settings)
    app = create_app(settings)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=app.metrics_registry)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    worker = _Worker(app, loglevel=settings.log_level, quiet=True, redactor=SecretRedactor([settings.sasl_password]))
    worker.execute_from_commandline()

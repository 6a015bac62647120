"""Diagnosis only: give the worker's Faust consumer another ``fetch_max_wait_ms``.

Faust hard-codes ``fetch_max_wait_ms=1500`` (``faust/transport/drivers/aiokafka.py``), and the
embedded broker holds a fetch for up to about half of it even while records arrive, so every
agent hop can wait ~0.4-0.75 s. ``bench/latency_sweep.py --fetch-max-wait-ms N`` puts this
directory on the worker's ``PYTHONPATH`` to measure what a shorter wait would buy.
"""

import os

_WAIT_MS = int(os.environ.get("BENCH_FETCH_MAX_WAIT_MS", "0"))

if _WAIT_MS:
    import aiokafka

    _original_init = aiokafka.AIOKafkaConsumer.__init__

    def _init(self, *args, **kwargs):
        if kwargs.get("fetch_max_wait_ms") == 1500:  # Faust's hard-coded value; other consumers keep theirs
            kwargs["fetch_max_wait_ms"] = _WAIT_MS
        _original_init(self, *args, **kwargs)

    aiokafka.AIOKafkaConsumer.__init__ = _init

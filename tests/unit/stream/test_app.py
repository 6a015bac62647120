"""The Faust adapter's own settings reach the Kafka clients Faust builds."""

import asyncio

from detector.stream.app import create_app
from detector.stream.config import Settings


def test_worker_consumer_fetch_wait_is_the_configured_one_not_fausts_1500_ms():
    async def fetch_wait_of_worker_consumer(settings: Settings) -> int:
        app = create_app(settings)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    broker = "kafka://127.0.0.1:1"
    assert asyncio.run(fetch_wait_of_worker_consumer(Settings(broker_url=broker))) == 100
    assert asyncio.run(fetch_wait_of_worker_consumer(Settings(broker_url=broker, fetch_max_wait_ms=40))) == 40

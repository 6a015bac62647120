"""Fixtures for tests that run against the real embedded broker."""

from __future__ import annotations

import re
import uuid

import pytest

from detector.sim.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One in-memory Tansu broker for the whole session; its log lands in pytest's temp dir.

    Tests share it, so each one names its topics and consumer groups with ``unique_name``.
    """
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running


@pytest.fixture
def unique_name(request) -> str:
    """A prefix for topic names and app ids that no other test (or rerun) uses.

    Made of the test's name, cut to legal Kafka topic characters, and a random suffix.
    """
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name.removeprefix("test_"))[:40].strip("-.")
    return f"{readable}-{uuid.uuid4().hex[:8]}"

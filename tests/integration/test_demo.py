"""``make demo`` on a fresh machine: broker, worker, simulated traffic, alerts on the screen."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_the_demo_shows_a_campaign_alert_an_account_alert_and_dead_letters_and_stops_cleanly(tmp_path):
    """What a new user sees from `make demo` (the same command, its default rate and length)."""
    finished = subprocess.run(
        [sys.executable, "-m", "detector.cli", "demo", "--duration", "60"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    shown = finished.stdout
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert " CAMPAIGN " in shown and " account " in shown, shown[-3000:]
    assert "DEAD-LETTER reason=" in shown
    assert "stopped cleanly" in shown

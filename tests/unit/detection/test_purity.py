"""The detection package is pure: importing all of it loads no Kafka, Faust or metrics client."""

import subprocess
import sys

import detector.detection

FORBIDDEN = ("faust", "aiokafka", "prometheus_client", "mode")


def test_detection_package_imports_no_kafka_faust_or_metrics_module():
    """A fresh interpreter imports every detection module; none of the adapters' libraries come along."""
    program = (
        "import pkgutil, importlib, sys, detector.detection as d\n"
        "for m in pkgutil.walk_packages(d.__path__, d.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", f"the detection package pulled in {loaded.strip()}"
    assert detector.detection.__doc__


def test_replay_starts_without_scipy_stats_and_river_packages_stay_whole():
    """River's model packages import SciPy's stats, most of the start-up every replay paid for two
    classes that need none of it; a later plain import of those packages still works and gives the
    same classes."""
    program = (
        "import sys, detector.replay, detector.detection.scoring as scoring\n"
        "print('scipy.stats' in sys.modules, 'river.anomaly' in sys.modules)\n"
        "import river.anomaly, river.preprocessing\n"
        "print(river.anomaly.HalfSpaceTrees is scoring.HalfSpaceTrees,"
        " river.preprocessing.MinMaxScaler is scoring.MinMaxScaler)\n"
    )
    printed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    assert printed.split() == ["False", "False", "True", "True"]

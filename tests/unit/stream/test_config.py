"""Settings: read once from DETECTOR_* variables, validated, and all documented."""

import dataclasses
import re
from pathlib import Path

import pytest

from detector.errors import ConfigError
from detector.stream.config import Settings

README = Path(__file__).parents[3] / "README.md"


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.input_topic == "llm.requests" and settings.bootstrap_servers == "localhost:9092"


def test_variables_override_defaults_with_their_types():
    settings = Settings.from_env({"DETECTOR_PARTITIONS": "12", "DETECTOR_BROKER_URL": "kafka://a:1,kafka://b:2"})
    assert settings.partitions == 12 and settings.bootstrap_servers == "a:1,b:2"


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"DETECTOR_PARTITONS": "3"}, "unknown settings"),
        ({"DETECTOR_PARTITIONS": "three"}, "expected int"),
        ({"DETECTOR_SECURITY_PROTOCOL": "TLS"}, "DETECTOR_SECURITY_PROTOCOL"),
        ({"DETECTOR_SECURITY_PROTOCOL": "SASL_SSL"}, "DETECTOR_SASL_USERNAME"),
        ({"DETECTOR_AUTO_OFFSET_RESET": "newest"}, "DETECTOR_AUTO_OFFSET_RESET"),
        ({"DETECTOR_POLICY_FILE": "/nonexistent.json"}, "DETECTOR_POLICY_FILE"),
    ],
)
def test_bad_settings_fail_at_start_up_naming_the_variable(environ, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)


def test_every_setting_is_documented_in_the_readme():
    documented = set(re.findall(r"`(DETECTOR_[A-Z_]+)`", README.read_text()))
    fields = {f"DETECTOR_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    assert fields - documented == set()
    assert documented - fields == set()


def test_policy_file_overrides_and_rejects_unknown_fields(tmp_path):
    good = tmp_path / "policy.json"
    good.write_text('{"warning_risk": 60, "reasoning_elicitation": [0.3, 0.8, 2.0]}')
    policy = Settings.from_env({"DETECTOR_POLICY_FILE": str(good)}).policy()
    assert policy.warning_risk == 60 and policy.reasoning_elicitation == (0.3, 0.8, 2.0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"warning_rsk": 60}')
    with pytest.raises(ConfigError, match="unknown fields"):
        Settings.from_env({"DETECTOR_POLICY_FILE": str(bad)}).policy()


def test_campaign_thresholds_in_the_policy_file_reach_the_campaign_stages(tmp_path):
    """A platform team sets linking thresholds in the same file as scores; replay, eval and the worker use them."""
    from detector.detection.core import Detector
    from detector.detection.stages import ChainedStages, OrderedCampaigns

    path = tmp_path / "policy.json"
    path.write_text('{"warning_risk": 60, "campaigns": {"min_exclusive_accounts": 10, "min_card_accounts": 4}}')
    policy = Settings.from_env({"DETECTOR_POLICY_FILE": str(path)}).policy()
    assert policy.campaigns.min_exclusive_accounts == 10 and policy.campaigns.min_card_accounts == 4
    assert policy.campaigns.min_shared_accounts == 8  # the rest keep their defaults
    chained = ChainedStages(Detector(policy))
    assert chained.campaigns.link.index.policy is policy.campaigns
    assert OrderedCampaigns(4, policy.campaigns).stages.merge.book.policy is policy.campaigns
    path.write_text('{"campaigns": {"min_exclusive": 10}}')
    with pytest.raises(ConfigError, match=r"campaigns: unknown fields \['min_exclusive'\]"):
        Settings.from_env({"DETECTOR_POLICY_FILE": str(path)}).policy()
    path.write_text('{"campaigns": 10}')
    with pytest.raises(ConfigError, match="must be a JSON object"):
        Settings.from_env({"DETECTOR_POLICY_FILE": str(path)}).policy()

"""The published JSON Schemas and the msgspec decoder tell the same story.

jsonschema (Draft 2020-12, format checking on) is the reference reader of the
contract; decode_request is what the detector runs. For records made by
mutating valid ones, both must accept or both must reject, except for the
differences that schemas/README.md lists, each pinned by its own test here.
"""

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from detector.detection.records import Request, decode_request
from detector.detection.stages import ChainedStages, decode_membership, encode_membership
from detector.sim.scenario import Scenario
from detector.sim.traffic import generate

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
REQUEST_SCHEMA = json.loads((SCHEMAS / "request.v1.schema.json").read_text())
ALERT_SCHEMA = json.loads((SCHEMAS / "alert.v1.schema.json").read_text())
MEMBERSHIP_SCHEMA = json.loads((SCHEMAS / "membership.v1.schema.json").read_text())
request_validator = Draft202012Validator(REQUEST_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
alert_validator = Draft202012Validator(ALERT_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
membership_validator = Draft202012Validator(MEMBERSHIP_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)

REQUIRED = REQUEST_SCHEMA["required"]
FIELDS = list(REQUEST_SCHEMA["properties"])
INTEGER_FIELDS = ["input_tokens", "output_tokens", "status_code", "max_tokens", "turn_index"]
TIMESTAMP_FIELDS = ["timestamp", "account_created_at"]


def test_every_schema_is_valid_draft_2020_12():
    Draft202012Validator.check_schema(REQUEST_SCHEMA)
    Draft202012Validator.check_schema(ALERT_SCHEMA)
    Draft202012Validator.check_schema(MEMBERSHIP_SCHEMA)


def test_format_checking_covers_what_the_contract_relies_on():
    """Without these checkers the schema would silently accept any timestamp, address or URL."""
    assert {"date-time", "ipv4", "ipv6", "uri", "uri-reference"} <= set(Draft202012Validator.FORMAT_CHECKER.checkers)


def test_schema_fields_are_the_request_fields():
    assert list(Request.__struct_fields__) == FIELDS
    assert list(Request.__struct_fields__[: len(REQUIRED)]) == REQUIRED
    assert Request.__struct_defaults__ == (None,) * (len(FIELDS) - len(REQUIRED))


@pytest.mark.parametrize("example_record", REQUEST_SCHEMA["examples"])
def test_schema_examples_are_valid_for_both(example_record):
    request_validator.validate(example_record)
    assert isinstance(decode_request(json.dumps(example_record).encode()), Request)


def valid_record() -> dict:
    """The least record both readers accept."""
    return {
        "event_id": "e",
        "timestamp": "2024-05-01T12:00:00Z",
        "account_id": "a",
        "model": "m",
        "input_tokens": 1,
        "output_tokens": 2,
        "status_code": 200,
    }


def judge(fields: dict) -> tuple[bool, bool, str]:
    """(schema accepts, decoder accepts, explanation) for one record."""
    raw = json.dumps(fields, ensure_ascii=False).encode()
    errors = [f"{list(e.path)}: {e.message}" for e in request_validator.iter_errors(json.loads(raw))]
    decoded = decode_request(raw)
    explanation = f"record={repr(fields)[:600]}\nschema errors={str(errors)[:600]}\ndecoder={repr(decoded)[:600]}"
    return not errors, isinstance(decoded, Request), explanation


# --- records to mutate ------------------------------------------------------------------------------------


def timestamp_texts():
    """RFC 3339-looking text with every part sometimes out of range, in the canonical spelling."""
    return st.builds(
        "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}{}".format,
        st.integers(1960, 2100) | st.sampled_from([1969, 1970, 9999]),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 24),
        st.integers(0, 60),
        st.integers(0, 60),
        st.sampled_from(["", ".5", ".123456", ".123456789"]),
        st.sampled_from(["Z", "", "+02:00", "-05:30", "+23:59", "+24:00", "-00:00", "+05:60"]),
    )


epoch_numbers = st.integers(-10, 2**40) | st.floats(-1, 3e11, allow_nan=False)
IP_TEXTS = [
    "1.2.3",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3.4 ",
    "::1%eth0",
    "fe80::1%1",
    ":::",
    "::ffff:1.2.3.4",
    "2001:db8::g",
    "1.2.3.4/32",
    "",
    "localhost",
    "0.0.0.0",
    "::",
    "2001:0db8:0000:0000:0000:ff00:0042:8329",
]
TIMESTAMP_TEXTS = [
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "1970-01-01T00:30:00+01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-23:59",
    "2024-05-01T12:00:00",
    "2024-05-01T12:00Z",
    "2024-05-01",
    "2024-02-29T12:00:00Z",
    "2023-02-29T12:00:00Z",
    "2024-04-31T12:00:00Z",
    "2024-05-01T24:00:00Z",
    "2024-05-01T12:00:00.Z",
    "2024-05-01T12:00:00.000001+14:00",
    "2024-05-01T12:00:00+24:00",
    "2024-05-01T12:00:00+02",
    "+2024-05-01T12:00:00Z",
    "12024-05-01T12:00:00Z",
    " 2024-05-01T12:00:00Z",
]
ip_texts = st.ip_addresses().map(str) | st.sampled_from(IP_TEXTS)
plain_text = st.text(max_size=40)


def valid_value(name: str):
    """A strategy for a value that both readers should accept in field `name`."""
    if name in TIMESTAMP_FIELDS:
        return st.sampled_from(["2024-05-01T12:00:00Z", "2024-02-29T23:59:59.999+05:30"]) | st.floats(0, 2e9)
    if name == "client_ip":
        return st.ip_addresses().map(str)
    if name in INTEGER_FIELDS:
        return st.integers(200, 599) if name == "status_code" else st.integers(1, 10**6)
    if name in ("temperature", "latency_ms"):
        return st.floats(0, 1e6) | st.integers(0, 100)
    return st.text(min_size=1, max_size=30)


def edge_list(name: str) -> list:
    """Values just inside and just outside the bounds the schema declares for field `name`."""
    spec = REQUEST_SCHEMA["properties"][name]
    spec = REQUEST_SCHEMA["$defs"]["timestamp"]["oneOf"][1] if name in TIMESTAMP_FIELDS else spec
    values = []
    for bound, step in (("minimum", -1), ("maximum", 1)):
        if bound in spec:
            edge = spec[bound]
            values += [edge, edge + step, edge + step / 2, float(edge) + step / 1e3]
    for bound, step in (("minLength", -1), ("maxLength", 1)):
        if bound in spec:
            values += ["é" * length for length in (spec[bound], spec[bound] + step) if length >= 0]
    return values


def edge_values(name: str):
    values = edge_list(name)
    return st.sampled_from(values) if values else st.nothing()


def hostile_value(name: str):
    """A strategy for anything a broken or malicious producer might put in field `name`."""
    common = (
        st.none()
        | st.booleans()
        | st.integers(-(2**64), 2**64)
        | st.floats(allow_nan=False, allow_infinity=False)
        | plain_text
        | st.lists(st.integers(), max_size=2)
        | st.dictionaries(plain_text, st.integers(), max_size=2)
    )
    # Field-specific values first: Hypothesis favours the first branches of a union.
    if name in TIMESTAMP_FIELDS:
        return timestamp_texts() | edge_values(name) | epoch_numbers | common
    if name == "client_ip":
        return ip_texts | common
    return edge_values(name) | common


VALID = {name: valid_value(name) for name in FIELDS}
HOSTILE = {name: hostile_value(name) for name in FIELDS}
required_fields = st.fixed_dictionaries({name: VALID[name] for name in REQUIRED})
unknown_fields = st.dictionaries(
    st.text(max_size=10).filter(lambda k: k not in FIELDS), st.integers() | plain_text, max_size=2
)


@st.composite
def mutated_records(draw, focus: str):
    """A valid record whose field `focus` is made hostile or removed, sometimes along with one other field."""
    fields = draw(required_fields)
    for name in draw(st.lists(st.sampled_from(FIELDS[len(REQUIRED) :]), unique=True, max_size=6)):
        fields[name] = draw(VALID[name])
    for name in [focus] + draw(st.lists(st.sampled_from(FIELDS), max_size=1)):
        if draw(st.sampled_from(["replace", "replace", "replace", "remove"])) == "replace":
            fields[name] = draw(HOSTILE[name])
        else:
            fields.pop(name, None)
    fields.update(draw(unknown_fields))
    return fields


def is_documented_difference(fields: dict) -> bool:
    """Inputs on which the two readers disagree on purpose (schemas/README.md); pinned below."""
    return any(
        name in INTEGER_FIELDS and isinstance(value, float) and value.is_integer() for name, value in fields.items()
    )


@pytest.mark.parametrize("focus", FIELDS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_schema_and_decoder_agree_on_mutated_records(focus, data):
    """Random hostile values in one field (sometimes two): accepted by both or rejected by both."""
    fields = data.draw(mutated_records(focus))
    assume(not is_documented_difference(fields))
    schema_accepts, decoder_accepts, explanation = judge(fields)
    assert schema_accepts == decoder_accepts, explanation


FIXED_HOSTILE = [
    None,
    True,
    False,
    "",
    "x",
    "1",
    0,
    1,
    -1,
    1.5,
    -0.0,
    10**20,
    [],
    {},
    [1],
    {"a": 1},
    "2024-05-01T12:00:00Z",
    "203.0.113.7",
    "::1",
]


def test_schema_and_decoder_agree_on_every_field_at_its_edges():
    """Each field alone at each declared bound, one step past it, tricky text, and a fixed set of wrong types."""
    disagreements = []
    for name in FIELDS:
        specific = TIMESTAMP_TEXTS if name in TIMESTAMP_FIELDS else IP_TEXTS if name == "client_ip" else []
        for value in edge_list(name) + specific + FIXED_HOSTILE:
            fields = {**valid_record(), name: value}
            if is_documented_difference(fields):
                continue
            schema_accepts, decoder_accepts, _ = judge(fields)
            if schema_accepts != decoder_accepts:
                disagreements.append((name, repr(value)[:40], schema_accepts, decoder_accepts))
    assert disagreements == []


@pytest.mark.parametrize(
    "fields",
    [
        {
            "event_id": "e",
            "timestamp": "1970-01-01T00:00:00Z",
            "account_id": "a",
            "model": "m",
            "input_tokens": 0,
            "output_tokens": 0,
            "status_code": 100,
        },
        {
            "event_id": "e",
            "timestamp": 253402300799,
            "account_id": "a" * 128,
            "model": "m" * 256,
            "input_tokens": 2**53 - 1,
            "output_tokens": 0,
            "status_code": 599,
            "client_ip": "::ffff:1.2.3.4",
        },
    ],
)
def test_both_accept_values_at_the_bounds(fields):
    assert judge(fields)[:2] == (True, True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timestamp", "2024-05-01T12:00:00"),
        ("timestamp", "1969-12-31T23:59:59Z"),
        ("timestamp", "2024-05-01T12:00:00Z\t"),
        ("timestamp", "2024-05-01T23:59:60Z"),
        ("timestamp", 253402300800),
        ("account_created_at", "2024-13-01T00:00:00Z"),
        ("client_ip", "fe80::1%eth0"),
        ("client_ip", "010.0.0.1"),
        ("prompt_text", "x" * 1_000_001),
        ("user_agent", "é" * 2049),
    ],
)
def test_both_reject_edge_values(name, value):
    schema_accepts, decoder_accepts, explanation = judge({**valid_record(), name: value})
    assert not schema_accepts and not decoder_accepts, explanation


# --- the documented differences ------------------------------------------------------------------------------


def test_difference_integral_float_for_an_integer_field():
    """JSON Schema's integer admits 3.0; the decoder wants integers written as integers."""
    schema_accepts, decoder_accepts, _ = judge({**valid_record(), "input_tokens": 3.0})
    assert schema_accepts and not decoder_accepts
    assert decode_request(json.dumps({**valid_record(), "input_tokens": 3.0}).encode()).reason == "wrong_type"


@pytest.mark.parametrize("text", ["2024-05-01t12:00:00z", "2024-05-01 12:00:00Z", "2024-05-01T12:00:00+0200"])
def test_difference_decoder_reads_lenient_rfc3339_spellings(text):
    """Lowercase t/z, a space separator and +hhmm offsets are refused by the schema, read by the decoder."""
    schema_accepts, decoder_accepts, _ = judge({**valid_record(), "timestamp": text})
    assert not schema_accepts and decoder_accepts


def test_difference_duplicate_keys_are_all_checked_by_the_decoder():
    """JSON readers keep the last duplicate; msgspec validates each occurrence as it streams."""
    raw = (
        b'{"event_id": "e", "timestamp": "never", "timestamp": 1, "account_id": "a", "model": "m",'
        b' "input_tokens": 1, "output_tokens": 2, "status_code": 200}'
    )
    assert request_validator.is_valid(json.loads(raw))
    assert decode_request(raw).reason == "invalid_timestamp"


def test_difference_bytes_of_unknown_fields_are_not_inspected():
    """Non-UTF-8 bytes in a field the decoder skips are let through; in a field it reads they are rejected."""
    raw = json.dumps(valid_record()).encode()[:-1] + b', "vendor_blob": "\xff\xfe"}'
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert isinstance(decode_request(raw), Request)
    assert decode_request(raw.replace(b'"model": "m"', b'"model": "\xff"')).reason == "invalid_encoding"


def test_difference_lone_surrogate_escape_is_rejected_by_the_decoder():
    raw = json.dumps({**valid_record(), "user_agent": "\ud800"}).encode()
    assert request_validator.is_valid(json.loads(raw))
    assert decode_request(raw).reason == "invalid_json"


# --- alert.v1 ------------------------------------------------------------------------------------------------------


def example_alert():
    return {
        "specversion": "1.0",
        "id": "7d0c7f0e-6a57-4a43-9c1a-2f0b7f1f9e11",
        "source": "/distillation-detector/worker-1",
        "type": "dev.distillation-detector.campaign.alert.v1",
        "subject": "campaign-3f9a",
        "time": "2024-05-01T12:30:00Z",
        "datacontenttype": "application/json",
        "data": {
            "account_ids": ["acct-1", "acct-2", "acct-3"],
            "severity": "critical",
            "risk_score": 91.5,
            "status": "firing",
            "dedup_key": "campaign:3f9a",
            "summary": "3 accounts sharing one payment fingerprint harvest long reasoning answers",
            "evidence": [
                {
                    "indicator": "reasoning_elicitation_share",
                    "observed": 0.82,
                    "baseline": 0.04,
                    "contribution": 35.0,
                    "detail": "82% of prompts ask for step-by-step reasoning",
                },
                {"indicator": "account_age_hours", "observed": 5.0, "baseline": None, "contribution": 10.0},
            ],
            "first_seen": "2024-05-01T09:00:00Z",
            "last_seen": "2024-05-01T12:29:58Z",
            "event_count": 48211,
            "runbook_url": "https://runbooks.example.com/distillation#campaign",
            "campaign_id": "campaign-3f9a",
            "account_count": 3,
            "shared_attributes": [{"attribute": "payment_fingerprint", "value_hash": "sha256:9b1e", "member_count": 3}],
            "exchange_count": 48211,
        },
    }


def test_example_alert_is_valid():
    alert_validator.validate(example_alert())


def test_readme_example_alert_is_valid():
    """The alert shown to integrators in schemas/README.md must itself be valid."""
    readme = (SCHEMAS / "README.md").read_text()
    block = readme.split("<!-- example-alert -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    alert_validator.validate(json.loads(block))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("specversion",), "0.3"),
        (("type",), "dev.distillation-detector.alert"),
        (("time",), "yesterday"),
        (("datacontenttype",), "text/plain"),
        (("data", "severity"), "high"),
        (("data", "risk_score"), 101),
        (("data", "status"), "open"),
        (("data", "dedup_key"), "k" * 256),
        (("data", "runbook_url"), "not a url"),
        (("data", "event_count"), -1),
        (("data", "evidence"), [{"indicator": "x", "observed": 1}]),
        (("data", "shared_attributes"), [{"attribute": "client_ip"}]),
    ],
)
def test_alert_with_broken_field_is_invalid(path, value):
    alert = example_alert()
    target = alert
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not alert_validator.is_valid(alert)


@pytest.mark.parametrize(
    "missing", ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"]
)
def test_alert_without_required_attribute_is_invalid(missing):
    alert = example_alert()
    del alert[missing]
    assert not alert_validator.is_valid(alert)


# --- the README's examples ---------------------------------------------------------------------------------------


def readme_blocks(language: str) -> list[str]:
    text = (SCHEMAS / "README.md").read_text()
    return [block.split("```", 1)[0] for block in text.split(f"```{language}\n")[1:]]


def test_readme_example_records_are_valid_for_both():
    records = [json.loads(block) for block in readme_blocks("json") if '"event_id"' in block]
    assert len(records) == 2
    for fields in records:
        assert judge(fields)[:2] == (True, True)


def test_readme_ndjson_example_keeps_the_good_lines_and_rejects_the_bad_one():
    from detector.detection.records import decode_envelope

    [ndjson] = [block for block in readme_blocks("") if block.startswith("{")]
    requests, rejections = decode_envelope(ndjson.encode())
    assert [r.event_id for r in requests] == ["e0", "e2"]
    assert [(r.reason, r.field, r.index) for r in rejections] == [("out_of_range", "input_tokens", 1)]


@pytest.mark.parametrize("example", MEMBERSHIP_SCHEMA["examples"])
def test_membership_examples_are_valid_and_decode(example):
    membership_validator.validate(example)
    assert decode_membership(json.dumps(example).encode()).account_id == example["account_id"]


def test_membership_changes_of_a_replay_validate_and_round_trip():
    """Joins, leaves and resolutions as the campaign stages make them: the encoder writes membership.v1,
    and the decoder gives back the change (``since`` to the millisecond)."""
    chained = ChainedStages()
    changes = []
    for record in generate(Scenario.demo(seed=3)):
        changes += chained.detector.process(decode_request(orjson.dumps(record)), chained.campaigns).memberships
    assert any(change.campaign_id for change in changes)
    for change in changes:
        value = encode_membership(change)
        membership_validator.validate(json.loads(value))
        decoded = decode_membership(value)
        assert decoded[:2] == change[:2] and abs(decoded.since - change.since) < 0.001


@pytest.mark.parametrize(
    "broken",
    [
        {"account_id": "", "campaign_id": None, "since": "2026-03-02T08:14:03.512Z"},
        {"account_id": "a", "campaign_id": "campaign-1", "since": "2026-03-02T08:14:03.512Z"},
        {"account_id": "a", "campaign_id": None, "since": 1772409600.0},
        {"account_id": "a", "campaign_id": None},
    ],
)
def test_membership_with_a_broken_field_is_invalid(broken):
    assert not membership_validator.is_valid(broken)

"""incidents.events.parse_record: every accepted shape and every rejection, message asserted."""

import hashlib
import json
from datetime import UTC, datetime

import pytest

from incidents.context import UPSTREAM_KEY, upstream_view
from incidents.events import (
    CLUSTER_HINT,
    IgnoredRecord,
    RejectedRecord,
    derive_fault_id,
    fault_id_for,
    parse_record,
)

SEVERITIES = "critical, high, medium, low, info, warning, error"


def upstream_keys(context: str) -> dict:
    """The stored context without what ingestion adds under UPSTREAM_KEY."""
    parsed = json.loads(context)
    parsed.pop(UPSTREAM_KEY)
    return parsed


def payload(**overrides) -> dict:
    """The resource-faults payload as kubernetes-mcp-server sends it (camelCase)."""
    values = {
        "faultId": "f7a3b2c1d4e5f6a7",
        "subscriptionId": "sub-abc12345",
        "cluster": "prod-us-east-1",
        "faultType": "CrashLoop",
        "severity": "critical",
        "resource": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "api-7f8b9c",
            "namespace": "payments",
            "uid": "abc123-def456",
        },
        "context": "Back-off restarting failed container",
        "timestamp": "2025-12-20T15:30:00Z",
        "logs": [{"container": "api", "previous": True, "hasPanic": False, "sample": "boom"}],
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not ...}


def faults_payload(**event_overrides) -> dict:
    """The kubernetes/faults shape: an event, logs, no faultId."""
    event = {
        "namespace": "payments",
        "timestamp": "2025-12-20T15:30:00Z",
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container api",
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "api-7f8b9c",
            "namespace": "payments",
            "uid": "abc123-def456",
        },
        "count": 4,
    }
    event.update(event_overrides)
    event = {key: value for key, value in event.items() if value is not ...}
    return {
        "subscriptionId": "sub-abc12345",
        "cluster": "prod-us-east-1",
        "event": event,
        "logs": [{"container": "api", "previous": True, "hasPanic": True, "sample": "panic: x"}],
    }


def envelope(data, logger="kubernetes/resource-faults", level="warning") -> dict:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": level, "logger": logger, "data": data},
    }


def rejected(raw, **kwargs) -> str:
    with pytest.raises(RejectedRecord) as caught:
        parse_record(raw, **kwargs)
    return caught.value.reason


# -- accepted shapes ------------------------------------------------------------------------
def test_camel_case_payload_fills_every_column():
    event = parse_record(payload())
    assert event._state.adding  # unsaved
    assert event.fault_id == "f7a3b2c1d4e5f6a7"
    assert event.subscription_id == "sub-abc12345"
    assert event.cluster == "prod-us-east-1"
    assert event.fault_type == "CrashLoop"
    assert event.severity == "critical"
    assert (event.resource_api_version, event.resource_kind) == ("v1", "Pod")
    assert (event.resource_name, event.resource_namespace) == ("api-7f8b9c", "payments")
    assert event.resource_uid == "abc123-def456"
    assert event.timestamp == datetime(2025, 12, 20, 15, 30, tzinfo=UTC)
    assert event.received_at.tzinfo is not None


def test_context_keeps_upstream_context_logs_and_unknown_keys():
    event = parse_record(payload(restartCount=7, labels={"team": "payments"}))
    context = upstream_keys(event.context)
    assert context == {
        "context": "Back-off restarting failed container",
        "logs": [{"container": "api", "previous": True, "hasPanic": False, "sample": "boom"}],
        "restartCount": 7,
        "labels": {"team": "payments"},
    }


def test_a_second_spelling_of_a_field_is_kept_in_context_not_dropped():
    raw = payload(fault_id="other-id", resource_kind="Deployment")
    event = parse_record(raw)
    assert (event.fault_id, event.resource_kind) == ("f7a3b2c1d4e5f6a7", "Pod")
    context = json.loads(event.context)
    assert (context["fault_id"], context["resource_kind"]) == ("other-id", "Deployment")


def test_unknown_resource_keys_are_kept_in_context():
    resource = {"kind": "Pod", "name": "api", "labels": {"app": "api"}}
    context = json.loads(parse_record(payload(resource=resource)).context)
    assert context["resource"] == {"labels": {"app": "api"}}


def test_payload_without_optional_fields():
    event = parse_record(payload(subscriptionId=..., resource=..., context=..., logs=...))
    assert event.subscription_id == ""
    assert event.resource_kind == event.resource_name == ""
    assert upstream_keys(event.context) == {}


def test_snake_case_column_names_are_accepted():
    raw = {
        "fault_id": "f1",
        "subscription_id": "sub-1",
        "cluster": "prod-eu-west-1",
        "fault_type": "OOMKilled",
        "severity": "high",
        "resource_api_version": "apps/v1",
        "resource_kind": "Deployment",
        "resource_name": "ledger",
        "resource_namespace": "payments",
        "resource_uid": "u-1",
        "context": "killed",
        "timestamp": "2025-12-20T15:30:00+02:00",
    }
    event = parse_record(raw)
    assert (event.fault_id, event.subscription_id, event.fault_type) == ("f1", "sub-1", "OOMKilled")
    assert (event.resource_kind, event.resource_name, event.resource_uid) == (
        "Deployment",
        "ledger",
        "u-1",
    )
    assert event.resource_api_version == "apps/v1"
    assert event.timestamp == datetime(2025, 12, 20, 13, 30, tzinfo=UTC)
    assert upstream_keys(event.context) == {"context": "killed"}


def test_nested_resource_with_snake_case_keys():
    event = parse_record(payload(resource={"api_version": "batch/v1", "kind": "Job"}))
    assert (event.resource_api_version, event.resource_kind) == ("batch/v1", "Job")


@pytest.mark.parametrize("form", ["dict", "str", "bytes"])
def test_record_may_be_an_object_text_or_bytes(form):
    raw = {"dict": payload(), "str": json.dumps(payload()), "bytes": json.dumps(payload()).encode()}
    assert parse_record(raw[form]).fault_id == "f7a3b2c1d4e5f6a7"


@pytest.mark.parametrize("data_as_string", [False, True])
@pytest.mark.parametrize("logger", ["kubernetes/resource-faults", "kubernetes/faults"])
def test_mcp_envelope_with_data_as_object_or_json_string(logger, data_as_string):
    data = payload() if logger == "kubernetes/resource-faults" else faults_payload()
    raw = envelope(json.dumps(data) if data_as_string else data, logger=logger)
    event = parse_record(json.dumps(raw))
    assert event.cluster == "prod-us-east-1"
    assert event.resource_name == "api-7f8b9c"


def test_bare_notification_params_are_accepted():
    params = {"level": "warning", "logger": "kubernetes/resource-faults", "data": payload()}
    assert parse_record(params).fault_id == "f7a3b2c1d4e5f6a7"


@pytest.mark.parametrize("logger", ["kubernetes/subscription_error", "kubernetes/events", "", None])
def test_other_loggers_are_ignored_with_their_data(logger):
    data = {"subscriptionId": "sub-1", "error": "watch closed", "degraded": True}
    with pytest.raises(IgnoredRecord) as caught:
        parse_record(envelope(data, logger=logger, level="error"))
    assert caught.value.logger == str(logger)
    assert caught.value.data == data


def test_other_notification_methods_are_ignored():
    with pytest.raises(IgnoredRecord):
        parse_record({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})


# -- severity -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("critical", "critical"),
        ("HIGH", "high"),
        ("Medium", "medium"),
        (" low ", "low"),
        ("info", "low"),
        ("warning", "medium"),
        ("ERROR", "high"),
    ],
)
def test_severity_is_case_insensitive_and_upstream_levels_are_mapped(given, stored):
    assert parse_record(payload(severity=given)).severity == stored


def test_severity_map_comes_from_the_setting(settings):
    settings.TRIAGE_SEVERITY_MAP = {"warning": "high", "fatal": "critical"}
    assert parse_record(payload(severity="warning")).severity == "high"
    assert parse_record(payload(severity="FATAL")).severity == "critical"
    assert rejected(payload(severity="info")) == (
        "severity 'info' is not one of critical, high, medium, low, warning, fatal"
    )


# -- the kubernetes/faults shape ------------------------------------------------------------
def test_faults_shape_maps_reason_object_and_timestamp():
    event = parse_record(faults_payload())
    assert event.fault_type == "BackOff"
    assert (event.resource_kind, event.resource_name) == ("Pod", "api-7f8b9c")
    assert (event.resource_namespace, event.resource_uid) == ("payments", "abc123-def456")
    assert event.resource_api_version == "v1"
    assert event.subscription_id == "sub-abc12345"
    assert event.timestamp == datetime(2025, 12, 20, 15, 30, tzinfo=UTC)
    context = json.loads(event.context)
    assert context["context"] == "Back-off restarting failed container api"
    assert context["logs"][0]["hasPanic"] is True
    assert context["event"] == {"namespace": "payments", "type": "Warning", "count": 4}


def test_faults_shape_severity_from_envelope_level_hint_or_medium():
    assert parse_record(faults_payload()).severity == "medium"
    assert parse_record(envelope(faults_payload(), "kubernetes/faults", "error")).severity == "high"
    assert parse_record(envelope(faults_payload(), "kubernetes/faults", "info")).severity == "low"
    assert parse_record(faults_payload(), level_hint="error").severity == "high"


def test_faults_shape_fault_id_is_deterministic_per_cluster_reason_and_object():
    first = parse_record(faults_payload())
    resent = parse_record(faults_payload(timestamp="2025-12-20T15:35:00Z", count=9))
    other_reason = parse_record(faults_payload(reason="Unhealthy"))
    assert first.fault_id == resent.fault_id
    assert first.fault_id != other_reason.fault_id
    assert len(first.fault_id) == 16
    assert first.fault_id == fault_id_for("prod-us-east-1", "BackOff", uid="abc123-def456")


def test_faults_shape_without_uid_keys_on_namespace_kind_and_name():
    involved = {"kind": "Node", "name": "ip-10-0-3-17"}
    event = parse_record(faults_payload(involvedObject=involved, namespace=...))
    assert event.fault_id == fault_id_for(
        "prod-us-east-1", "BackOff", kind="Node", name="ip-10-0-3-17"
    )
    assert event.resource_namespace == ""


def test_faults_shape_falls_back_to_last_timestamp():
    event = parse_record(faults_payload(timestamp="", lastTimestamp="2025-12-20T16:00:00Z"))
    assert event.timestamp == datetime(2025, 12, 20, 16, 0, tzinfo=UTC)


# -- timestamps -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2025-12-20T15:30:00Z", datetime(2025, 12, 20, 15, 30, tzinfo=UTC)),
        ("2025-12-20t15:30:00z", datetime(2025, 12, 20, 15, 30, tzinfo=UTC)),
        ("2025-12-20T15:30:00.123456789Z", datetime(2025, 12, 20, 15, 30, 0, 123456, tzinfo=UTC)),
        ("2025-12-20T17:30:00+02:00", datetime(2025, 12, 20, 15, 30, tzinfo=UTC)),
        ("2025-12-20 15:30:00-00:00", datetime(2025, 12, 20, 15, 30, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps(given, expected):
    parsed = parse_record(payload(timestamp=given)).timestamp
    assert parsed == expected
    assert parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "given",
    ["yesterday", "2025-12-20", "2025-12-20T15:30:00", "2025-13-20T15:30:00Z", "1734708600", ""],
)
def test_timestamps_that_are_not_rfc3339_are_rejected(given):
    assert rejected(payload(timestamp=given)) == f"timestamp {given!r} is not RFC 3339"


def test_numeric_timestamp_is_rejected():
    assert rejected(payload(timestamp=1734708600)) == "timestamp 1734708600 is not RFC 3339"


# -- rejections -----------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["faultType", "severity", "timestamp"])
def test_each_required_field_missing(field):
    assert rejected(payload(**{field: ...})) == f"missing {field}"


def test_a_missing_cluster_says_to_pass_cluster():
    assert rejected(payload(cluster=...)) == f"missing cluster ({CLUSTER_HINT})"
    assert "--cluster NAME" in CLUSTER_HINT


def test_a_missing_fault_id_without_a_uid_to_derive_it_from_is_rejected():
    raw = payload(faultId=..., resource={"kind": "Pod", "name": "api"})
    assert rejected(raw) == "missing faultId, and no resource.uid to derive it from"


@pytest.mark.parametrize("field", ["faultId", "faultType"])
def test_required_text_fields_may_not_be_blank(field):
    assert rejected(payload(**{field: "  "})) == f"{field} is empty"


def test_a_blank_cluster_says_to_pass_cluster():
    assert rejected(payload(cluster="  ")) == f"cluster is empty ({CLUSTER_HINT})"


def test_unknown_severity():
    assert rejected(payload(severity="urgent")) == (f"severity 'urgent' is not one of {SEVERITIES}")


def test_severity_of_the_wrong_type():
    assert rejected(payload(severity=3)) == f"severity 3 is not one of {SEVERITIES}"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"faultId": 12}, "faultId is a JSON number, not a string"),
        ({"cluster": ["a"]}, "cluster is a JSON array, not a string"),
        ({"resource": "pod/api"}, "resource is a JSON string, not a JSON object"),
        ({"resource": {"kind": 1}}, "resource.kind is a JSON number, not a string"),
        ({"faultId": "x" * 256}, "faultId is longer than 255 characters"),
        ({"cluster": "prod\x00"}, "cluster contains a NUL character"),
        ({"faultType": "Crash\ud800"}, "faultType is not valid Unicode (a lone surrogate)"),
    ],
)
def test_wrong_types_lengths_and_characters(overrides, reason):
    assert rejected(payload(**overrides)) == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "record is not valid JSON: Expecting value at line 1 column 1"),
        ('{"faultId": ', "record is not valid JSON: Expecting value at line 1 column 13"),
        ("[1, 2]", "record is a JSON array, not a JSON object"),
        ('"text"', "record is a JSON string, not a JSON object"),
        ("null", "record is JSON null, not a JSON object"),
        (b"\xff\xfe{}", "record is not UTF-8 text (invalid start byte)"),
    ],
)
def test_broken_json(raw, reason):
    assert rejected(raw) == reason


def test_envelope_with_broken_data():
    assert rejected(envelope("{not json")) == (
        "params.data is not valid JSON: Expecting property name enclosed in double quotes "
        "at line 1 column 2"
    )
    assert rejected(envelope(None)) == "missing params.data"
    assert rejected(envelope([1])) == "params.data is a JSON array, not a JSON object"
    bad_params = {"jsonrpc": "2.0", "method": "notifications/message", "params": "x"}
    assert rejected(bad_params) == "params is missing or not an object"


def test_envelope_with_unknown_level_for_faults_shape():
    raw = envelope(faults_payload(), "kubernetes/faults", "debug")
    assert rejected(raw) == f"level 'debug' is not one of {SEVERITIES}"


@pytest.mark.parametrize(
    ("event_overrides", "reason"),
    [
        ({"reason": ...}, "missing event.reason"),
        ({"involvedObject": ...}, "missing event.involvedObject"),
        ({"involvedObject": {"kind": "Pod"}}, "event.involvedObject has neither uid nor name"),
        ({"timestamp": ...}, "missing event.timestamp"),
        ({"timestamp": "soon"}, "event.timestamp 'soon' is not RFC 3339"),
    ],
)
def test_faults_shape_rejections(event_overrides, reason):
    assert rejected(faults_payload(**event_overrides)) == reason


def test_faults_shape_needs_a_cluster():
    raw = faults_payload()
    del raw["cluster"]
    assert rejected(raw) == f"missing cluster ({CLUSTER_HINT})"


@pytest.mark.parametrize("form", ["str", "bytes", "dict"])
def test_oversized_records_are_rejected_not_truncated(settings, form):
    settings.TRIAGE_MAX_RECORD_BYTES = 2048
    big = payload(context="x" * 4096)
    raw = {"str": json.dumps(big), "bytes": json.dumps(big).encode(), "dict": big}[form]
    size = len(json.dumps(big, ensure_ascii=False).encode())
    assert rejected(raw) == f"record is {size} bytes, over the limit of 2048 bytes"


def test_oversized_check_counts_utf8_bytes_not_characters(settings):
    settings.TRIAGE_MAX_RECORD_BYTES = 2048
    text = json.dumps(payload(context="é" * 1000), ensure_ascii=False)
    assert len(text) < 2048 < len(text.encode())
    assert rejected(text).startswith("record is ")


@pytest.mark.parametrize("hostile", ["<script>alert(1)</script>", "javascript:x", "' OR 1=1 --"])
def test_hostile_text_is_kept_verbatim_for_escaping_later(hostile):
    event = parse_record(payload(context=hostile, resource={"name": hostile}))
    assert event.resource_name == hostile
    assert json.loads(event.context)["context"] == hostile


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12", "record is a JSON number, not a JSON object"),
        ("true", "record is a JSON boolean, not a JSON object"),
        (12, "record is a int, not JSON text or an object"),
        (
            {"jsonrpc": "2.0", "method": "notifications/message",
             "params": {"level": 3, "logger": "kubernetes/faults", "data": {}}},
            "params.level is a JSON number, not a string",
        ),
        (
            {"cluster": "c", "event": "BackOff", "logs": []},
            "event is a JSON string, not a JSON object",
        ),
        (
            {"cluster": "c", "logs": [],
             "event": {"reason": "BackOff", "involvedObject": ["pod"]}},
            "event.involvedObject is a JSON array, not a JSON object",
        ),
        (
            {"cluster": "c", "logs": [],
             "event": {"reason": "BackOff", "involvedObject": {"name": 7}}},
            "event.involvedObject.name is a JSON number, not a string",
        ),
        (
            {"cluster": "c", "severity": "urgent", "logs": [],
             "event": {"reason": "BackOff", "involvedObject": {"name": "p"},
                       "timestamp": "2025-12-20T15:30:00Z"}},
            f"severity 'urgent' is not one of {SEVERITIES}",
        ),
    ],
)  # fmt: skip
def test_every_other_shape_error_names_the_field(raw, reason):
    assert rejected(raw) == reason


# -- issue 20 F2/F6: timestamps outside the accepted range -----------------------------------
@pytest.mark.parametrize(
    "given",
    [
        "9999-12-31T23:30:00-01:00",  # past datetime's last day once moved to UTC
        "0001-01-01T00:30:00+01:00",  # before datetime's first day once moved to UTC
        "0001-01-01T00:00:00Z",  # Go's zero time
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
    ],
)
def test_timestamps_outside_the_accepted_range_are_rejected_naming_the_field(given):
    assert rejected(payload(timestamp=given)) == (
        f"timestamp {given!r} is out of range "
        "(accepted from 2000-01-01T00:00:00Z up to 2100-01-01T00:00:00Z)"
    )


def test_the_ends_of_the_accepted_range():
    assert parse_record(payload(timestamp="2000-01-01T01:00:00+01:00")).timestamp == datetime(
        2000, 1, 1, tzinfo=UTC
    )
    assert parse_record(payload(timestamp="2099-12-31T23:59:59Z")).timestamp.year == 2099


def test_an_out_of_range_event_timestamp_names_its_field():
    reason = rejected(faults_payload(timestamp="9999-12-31T23:30:00-01:00"))
    assert reason.startswith("event.timestamp '9999-12-31T23:30:00-01:00' is out of range")


# -- issue 12: --cluster, derived ids, bare events, what upstream sent -----------------------
def test_cluster_fills_an_empty_cluster_and_replaces_the_servers_keeping_it():
    in_cluster = parse_record(payload(cluster=""), cluster="prod-eu-1")
    named = parse_record(payload(), cluster="prod-eu-1")
    assert in_cluster.cluster == named.cluster == "prod-eu-1"
    assert upstream_view(in_cluster)["server_cluster"] == ""
    assert upstream_view(named)["server_cluster"] == "prod-us-east-1"
    old_shape = parse_record(faults_payload(), cluster="prod-eu-1")
    assert old_shape.cluster == "prod-eu-1"
    assert old_shape.fault_id == fault_id_for("prod-eu-1", "BackOff", uid="abc123-def456")


def test_a_fault_without_fault_id_gets_upstreams_id_on_the_stored_cluster():
    event = parse_record(payload(faultId=...))
    assert event.fault_id == derive_fault_id("prod-us-east-1", "CrashLoop", "abc123-def456")
    assert (
        event.fault_id
        == hashlib.sha256(b"prod-us-east-1:CrashLoop:abc123-def456:").hexdigest()[:16]
    )
    assert upstream_view(event)["fault_id_derived"] is True
    assert upstream_view(parse_record(payload()))["fault_id_derived"] is False
    renamed = parse_record(payload(faultId=...), cluster="prod-eu-1")
    assert renamed.fault_id == derive_fault_id("prod-eu-1", "CrashLoop", "abc123-def456")


def test_a_bare_event_payload_without_logs_is_an_events_mode_event_and_ignored():
    bare = faults_payload()
    del bare["logs"]
    with pytest.raises(IgnoredRecord) as ignored:
        parse_record(bare)
    assert ignored.value.logger.startswith("kubernetes/events")
    # Under logger kubernetes/faults the same object is the old fault shape: stored.
    assert parse_record(envelope(bare, "kubernetes/faults")).fault_type == "BackOff"
    # With logs, bare, it is the old fault shape too.
    assert parse_record(faults_payload()).fault_type == "BackOff"


def test_upstream_view_gives_back_severity_context_timestamp_and_the_record():
    text = json.dumps(payload(severity="warning", timestamp="2025-12-19T22:11:10+01:00"))
    event = parse_record(text)
    assert event.severity == "medium"
    assert upstream_view(event) == {
        "severity": "warning",
        "context": "Back-off restarting failed container",
        "timestamp": "2025-12-19T22:11:10+01:00",
        "cluster": "prod-us-east-1",
        "server_cluster": "prod-us-east-1",
        "fault_id_derived": False,
        "raw": text,
    }


def test_upstream_view_of_the_old_shape_gives_the_level_and_the_message():
    view = upstream_view(parse_record(envelope(faults_payload(), "kubernetes/faults", "error")))
    assert (view["severity"], view["context"]) == (
        "error",
        "Back-off restarting failed container api",
    )
    assert view["timestamp"] == "2025-12-20T15:30:00Z"


def test_upstream_view_of_a_row_stored_before_answers_from_the_columns():
    event = parse_record(payload())
    event.context = json.dumps({"context": "older"})
    view = upstream_view(event)
    assert (view["severity"], view["context"], view["raw"]) == ("critical", "older", None)
    assert view["timestamp"] == "2025-12-20T15:30:00Z"
    event.context = "not json"
    assert upstream_view(event)["context"] == ""


def test_a_payload_key_named_like_ours_is_kept_beside_it():
    event = parse_record(payload(_upstream={"severity": "forged"}))
    stored = json.loads(event.context)
    assert stored["_upstream (sent)"] == {"severity": "forged"}
    assert upstream_view(event)["severity"] == "critical"

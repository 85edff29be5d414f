"""incidents.ingest: outcomes, batches, retries, dry runs, reading streams, concurrent ingesters."""

import io
import json
import logging
import threading
from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, OperationalError, connection, connections
from django.test.utils import CaptureQueriesContext

from incidents import store_batch, streams
from incidents.choices import Status
from incidents.ingest import IngestCounts, IngestionService, Outcome, Rejection
from incidents.models import DENORMALIZED_FIELDS, FaultEvent, Incident
from incidents.streams import iter_records
from tests.builders import make_fault_event, make_incident

pytestmark = pytest.mark.django_db


def record(fault_id="f7a3b2c1d4e5f6a7", ts="2025-12-20T15:30:00Z", **overrides) -> dict:
    values = {
        "faultId": fault_id,
        "subscriptionId": "sub-abc12345",
        "cluster": "prod-us-east-1",
        "faultType": "CrashLoop",
        "severity": "critical",
        "resource": {"apiVersion": "v1", "kind": "Pod", "name": "api-7f8b9c",
                     "namespace": "payments", "uid": "abc123-def456"},
        "context": "Back-off restarting failed container",
        "timestamp": ts,
        "logs": [{"container": "api", "previous": True, "hasPanic": False, "sample": "boom"}],
    }  # fmt: skip
    values.update(overrides)
    return values


def ingest_all(records, **kwargs) -> IngestionService:
    service = IngestionService(**kwargs)
    for number, raw in enumerate(records, start=1):
        service.add(raw, source="test", line=number)
    service.flush()
    return service


def counts(service) -> dict:
    c = service.counts
    return {
        "received": c.received,
        "created": c.created,
        "duplicate": c.duplicate,
        "coalesced": c.coalesced,
        "rejected": c.rejected,
        "ignored": c.ignored,
    }


# -- outcomes -------------------------------------------------------------------------------
def test_created_writes_the_fault_and_a_pending_incident_with_its_fields():
    service = ingest_all([record()])
    assert counts(service)["created"] == 1
    event = FaultEvent.objects.get()
    incident = Incident.objects.get()
    assert incident.status == Status.PENDING
    assert incident.fault_id == event.fault_id == "f7a3b2c1d4e5f6a7"
    for name in DENORMALIZED_FIELDS:
        assert getattr(incident, name) == getattr(event, name), name
    assert incident.timestamp == datetime(2025, 12, 20, 15, 30, tzinfo=UTC)
    assert json.loads(incident.context)["logs"][0]["sample"] == "boom"
    assert incident.started_at is None and incident.completed_at is None


def test_replaying_the_same_records_is_all_duplicates():
    records = [record(f"f{n}", ts=f"2025-12-20T15:{n:02d}:00Z") for n in range(30)]
    ingest_all(records, batch_size=7)
    replay = ingest_all(records, batch_size=7)
    assert counts(replay) == {
        "received": 30, "created": 0, "duplicate": 30, "coalesced": 0, "rejected": 0, "ignored": 0,
    }  # fmt: skip
    assert Incident.objects.count() == 30
    assert FaultEvent.objects.count() == 30


def test_a_replay_within_one_batch_is_a_duplicate():
    service = ingest_all([record(), record()])
    assert (service.counts.created, service.counts.duplicate) == (1, 1)


def test_a_later_occurrence_of_an_open_fault_is_coalesced():
    service = ingest_all([record(ts="2025-12-20T15:30:00Z"), record(ts="2025-12-20T15:35:00Z")])
    assert (service.counts.created, service.counts.coalesced) == (1, 1)
    assert Incident.objects.count() == 1


@pytest.mark.parametrize("status", [Status.PENDING, Status.INVESTIGATING])
def test_coalesced_into_an_existing_open_incident(status):
    event = make_fault_event(save=True, fault_id="f-open")
    make_incident(event=event, status=status)
    service = ingest_all([record("f-open", ts="2030-01-01T00:00:00Z")])
    assert service.counts.coalesced == 1
    assert Incident.objects.count() == 1


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.FAILED, Status.AGENT_FAILED])
def test_a_new_occurrence_after_the_incident_completed_opens_a_new_one(store, status):
    ingest_all([record(ts="2025-12-20T15:30:00Z")])
    first = Incident.objects.get()
    store.update_incident_status(first.incident_id, Status.INVESTIGATING)
    store.complete_incident(first.incident_id, 0 if status == Status.RESOLVED else 1, status=status)
    service = ingest_all([record(ts="2025-12-20T16:30:00Z")])
    assert service.counts.created == 1
    assert Incident.objects.filter(status=Status.PENDING).count() == 1
    assert Incident.objects.count() == 2


def test_replaying_a_completed_occurrence_is_still_a_duplicate(store):
    ingest_all([record()])
    first = Incident.objects.get()
    store.update_incident_status(first.incident_id, Status.INVESTIGATING)
    store.complete_incident(first.incident_id, 0)
    service = ingest_all([record()])
    assert service.counts.duplicate == 1
    assert Incident.objects.count() == 1


def test_an_existing_fault_row_is_kept_and_the_incident_copies_this_occurrence():
    make_fault_event(save=True, fault_id="f-known", cluster="prod-eu-west-1", severity="low")
    ingest_all([record("f-known", cluster="prod-us-east-1", severity="critical")])
    assert FaultEvent.objects.get().cluster == "prod-eu-west-1"
    incident = Incident.objects.get()
    assert (incident.cluster, incident.severity) == ("prod-us-east-1", "critical")


def test_rejected_records_reach_on_reject_unchanged_and_valid_ones_are_kept():
    rejections: list[Rejection] = []
    bad = '{"faultId": "x", "cluster": "c", "faultType": "t", "severity": "urgent"}'
    service = IngestionService(on_reject=rejections.append)
    service.add(record("good-1"), source="a.jsonl", line=1)
    service.add(bad, source="a.jsonl", line=2)
    service.add(b"\xff not utf-8", source="a.jsonl", line=3)
    service.add(json.dumps(record("good-2")), source="a.jsonl", line=4)
    service.flush()
    assert counts(service) == {
        "received": 4, "created": 2, "duplicate": 0, "coalesced": 0, "rejected": 2, "ignored": 0,
    }  # fmt: skip
    assert rejections[0] == Rejection(
        source="a.jsonl",
        line=2,
        reason="severity 'urgent' is not one of critical, high, medium, low, info, warning, error",
        raw=bad,
    )
    assert rejections[1].line == 3
    assert rejections[1].raw.encode("utf-8", "surrogateescape") == b"\xff not utf-8"
    assert set(Incident.objects.values_list("fault_id", flat=True)) == {"good-1", "good-2"}


def test_rejection_of_an_object_carries_it_as_json_text():
    rejections: list[Rejection] = []
    raw = record(severity="urgent")
    ingest_all([raw], on_reject=rejections.append)
    assert json.loads(rejections[0].raw) == raw


def test_ignored_notifications_are_counted_and_logged_with_their_data(caplog):
    note = {"jsonrpc": "2.0", "method": "notifications/message",
            "params": {"level": "error", "logger": "kubernetes/subscription_error",
                       "data": {"error": "watch closed", "degraded": True}}}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="incidents.ingest"):
        service = ingest_all([note])
    assert counts(service)["ignored"] == 1
    assert Incident.objects.count() == 0
    (message,) = [r for r in caplog.records if r.name == "incidents.ingest"]
    assert message.levelno == logging.WARNING
    assert "kubernetes/subscription_error" in message.getMessage()
    assert '"watch closed"' in message.getMessage()
    assert message.getMessage().startswith("test:1:")


def test_mcp_envelopes_from_the_subscriber_are_ingested():
    service = IngestionService()
    params = {"level": "warning", "logger": "kubernetes/resource-faults", "data": record()}
    service.add({"jsonrpc": "2.0", "method": "notifications/message", "params": params})
    assert service.pending() == 1
    service.flush()
    assert service.pending() == 0
    assert service.counts.created == 1


def test_summary_line_is_exactly_the_contracts():
    c = IngestCounts(
        received=10, created=3, duplicate=2, coalesced=1, silenced=1, rejected=2, ignored=1
    )
    assert c.summary() == (
        "received 10: created 3, duplicate 2, coalesced 1, silenced 1, rejected 2, ignored 1"
    )
    assert [o.value for o in Outcome] == [
        "created", "duplicate", "coalesced", "silenced", "rejected", "ignored",
    ]  # fmt: skip


# -- batches --------------------------------------------------------------------------------
def test_add_flushes_by_itself_when_the_batch_is_full():
    service = IngestionService(batch_size=3)
    for n in range(7):
        service.add(record(f"f{n}"))
    assert service.pending() == 1
    assert Incident.objects.count() == 6
    service.flush()
    assert Incident.objects.count() == 7


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        IngestionService(batch_size=0)


def _queries_for(n: int, offset: int) -> int:
    service = IngestionService(batch_size=10_000)
    for i in range(n):
        service.add(record(f"q{offset + i}", ts="2025-12-20T15:30:00Z"))
    with CaptureQueriesContext(connection) as queries:
        service.flush()
    assert service.counts.created == n
    return len(queries)


def test_a_batch_costs_the_same_queries_for_2_records_as_for_200():
    assert _queries_for(2, 0) == _queries_for(200, 1000)


def test_a_batch_refused_by_the_database_is_retried_record_by_record(monkeypatch):
    """One row the database refuses is rejected; the rest of its batch is kept."""
    writer_name = "_copy_insert" if connection.vendor == "postgresql" else "_executemany_insert"
    real_writer = getattr(store_batch, writer_name)

    def refuse_poison(conn, to_create):
        if any(p.event.fault_id == "poison" for p in to_create):
            raise IntegrityError('new row violates check constraint "simulated"')
        return real_writer(conn, to_create)

    monkeypatch.setattr(store_batch, writer_name, refuse_poison)
    rejections: list[Rejection] = []
    records = [record(f"ok{n}") for n in range(4)]
    records.insert(2, record("poison"))
    service = ingest_all(records, batch_size=100, on_reject=rejections.append)
    assert (service.counts.created, service.counts.rejected) == (4, 1)
    assert rejections[0].line == 3
    assert rejections[0].reason == 'database: new row violates check constraint "simulated"'
    assert not Incident.objects.filter(fault_id="poison").exists()
    assert Incident.objects.count() == 4


def test_an_error_that_is_no_rows_fault_propagates_and_keeps_the_batch(monkeypatch):
    writer_name = "_copy_insert" if connection.vendor == "postgresql" else "_executemany_insert"

    def broken(conn, to_create):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(store_batch, writer_name, broken)
    rejections: list[Rejection] = []
    service = IngestionService(on_reject=rejections.append)
    for n in range(3):
        service.add(record(f"f{n}"))
    with pytest.raises(OperationalError):
        service.flush()
    assert service.pending() == 3  # nothing lost: a later flush() retries them
    assert rejections == [] and service.counts.rejected == 0
    monkeypatch.undo()
    service.flush()
    assert service.counts.created == 3


def test_dry_run_classifies_but_writes_nothing():
    make_incident(event=make_fault_event(save=True, fault_id="f-open"))
    records = [record("new"), record("new", ts="2025-12-20T15:31:00Z"), record("f-open"),
               record("new"), record(severity="urgent")]  # fmt: skip
    service = ingest_all(records, dry_run=True, batch_size=2)
    assert counts(service) == {
        "received": 5, "created": 1, "duplicate": 1, "coalesced": 2, "rejected": 1, "ignored": 0,
    }  # fmt: skip
    assert Incident.objects.count() == 1
    assert not FaultEvent.objects.filter(pk="new").exists()


# -- reading streams ------------------------------------------------------------------------
def read(data: bytes) -> list[tuple[int, bytes, str | None]]:
    return [(r.line, r.raw, r.error) for r in iter_records(io.BytesIO(data))]


@pytest.mark.parametrize("first", [b'{"faultId": "trunc",', b"garbage", b"[1, 2]"], ids=repr)
def test_a_broken_first_line_of_json_lines_loses_no_other_line(first):
    data = first + b'\n\n{"a": 1}\n{"b": 2}\n'
    assert read(data) == [(1, first, None), (3, b'{"a": 1}', None), (4, b'{"b": 2}', None)]


def test_a_pretty_printed_object_is_still_one_record():
    data = b'{\n  "faultId": "x",\n  "logs": [\n    {"container": "api"}\n  ]\n}\n'
    assert read(data) == [(1, data.strip(), None)]


def test_an_array_with_one_item_per_line_is_still_an_array():
    assert read(b'[\n{"a": 1}\n]\n') == [(2, b'{"a": 1}', None)]


def test_json_lines_skip_blank_lines_and_keep_line_numbers():
    data = b'{"a": 1}\n\n  \n{"b": 2}\r\nnot json\n{"c": 3}'
    assert read(data) == [
        (1, b'{"a": 1}', None),
        (4, b'{"b": 2}', None),
        (5, b"not json", None),
        (6, b'{"c": 3}', None),
    ]


def test_a_byte_order_mark_and_leading_blank_lines_are_skipped():
    assert read(b'\xef\xbb\xbf\n{"a": 1}\n') == [(2, b'{"a": 1}', None)]


def test_empty_input_has_no_records():
    assert read(b"") == read(b"\n\n") == []


def test_a_json_array_across_lines():
    data = b'[\n  {"a": 1,\n   "b": 2},\n  {"c": 3}\n]\n'
    assert read(data) == [(2, b'{"a": 1,\n   "b": 2}', None), (4, b'{"c": 3}', None)]


def test_a_json_array_on_one_line_and_an_empty_array():
    assert read(b'[{"a": 1}, {"b": 2}]') == [(1, b'{"a": 1}', None), (1, b'{"b": 2}', None)]
    assert read(b"[ ]") == []


def test_one_pretty_printed_object():
    data = b'{\n  "a": 1,\n  "b": [1,\n 2]\n}\n'
    assert read(data) == [(1, data.strip(), None)]


def test_json_values_one_after_another():
    data = b'{"a": 1,\n "b": 2}\n{"c":\n 3}\n'
    assert read(data) == [(1, b'{"a": 1,\n "b": 2}', None), (3, b'{"c":\n 3}', None)]


def test_a_broken_first_line_still_means_json_lines():
    data = b'{"a": oops}\n{"b": 2}\n'
    assert read(data) == [(1, b'{"a": oops}', None), (2, b'{"b": 2}', None)]


def test_a_value_too_long_to_find_its_end_stops_the_stream(monkeypatch, settings):
    settings.TRIAGE_MAX_RECORD_BYTES = 100
    monkeypatch.setattr(streams, "_CHUNK", 10)
    data = b'[{"a": 1},\n{"text": "' + b"x" * 500 + b'"}]'
    records = read(data)
    assert records[0] == (1, b'{"a": 1}', None)
    assert records[1][:1] == (2,)
    assert records[1][2] == "record is over the limit of 100 bytes; the rest is not read"
    assert len(records) == 2


def test_a_large_array_is_read_in_chunks(monkeypatch):
    monkeypatch.setattr(streams, "_CHUNK", 50)
    items = [{"n": n, "text": "x" * (n % 70)} for n in range(500)]
    records = read(json.dumps(items, indent=1).encode())
    assert [json.loads(raw) for _line, raw, _error in records] == items


@pytest.mark.parametrize(
    ("data", "expected_error"),
    [
        (b'[{"a": 1}, {"b": ]', "not valid JSON: Expecting value at line 1"),
        (b'[{"a": 1} {"b": 2}]', "expected ',' or ']' between array items, found '{'"),
        (b'[{"a": 1},\n', "the JSON array is not closed with ']'"),
        (b'[{"a": 1}] trailing', "unexpected text after the JSON array"),
    ],
)
def test_a_broken_array_keeps_what_came_before_and_reports_where(data, expected_error):
    records = read(data)
    assert records[0] == (1, b'{"a": 1}', None)
    assert records[-1][2].startswith(expected_error)
    assert len(records) == 2


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""], ids=["lf", "crlf", "eof"])
def test_a_line_over_the_limit_is_streamed_to_the_sink_and_its_neighbours_read(
    settings, monkeypatch, ending
):
    settings.TRIAGE_MAX_RECORD_BYTES = 64
    monkeypatch.setattr(streams, "_CHUNK", 16)  # the rest of the line comes in many reads
    huge = b'{"padding": "' + b"x" * 1000 + b'"}'
    data = b'{"a": 1}\n' + huge + ending + (b'{"b": 2}\n' if ending else b"")
    sink = io.BytesIO()
    records = list(iter_records(io.BytesIO(data), oversized_sink=sink))
    assert [(r.line, r.raw, r.error, r.copied) for r in records] == [
        (1, b'{"a": 1}', None, False),
        (2, b"", f"record is {len(huge)} bytes, over the limit of 64 bytes", True),
        *([(3, b'{"b": 2}', None, False)] if ending else []),
    ]
    assert sink.getvalue() == huge + (ending or b"\n")


def test_a_first_line_over_the_limit_is_a_rejected_record_of_json_lines(settings):
    settings.TRIAGE_MAX_RECORD_BYTES = 64
    huge = b"[" + b"1," * 500 + b"1]"
    records = read(huge + b'\n{"a": 1}\n')
    assert records == [
        (1, b"", f"record is {len(huge)} bytes, over the limit of 64 bytes"),
        (2, b'{"a": 1}', None),
    ]


def test_a_record_of_exactly_the_limit_is_read_whole(settings):
    settings.TRIAGE_MAX_RECORD_BYTES = 20
    exact = b'{"a": "' + b"x" * 11 + b'"}'
    assert len(exact) == 20
    assert read(exact + b"\r\n" + exact + b"\n") == [(1, exact, None), (2, exact, None)]


# -- concurrency ----------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_ingesters_make_one_incident_per_event():
    records = []
    for n in range(400):
        records.append(record(f"race{n % 150}", ts=f"2025-12-20T{n // 150 + 10}:00:00Z"))
    barrier = threading.Barrier(2)
    results: list[IngestionService] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service = IngestionService(batch_size=50)
            barrier.wait()
            for raw in records:
                service.add(raw)
            service.flush()
            results.append(service)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    # 150 faults; each fault's first occurrence opens its incident, the later ones coalesce.
    assert Incident.objects.count() == 150
    assert Incident.objects.filter(status=Status.PENDING).count() == 150
    assert sum(s.counts.created for s in results) == 150
    for service in results:
        c = service.counts
        assert c.received == 400 and c.rejected == 0
        assert c.created + c.duplicate + c.coalesced == 400


# -- repeats and silences ---------------------------------------------------------------------
def test_repeats_are_counted_on_the_open_incident_and_silenced_faults_open_nothing(
    django_user_model,
):
    from datetime import timedelta

    from django.utils import timezone

    from incidents.models import Silence

    user = django_user_model.objects.create_user("sre")
    Silence.objects.create(
        created_by=user, ends_at=timezone.now() + timedelta(hours=1), comment="known",
        namespace="batch-*",
    )  # fmt: skip
    batch_job = {"apiVersion": "batch/v1", "kind": "Job", "name": "nightly", "namespace": "batch-2"}
    records = [
        record("a", "2025-12-20T15:30:00Z"),
        record("a", "2025-12-20T15:31:00Z"),
        record("a", "2025-12-20T15:32:00Z"),
        record("q", "2025-12-20T15:30:00Z", resource=batch_job),
    ]
    service = ingest_all(records, batch_size=2)
    c = service.counts
    assert (c.created, c.coalesced, c.silenced) == (1, 2, 1)
    assert c.summary().endswith("coalesced 2, silenced 1, rejected 0, ignored 0")
    incident = Incident.objects.get()
    assert incident.occurrences == 3
    assert incident.last_seen_at.isoformat() == "2025-12-20T15:32:00+00:00"
    assert Silence.objects.get().matched == 1

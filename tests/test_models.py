"""The database itself refuses what the schema forbids: each constraint, through raw SQL."""

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from incidents.models import AgentExecution, FaultEvent, Incident, TriageReport
from tests.builders import make_execution, make_fault_event, make_incident, make_report

pytestmark = pytest.mark.django_db


def insert_row(table: str, **values) -> None:
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", list(values.values())
        )


def fault_row(**overrides) -> dict:
    now = timezone.now()
    row = {
        "fault_id": uuid.uuid4().hex,
        "subscription_id": "",
        "cluster": "prod-us-east-1",
        "received_at": now,
        "resource_api_version": "v1",
        "resource_kind": "Pod",
        "resource_name": "api",
        "resource_namespace": "payments",
        "resource_uid": "",
        "fault_type": "CrashLoop",
        "severity": "high",
        "context": "{}",
        "timestamp": now,
    }
    row.update(overrides)
    return row


def incident_row(fault_id: str, **overrides) -> dict:
    row = fault_row(fault_id=fault_id)
    del row["received_at"]
    row.update(
        incident_id=uuid.uuid4().hex if connection.vendor == "sqlite" else uuid.uuid4(),
        status="pending",
        created_at=timezone.now(),
        last_seen_at=row["timestamp"],
    )
    row.update(overrides)
    return row


def test_a_valid_raw_row_is_accepted():
    insert_row("fault_events", **fault_row(fault_id="ok"))
    insert_row("incidents", **incident_row("ok"))
    assert Incident.objects.get().fault_id == "ok"


@pytest.mark.parametrize(
    ("field", "value"),
    [("severity", "urgent"), ("severity", "CRITICAL"), ("cluster", ""), ("fault_type", "")],
)
def test_fault_events_refuse(field, value):
    with pytest.raises(IntegrityError):
        insert_row("fault_events", **fault_row(**{field: value}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "done"),
        ("severity", "urgent"),
        ("cluster", ""),
        ("fault_type", ""),
        ("status", "resolved"),  # terminal without completed_at
        ("status", "agent_failed"),
    ],
)
def test_incidents_refuse(field, value):
    insert_row("fault_events", **fault_row(fault_id="f1"))
    with pytest.raises(IntegrityError):
        insert_row("incidents", **incident_row("f1", **{field: value}))


def test_terminal_status_with_completed_at_is_accepted():
    insert_row("fault_events", **fault_row(fault_id="f1"))
    insert_row("incidents", **incident_row("f1", status="failed", completed_at=timezone.now()))


def test_one_open_incident_per_fault():
    event = make_fault_event(save=True)
    make_incident(event=event, status="investigating")
    make_incident(event=event, status="resolved")  # closed ones do not count
    with pytest.raises(IntegrityError), transaction.atomic():
        make_incident(event=event, status="pending")


def test_incident_needs_an_existing_fault_event():
    # Django's foreign keys are deferred to commit; check them now, inside the test transaction.
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_row("incidents", **incident_row("no-such-fault"))
        connection.check_constraints(table_names=["incidents"])


def test_execution_cannot_complete_before_it_started():
    incident = make_incident()
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        make_execution(incident, started_at=now, completed_at=now - timezone.timedelta(seconds=1))


def test_history_is_protected_from_cascading_deletes():
    incident = make_incident(status="resolved")
    report = make_report(incident)
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        incident.fault.delete()
    with pytest.raises(ProtectedError):
        incident.delete()
    with pytest.raises(ProtectedError):
        report.execution.delete()
    assert TriageReport.objects.count() == 1


def test_log_paths_as_a_list():
    execution = AgentExecution(log_paths="/a/stdout.log, /a/stderr.log,")
    assert execution.log_path_list == ["/a/stdout.log", "/a/stderr.log"]
    execution.log_path_list = ["/b/one.log", "/b/two.log"]
    assert execution.log_paths == "/b/one.log,/b/two.log"


def test_str_and_labels():
    event = make_fault_event(resource_name="api-1", resource_namespace="payments")
    assert event.resource_label == "payments/Pod/api-1"
    assert str(event).startswith("CrashLoop on payments/Pod/api-1 in prod-us-east-1")
    assert FaultEvent(resource_kind="", resource_name="").resource_label == "(no resource)"
    incident = make_incident(event=event, status="investigating")
    assert str(incident) == "CrashLoop on payments/Pod/api-1 (Agent investigating)"
    assert incident.is_open


def test_datetimes_are_aware():
    incident = make_incident()
    incident.refresh_from_db()
    assert timezone.is_aware(incident.created_at)
    assert timezone.is_aware(incident.timestamp)

"""DjangoStateStore: every method, every lifecycle edge, and races on PostgreSQL."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from incidents.choices import Status
from incidents.models import AgentExecution, FaultEvent, Incident, TriageReport
from incidents.store import (
    DjangoStateStore,
    FaultEventNotFound,
    IncidentFilters,
    IncidentNotFound,
    InvalidRecord,
    InvalidTransition,
    StateStore,
)
from tests.builders import make_execution, make_fault_event, make_incident, make_report
from tests.lifecycle import ALLOWED, FORBIDDEN, STATUSES

pytestmark = pytest.mark.django_db


def test_the_status_vocabulary_is_the_designs():
    assert sorted(Status.values) == sorted(STATUSES)


def test_django_store_satisfies_the_protocol(store):
    assert isinstance(store, StateStore)


# -- create_incident -------------------------------------------------------------------------
def test_create_incident_saves_event_and_pending_incident(store):
    event = make_fault_event()
    incident = store.create_incident(event)
    incident.refresh_from_db()
    assert incident.status == Status.PENDING
    assert FaultEvent.objects.get(pk=event.fault_id).cluster == event.cluster
    for name in ("cluster", "resource_kind", "resource_name", "resource_namespace",
                 "resource_uid", "resource_api_version", "subscription_id", "fault_type",
                 "severity", "context", "timestamp"):  # fmt: skip
        assert getattr(incident, name) == getattr(event, name), name
    assert incident.started_at is None and incident.completed_at is None


def test_create_incident_with_given_id(store):
    given = uuid.uuid4()
    incident = store.create_incident(make_fault_event(), incident_id=str(given))
    assert Incident.objects.get().incident_id == given == incident.incident_id


def test_create_incident_keeps_an_existing_event_row(store):
    stored = make_fault_event(save=True, cluster="prod-us-east-1")
    store.create_incident(make_fault_event(save=False, fault_id=stored.fault_id, cluster="other"))
    assert FaultEvent.objects.get(pk=stored.fault_id).cluster == "prod-us-east-1"
    assert Incident.objects.get().cluster == "other"  # this occurrence, as reported


def test_create_incident_refuses_a_second_open_incident(store):
    event = make_fault_event()
    first = store.create_incident(event)
    with pytest.raises(InvalidTransition, match=str(first.incident_id)):
        store.create_incident(make_fault_event(fault_id=event.fault_id))
    assert Incident.objects.count() == 1


def test_create_incident_after_the_previous_one_closed(store):
    event = make_fault_event()
    first = store.create_incident(event)
    store.update_incident_status(first.incident_id, Status.INVESTIGATING)
    store.complete_incident(first.incident_id, 0)
    second = store.create_incident(make_fault_event(fault_id=event.fault_id))
    assert second.incident_id != first.incident_id
    assert Incident.objects.count() == 2


@pytest.mark.parametrize(
    ("field", "value"), [("severity", "urgent"), ("cluster", ""), ("fault_type", "")]
)
def test_create_incident_rejects_invalid_events_naming_the_field(store, field, value):
    event = make_fault_event(**{field: value})
    with pytest.raises(InvalidRecord, match=rf"fault event '{event.fault_id}'.*{field}"):
        store.create_incident(event)
    assert not FaultEvent.objects.exists()
    assert not Incident.objects.exists()


# -- update_incident_status -------------------------------------------------------------------
@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_transitions(store, current, target):
    incident = make_incident(status=current)
    updated = store.update_incident_status(incident.incident_id, target)
    incident.refresh_from_db()
    assert incident.status == updated.status == target
    if target == Status.INVESTIGATING:
        assert incident.started_at is not None
    if target in (Status.RESOLVED, Status.FAILED, Status.AGENT_FAILED):
        assert incident.completed_at is not None
    if target == Status.PENDING:
        assert (incident.started_at, incident.completed_at, incident.exit_code) == (None,) * 3


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_forbidden_transitions(store, current, target):
    incident = make_incident(status=current)
    with pytest.raises(InvalidTransition) as raised:
        store.update_incident_status(incident.incident_id, target)
    message = str(raised.value)
    assert str(incident.incident_id) in message
    assert current in message and target in message
    incident.refresh_from_db()
    assert incident.status == current


@pytest.mark.parametrize("status", Status.values)
def test_same_status_is_a_no_op(store, status):
    incident = make_incident(status=status)
    before = Incident.objects.get(pk=incident.pk)
    store.update_incident_status(incident.incident_id, status)
    after = Incident.objects.get(pk=incident.pk)
    assert (after.status, after.started_at, after.completed_at) == (
        before.status,
        before.started_at,
        before.completed_at,
    )


def test_investigating_uses_the_given_start_time(store):
    incident = make_incident()
    started = timezone.now() - timedelta(seconds=30)
    store.update_incident_status(incident.incident_id, "investigating", started_at=started)
    incident.refresh_from_db()
    assert incident.started_at == started


def test_requeue_clears_the_previous_attempts_outcome(store):
    incident = make_incident(status=Status.FAILED, failure_reason="agent exited with code 3")
    store.update_incident_status(incident.incident_id, Status.PENDING)
    incident.refresh_from_db()
    assert (incident.exit_code, incident.failure_reason) == (None, None)


def test_an_execution_cannot_move_to_another_incident(store):
    incident = make_incident(status=Status.INVESTIGATING)
    execution = make_execution(incident)
    other = make_incident(status=Status.INVESTIGATING)
    moved = AgentExecution(
        execution_id=execution.execution_id, incident=other, started_at=execution.started_at
    )
    with pytest.raises(InvalidRecord, match=f"belongs to incident {incident.incident_id}"):
        store.record_agent_execution(moved)
    assert AgentExecution.objects.get().incident_id == incident.incident_id


def test_holds_claim_only_for_the_same_attempt(store):
    incident = make_incident(status=Status.INVESTIGATING)
    assert store.holds_claim(incident.incident_id, incident.started_at)
    assert not store.holds_claim(incident.incident_id, incident.started_at - timedelta(seconds=1))
    store.update_incident_status(incident.incident_id, Status.PENDING)
    assert not store.holds_claim(incident.incident_id, incident.started_at)
    assert not store.holds_claim("not-a-uuid", incident.started_at)


def test_correct_unknown_fault_event(store):
    with pytest.raises(FaultEventNotFound, match="'nope' does not exist"):
        store.correct_fault_event("nope", cluster="x")


def test_requeue_keeps_the_executions(store):
    incident = make_incident(status=Status.FAILED)
    make_execution(incident, exit_code=3)
    store.update_incident_status(incident.incident_id, Status.PENDING)
    assert AgentExecution.objects.filter(incident=incident).count() == 1


def test_requeue_refused_while_the_fault_has_another_open_incident(store):
    event = make_fault_event(save=True)
    old = make_incident(event=event, status=Status.FAILED)
    make_incident(event=event, status=Status.PENDING)
    with pytest.raises(InvalidTransition, match="already has an open incident"):
        store.update_incident_status(old.incident_id, Status.PENDING)
    old.refresh_from_db()
    assert old.status == Status.FAILED


def test_unknown_status_is_refused(store):
    incident = make_incident()
    with pytest.raises(InvalidTransition, match="unknown status"):
        store.update_incident_status(incident.incident_id, "done")


@pytest.mark.parametrize("incident_id", [uuid.uuid4(), "not-a-uuid", ""])
def test_update_unknown_incident(store, incident_id):
    with pytest.raises(IncidentNotFound, match="does not exist"):
        store.update_incident_status(incident_id, Status.INVESTIGATING)


# -- complete_incident ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exit_code", "status", "expected"),
    [
        (0, None, Status.RESOLVED),
        (3, None, Status.FAILED),
        (None, None, Status.FAILED),
        (0, Status.AGENT_FAILED, Status.AGENT_FAILED),
        (1, Status.FAILED, Status.FAILED),
    ],
)
def test_complete_incident(store, exit_code, status, expected):
    incident = make_incident(status=Status.INVESTIGATING)
    store.complete_incident(incident.incident_id, exit_code, "why it failed", status=status)
    incident.refresh_from_db()
    assert incident.status == expected
    assert incident.exit_code == exit_code
    assert incident.completed_at is not None
    assert incident.failure_reason == "why it failed"


def test_complete_without_failure_reason_stores_null(store):
    incident = make_incident(status=Status.INVESTIGATING)
    store.complete_incident(incident.incident_id, 0)
    incident.refresh_from_db()
    assert incident.failure_reason is None


def test_complete_needs_a_terminal_status(store):
    incident = make_incident(status=Status.INVESTIGATING)
    with pytest.raises(InvalidTransition, match="terminal"):
        store.complete_incident(incident.incident_id, 0, status=Status.PENDING)


def test_complete_pending_as_resolved_is_refused(store):
    incident = make_incident()
    with pytest.raises(InvalidTransition, match="from pending to resolved"):
        store.complete_incident(incident.incident_id, 0)


def test_complete_pending_as_failed_is_allowed(store):
    incident = make_incident()
    store.complete_incident(incident.incident_id, None, "false positive", status=Status.FAILED)
    assert Incident.objects.get().status == Status.FAILED


def test_complete_twice_is_refused(store):
    incident = make_incident(status=Status.RESOLVED)
    with pytest.raises(InvalidTransition, match="from resolved to resolved"):
        store.complete_incident(incident.incident_id, 0)


def test_complete_unknown_incident(store):
    with pytest.raises(IncidentNotFound):
        store.complete_incident(uuid.uuid4(), 0)


# -- record_agent_execution -------------------------------------------------------------------
def test_record_agent_execution_inserts_then_updates(store):
    incident = make_incident(status=Status.INVESTIGATING)
    started = timezone.now() - timedelta(minutes=1)
    execution = AgentExecution(incident=incident, started_at=started)
    store.record_agent_execution(execution)
    finished = AgentExecution(
        execution_id=execution.execution_id,
        incident=incident,
        started_at=started,
        completed_at=timezone.now(),
        exit_code=3,
        error_message="boom",
        log_paths="/w/logs/agent.stdout.log,/w/logs/agent.stderr.log",
    )
    store.record_agent_execution(finished)
    stored = AgentExecution.objects.get()
    assert (stored.exit_code, stored.error_message) == (3, "boom")
    assert stored.log_path_list == ["/w/logs/agent.stdout.log", "/w/logs/agent.stderr.log"]


def test_record_agent_execution_for_unknown_incident(store):
    execution = AgentExecution(incident_id=uuid.uuid4(), started_at=timezone.now())
    with pytest.raises(IncidentNotFound):
        store.record_agent_execution(execution)
    assert not AgentExecution.objects.exists()


def test_record_agent_execution_refuses_end_before_start(store):
    incident = make_incident(status=Status.INVESTIGATING)
    now = timezone.now()
    execution = AgentExecution(
        incident=incident, started_at=now, completed_at=now - timedelta(seconds=5)
    )
    with pytest.raises(InvalidRecord, match=f"agent execution {execution.execution_id}"):
        store.record_agent_execution(execution)


# -- record_triage_report ---------------------------------------------------------------------
def test_record_triage_report_renders_sanitized_html(store):
    incident = make_incident(status=Status.INVESTIGATING)
    execution = make_execution(incident)
    report = TriageReport(
        incident=incident,
        execution=execution,
        report_markdown="# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script>",
    )
    store.record_triage_report(report)
    stored = TriageReport.objects.get()
    assert "<table>" in stored.report_html
    assert "<h1" in stored.report_html
    assert "<script" not in stored.report_html


def test_record_triage_report_keeps_given_html(store):
    incident = make_incident(status=Status.INVESTIGATING)
    report = TriageReport(
        incident=incident,
        execution=make_execution(incident),
        report_markdown="# x",
        report_html="<p>given</p>",
    )
    store.record_triage_report(report)
    assert TriageReport.objects.get().report_html == "<p>given</p>"


def test_record_triage_report_is_idempotent(store):
    incident = make_incident(status=Status.INVESTIGATING)
    report = TriageReport(
        incident=incident, execution=make_execution(incident), report_markdown="# one"
    )
    store.record_triage_report(report)
    report.report_markdown = "# two"
    report.report_html = None
    store.record_triage_report(report)
    stored = TriageReport.objects.get()
    assert stored.report_markdown == "# two" and "two" in stored.report_html


def test_record_triage_report_execution_must_belong_to_the_incident(store):
    incident = make_incident(status=Status.INVESTIGATING)
    other = make_incident(status=Status.RESOLVED)
    report = TriageReport(incident=incident, execution=make_execution(other), report_markdown="# x")
    with pytest.raises(InvalidRecord, match="execution"):
        store.record_triage_report(report)
    assert not TriageReport.objects.exists()


def test_record_triage_report_for_unknown_incident(store):
    incident = make_incident(status=Status.INVESTIGATING)
    report = TriageReport(
        incident_id=uuid.uuid4(), execution=make_execution(incident), report_markdown="# x"
    )
    with pytest.raises(IncidentNotFound):
        store.record_triage_report(report)


# -- get_incident / list_incidents ------------------------------------------------------------
def test_get_incident(store):
    incident = make_incident()
    assert store.get_incident(incident.incident_id) == incident
    assert store.get_incident(str(incident.incident_id)) == incident
    assert store.get_incident(uuid.uuid4()) is None
    assert store.get_incident("../../etc/passwd") is None


def test_list_incidents_newest_first_and_paged(store):
    now = timezone.now()
    made = [make_incident(created_at=now - timedelta(hours=hours)) for hours in range(5)]
    assert store.list_incidents() == made
    assert store.list_incidents(IncidentFilters(limit=2, offset=1)) == made[1:3]


@pytest.mark.parametrize(
    ("filters", "matching"),
    [
        (IncidentFilters(status=["failed", "resolved"]), {"a", "b"}),
        (IncidentFilters(cluster="prod-eu-west-1"), {"b"}),
        (IncidentFilters(namespace="checkout"), {"c"}),
        (IncidentFilters(resource_kind="Node"), {"c"}),
        (IncidentFilters(fault_type="JobFailure"), {"b"}),
        (IncidentFilters(severity="low"), {"c"}),
        (IncidentFilters(cluster="prod-us-east-1", severity="critical"), {"a"}),
    ],
)
def test_list_incidents_filters(store, filters, matching):
    make_incident(resource_name="a", status="failed")
    make_incident(
        resource_name="b", status="resolved", cluster="prod-eu-west-1", fault_type="JobFailure"
    )
    make_incident(resource_name="c", resource_namespace="checkout", resource_kind="Node",
                  severity="low")  # fmt: skip
    assert {incident.resource_name for incident in store.list_incidents(filters)} == matching


def test_list_incidents_by_creation_window(store):
    now = timezone.now()
    old = make_incident(created_at=now - timedelta(days=3))
    recent = make_incident(created_at=now - timedelta(hours=1))
    assert store.list_incidents(IncidentFilters(created_after=now - timedelta(days=1))) == [recent]
    assert store.list_incidents(IncidentFilters(created_before=now - timedelta(days=1))) == [old]


@pytest.mark.django_db(transaction=True)
def test_close_closes_the_connection(store):
    store.get_incident(uuid.uuid4())
    store.close()
    assert store.get_incident(uuid.uuid4()) is None  # reconnects on demand


# -- operations beyond the design's eight ------------------------------------------------------
def test_claim_next_incident_is_fifo(store):
    now = timezone.now()
    newer = make_incident(created_at=now - timedelta(minutes=1))
    older = make_incident(created_at=now - timedelta(minutes=5))
    make_incident(status=Status.RESOLVED, created_at=now - timedelta(hours=1))
    first = store.claim_next_incident()
    assert first.incident_id == older.incident_id
    assert first.status == Status.INVESTIGATING and first.started_at is not None
    assert store.claim_next_incident().incident_id == newer.incident_id
    assert store.claim_next_incident() is None


def test_correct_fault_event_updates_every_incident(store):
    event = make_fault_event(save=True, cluster="prod-us-east-1", severity="low")
    incidents = [
        make_incident(event=event, status="resolved"),
        make_incident(event=event, status="pending"),
    ]
    corrected, updated = store.correct_fault_event(
        event.fault_id, cluster="prod-us-east-2", severity="critical"
    )
    assert updated == 2
    assert corrected.cluster == "prod-us-east-2"
    for incident in incidents:
        incident.refresh_from_db()
        assert (incident.cluster, incident.severity) == ("prod-us-east-2", "critical")


def test_correct_fault_event_refuses_bad_values_and_the_id(store):
    event = make_fault_event(save=True)
    make_incident(event=event)
    with pytest.raises(InvalidRecord, match="severity"):
        store.correct_fault_event(event.fault_id, severity="urgent")
    with pytest.raises(InvalidRecord, match="fault_id"):
        store.correct_fault_event(event.fault_id, fault_id="other")
    assert Incident.objects.get().severity == event.severity


# -- races: threads on their own connections (row locks on PostgreSQL, one writer on SQLite) ---
def run_in_threads(count: int, target) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(index: int) -> None:
        try:
            barrier.wait()
            results[index] = target(index)
        except Exception as error:  # noqa: BLE001 - collected and asserted by the test
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_racing_creates_make_one_incident_per_event():
    event = make_fault_event()

    def create(_index):
        return DjangoStateStore().create_incident(make_fault_event(fault_id=event.fault_id))

    results = run_in_threads(6, create)
    created = [r for r in results if isinstance(r, Incident)]
    refused = [r for r in results if isinstance(r, InvalidTransition)]
    assert len(created) == 1 and len(refused) == 5, results
    assert Incident.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_racing_claims_take_each_incident_once():
    for _ in range(8):
        make_incident()

    def claim(_index):
        claimed = []
        store = DjangoStateStore()
        while (incident := store.claim_next_incident()) is not None:
            claimed.append(incident.incident_id)
        return claimed

    results = run_in_threads(4, claim)
    claimed = [incident_id for result in results for incident_id in result]
    assert len(claimed) == len(set(claimed)) == 8
    assert set(Incident.objects.values_list("status", flat=True)) == {"investigating"}


@pytest.mark.django_db(transaction=True)
def test_racing_completion_and_requeue_lose_no_update():
    incident = make_incident(status=Status.INVESTIGATING)

    def act(index):
        store = DjangoStateStore()
        if index % 2:
            return store.complete_incident(incident.incident_id, 0)
        return store.update_incident_status(incident.incident_id, Status.PENDING)

    results = run_in_threads(2, act)
    incident.refresh_from_db()
    # Whichever ran second saw the first's result: either completed-then-requeued (pending,
    # cleared) or requeued-then-refused (completion from pending to resolved is forbidden).
    assert incident.status == Status.PENDING
    assert incident.completed_at is None
    errors = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(error, InvalidTransition) for error in errors)


@pytest.mark.sqlite
def test_sqlite_is_tuned_for_a_shared_file():
    options = connection.settings_dict["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in options["init_command"]
    assert options["timeout"] >= 5


def test_report_rows_survive(store):
    incident = make_incident(status=Status.RESOLVED)
    make_report(incident)
    assert TriageReport.objects.filter(incident=incident).count() == 1

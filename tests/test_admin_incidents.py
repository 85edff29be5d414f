"""Incident admin: status edits and actions go through the store; history records each change."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse

from incidents.choices import Status
from incidents.models import Incident
from incidents.store import DjangoStateStore, InvalidTransition
from tests.builders import make_execution, make_fault_event, make_incident, make_report
from tests.lifecycle import ALLOWED, FORBIDDEN, LIFECYCLE

pytestmark = pytest.mark.django_db


def change_url(incident: Incident) -> str:
    return reverse("admin:incidents_incident_change", args=[incident.pk])


def changelist_url() -> str:
    return reverse("admin:incidents_incident_changelist")


def history(incident: Incident) -> list[str]:
    return list(
        LogEntry.objects.filter(object_id=str(incident.pk), action_flag=CHANGE)
        .order_by("pk")
        .values_list("change_message", flat=True)
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def edit(client, admin_form_data, incident: Incident, **changes):
    """Open the change page, change fields the way a user would, and submit it."""
    data = admin_form_data(client.get(change_url(incident)))
    data.update({name: "" if value is None else str(value) for name, value in changes.items()})
    return client.post(change_url(incident), data)


# -- the change page -------------------------------------------------------------------------
def test_change_page_shows_fault_read_only_and_history_inlines(admin_client):
    incident = make_incident(
        event=make_fault_event(context='{"logs": [{"sample": "<script>alert(1)</script>"}]}'),
        status=Status.FAILED,
    )
    execution = make_execution(incident, error_message="agent exited 1")
    report = make_report(incident, execution)
    response = admin_client.get(change_url(incident))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert set(form.fields) == {"status", "exit_code", "failure_reason", "loaded_status"}
    page = response.content.decode()
    assert reverse("admin:incidents_faultevent_change", args=[incident.fault_id]) in page
    assert "agent exited 1" in page
    assert reverse("incidents:report", args=[report.pk]) in page
    assert "<script>alert(1)</script>" not in page  # the context is escaped
    assert "&lt;script&gt;" in page
    # History is kept: no add, no delete.
    assert "deletelink" not in page
    assert admin_client.get(reverse("admin:incidents_incident_add")).status_code == 403


# -- status edits: every allowed move saves through the store, every other is a form error -----
@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_status_edit_is_saved_through_the_store(
    admin_client, admin_form_data, current, target
):
    incident = make_incident(status=current)
    response = edit(admin_client, admin_form_data, incident, status=target)
    assert response.status_code == 302, response.context["adminform"].form.errors
    incident.refresh_from_db()
    assert incident.status == target
    if target in (Status.RESOLVED, Status.FAILED, Status.AGENT_FAILED):
        assert incident.completed_at is not None
    if target == Status.PENDING:
        assert incident.started_at is None and incident.completed_at is None
    if target == Status.INVESTIGATING:
        assert incident.started_at is not None
    (message,) = history(incident)
    assert f"Status: {Status(current).label} → {Status(target).label}" in message


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_forbidden_status_edit_is_a_form_error_naming_both_statuses(
    admin_client, admin_form_data, current, target
):
    incident = make_incident(status=current)
    before = Incident.objects.values().get(pk=incident.pk)
    response = edit(admin_client, admin_form_data, incident, status=target)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["status"]
    assert errors == [
        f"An incident cannot move from {Status(current).label} to {Status(target).label}; "
        f"from {Status(current).label} the lifecycle allows: "
        + ", ".join(Status(s).label for s in Status.values if s in LIFECYCLE[current])
        + "."
    ]
    assert Incident.objects.values().get(pk=incident.pk) == before
    assert history(incident) == []


def test_completing_records_the_entered_exit_code_and_reason(admin_client, admin_form_data):
    incident = make_incident(status=Status.INVESTIGATING)
    response = edit(
        admin_client, admin_form_data, incident,
        status=Status.FAILED, exit_code=137, failure_reason="OOMKilled while collecting logs",
    )  # fmt: skip
    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.status, incident.exit_code, incident.failure_reason) == (
        Status.FAILED, 137, "OOMKilled while collecting logs",
    )  # fmt: skip
    (message,) = history(incident)
    assert "Status: Agent investigating → Triage failed" in message
    assert "Exit code: (none) → 137" in message
    assert "Failure reason: (none) → OOMKilled while collecting logs" in message


def test_correcting_the_outcome_of_a_finished_incident(admin_client, admin_form_data):
    incident = make_incident(status=Status.FAILED, exit_code=1, failure_reason="agent crashed")
    completed_at = incident.completed_at
    response = edit(admin_client, admin_form_data, incident, failure_reason="false positive")
    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.status, incident.failure_reason) == (Status.FAILED, "false positive")
    assert incident.completed_at == completed_at
    assert history(incident) == ["Failure reason: agent crashed → false positive"]


@pytest.mark.parametrize("status", [Status.PENDING, Status.INVESTIGATING])
def test_an_open_incident_has_no_outcome_to_edit(admin_client, admin_form_data, status):
    incident = make_incident(status=status)
    response = edit(admin_client, admin_form_data, incident, exit_code=3)
    assert response.status_code == 200
    assert "has no outcome yet" in response.context["adminform"].form.errors["exit_code"][0]
    incident.refresh_from_db()
    assert incident.exit_code is None


def test_requeue_refused_while_the_fault_has_another_open_incident(admin_client, admin_form_data):
    event = make_fault_event(save=True)
    finished = make_incident(event=event, status=Status.FAILED)
    open_one = make_incident(event=event, status=Status.PENDING)
    response = edit(admin_client, admin_form_data, finished, status=Status.PENDING)
    assert response.status_code == 200
    (error,) = response.context["adminform"].form.errors["status"]
    assert str(open_one.pk) in error and event.fault_id in error
    finished.refresh_from_db()
    assert finished.status == Status.FAILED


def test_an_untouched_status_is_not_moved_back_when_a_worker_moved_it(
    admin_client, admin_form_data
):
    """The page showed pending; a worker claimed it; saving the page must not requeue it."""
    incident = make_incident(status=Status.PENDING)
    data = admin_form_data(admin_client.get(change_url(incident)))
    DjangoStateStore().update_incident_status(incident.pk, Status.INVESTIGATING)
    response = admin_client.post(change_url(incident), data)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING
    assert history(incident) == ["No fields changed."]


def test_a_status_edit_of_a_row_that_moved_meanwhile_is_a_conflict(admin_client, admin_form_data):
    incident = make_incident(status=Status.PENDING)
    data = admin_form_data(admin_client.get(change_url(incident)))
    DjangoStateStore().update_incident_status(incident.pk, Status.INVESTIGATING)
    response = admin_client.post(change_url(incident), {**data, "status": Status.FAILED})
    assert response.status_code == 200
    (error,) = response.context["adminform"].form.errors["status"]
    assert "moved from Awaiting triage to Agent investigating while you were editing" in error
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING


def test_a_store_refusal_at_save_is_a_message_not_a_500(admin_client, admin_form_data, monkeypatch):
    """If the store refuses after validation (a rule the form cannot see), nothing is saved."""
    incident = make_incident(status=Status.INVESTIGATING)

    def refuse(self, incident_id, *args, **kwargs):
        raise InvalidTransition(incident_id, "investigating", "resolved", "refused for the test")

    monkeypatch.setattr(DjangoStateStore, "complete_incident", refuse)
    response = edit(admin_client, admin_form_data, incident, status=Status.RESOLVED)
    assert response.status_code == 302
    assert response.url == change_url(incident)
    (message,) = messages_of(response)
    assert "Nothing was saved" in message and "refused for the test" in message
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING
    assert history(incident) == []


def test_saving_does_not_write_the_incident_row_itself(admin_client, admin_form_data, monkeypatch):
    """Only the store writes: a save with the store's methods disabled changes nothing."""
    incident = make_incident(status=Status.INVESTIGATING)
    calls = []
    monkeypatch.setattr(
        DjangoStateStore, "update_incident_status", lambda self, *a, **k: calls.append(a)
    )
    monkeypatch.setattr(
        DjangoStateStore, "complete_incident", lambda self, *a, **k: calls.append(a) or incident
    )
    edit(admin_client, admin_form_data, incident, status=Status.RESOLVED, exit_code=0)
    assert calls == [(incident.pk, 0, "")]
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING


# -- actions -----------------------------------------------------------------------------------
def run_action(client, action: str, incidents: list[Incident]):
    return client.post(
        changelist_url(),
        {"action": action, "_selected_action": [str(incident.pk) for incident in incidents]},
        follow=True,
    )


def test_requeue_action_requeues_finished_and_refuses_pending(admin_client):
    failed = make_incident(status=Status.FAILED)
    resolved = make_incident(status=Status.RESOLVED)
    pending = make_incident(status=Status.PENDING)
    response = run_action(admin_client, "requeue_for_triage", [failed, resolved, pending])
    assert messages_of(response) == [
        "Requeued 2 incidents; refused 1 (1 × already Awaiting triage)."
    ]
    for incident in (failed, resolved):
        incident.refresh_from_db()
        assert incident.status == Status.PENDING and incident.completed_at is None
    assert history(failed)[0].startswith("Status: Triage failed → Awaiting triage")
    assert history(failed)[0].endswith("(action: requeue)")
    assert history(pending) == []


def test_requeue_action_refuses_when_the_fault_has_another_open_incident(admin_client):
    event = make_fault_event(save=True)
    finished = make_incident(event=event, status=Status.AGENT_FAILED)
    make_incident(event=event, status=Status.INVESTIGATING)
    response = run_action(admin_client, "requeue_for_triage", [finished])
    (message,) = messages_of(response)
    assert message == (
        "Requeued 0 incidents; refused 1 (1 × the fault already has another open incident)."
    )
    finished.refresh_from_db()
    assert finished.status == Status.AGENT_FAILED
    assert history(finished) == []


def test_mark_resolved_action(admin_client):
    investigating = make_incident(status=Status.INVESTIGATING)
    pending = make_incident(status=Status.PENDING)
    failed = make_incident(status=Status.FAILED)
    response = run_action(admin_client, "mark_resolved", [investigating, pending, failed])
    (message,) = messages_of(response)
    assert message.startswith("Resolved 1 incident; refused 2 (")
    assert "1 × Awaiting triage → Report ready is not allowed by the lifecycle" in message
    assert "1 × Triage failed → Report ready is not allowed by the lifecycle" in message
    investigating.refresh_from_db()
    assert investigating.status == Status.RESOLVED and investigating.completed_at is not None
    (entry,) = history(investigating)
    assert entry.startswith("Status: Agent investigating → Report ready; Completed at: (none) → ")
    assert entry.endswith("(action: mark resolved)")


def test_mark_failed_action(admin_client, admin_user):
    pending = make_incident(status=Status.PENDING)
    investigating = make_incident(status=Status.INVESTIGATING)
    resolved = make_incident(status=Status.RESOLVED)
    response = run_action(admin_client, "mark_failed", [pending, investigating, resolved])
    assert messages_of(response) == [
        "Failed 2 incidents; refused 1 "
        "(1 × Report ready → Triage failed is not allowed by the lifecycle)."
    ]
    for incident in (pending, investigating):
        incident.refresh_from_db()
        assert incident.status == Status.FAILED
        assert incident.completed_at is not None
        assert incident.failure_reason == "marked failed in the admin by admin"
        assert history(incident)[0].endswith("(action: mark failed)")
    resolved.refresh_from_db()
    assert resolved.status == Status.RESOLVED


def test_actions_with_nothing_allowed_report_an_error(admin_client):
    resolved = make_incident(status=Status.RESOLVED)
    response = run_action(admin_client, "mark_resolved", [resolved])
    (message,) = list(get_messages(response.wsgi_request))
    assert message.level_tag == "error"
    assert str(message) == "Resolved 0 incidents; refused 1 (1 × already Report ready)."


def test_history_page_lists_the_change_messages(admin_client):
    incident = make_incident(status=Status.FAILED)
    run_action(admin_client, "requeue_for_triage", [incident])
    response = admin_client.get(reverse("admin:incidents_incident_history", args=[incident.pk]))
    assert "Status: Triage failed → Awaiting triage" in response.content.decode()


# -- the store method the admin added ---------------------------------------------------------
def test_store_corrects_the_outcome_of_a_finished_incident_only(store):
    finished = make_incident(status=Status.FAILED, exit_code=1, failure_reason="x")
    corrected = store.correct_incident_outcome(finished.pk, exit_code=2, failure_reason="")
    finished.refresh_from_db()
    assert (finished.status, finished.exit_code, finished.failure_reason) == (
        Status.FAILED, 2, None,
    )  # fmt: skip
    assert corrected.exit_code == 2
    open_one = make_incident(status=Status.INVESTIGATING)
    with pytest.raises(InvalidTransition, match="only a finished incident"):
        store.correct_incident_outcome(open_one.pk, exit_code=1, failure_reason="no")


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("status", "exploded", "Select a valid choice."),
        ("exit_code", "not-a-number", "Enter a whole number."),
        ("loaded_status", "", "This field is required."),
    ],
)
def test_malformed_edit_is_a_form_error(admin_client, admin_form_data, field, value, error):
    incident = make_incident(status=Status.INVESTIGATING)
    changes = {"status": Status.FAILED, field: value}
    response = edit(admin_client, admin_form_data, incident, **changes)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert any(error in message for message in form.errors[field])
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING


def test_hostile_failure_reason_is_stored_as_text_and_shown_escaped(admin_client, admin_form_data):
    incident = make_incident(status=Status.INVESTIGATING)
    reason = '<img src=x onerror="alert(1)"><script>alert(2)</script>' + "x" * 100_000
    response = edit(admin_client, admin_form_data, incident, status="failed", failure_reason=reason)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.failure_reason == reason
    page = admin_client.get(change_url(incident)).content.decode()
    assert "<script>alert(2)</script>" not in page and "&lt;script&gt;alert(2)" in page
    (message,) = history(incident)
    assert len(message) < 500  # the history names the change; the row keeps the whole text


def test_on_call_actions_call_the_store_and_group_refusals(admin_client, admin_user):
    from incidents.models import IncidentActivity

    first, second = make_incident(), make_incident()
    response = run_action(admin_client, "close_false_positive", [first])
    assert messages_of(response) == ["Closed 1 incident."]
    response = run_action(admin_client, "acknowledge", [first, second])
    assert messages_of(response) == [
        "Acknowledged 1 incident; refused 1 (1 × closed (reopen it first))."
    ]
    first.refresh_from_db()
    assert (first.oncall_state, first.resolution, first.closed_by) == (
        "closed", "false_positive", admin_user,
    )  # fmt: skip
    assert history(first)[0].endswith("(action: close as false_positive)")
    run_action(admin_client, "reopen", [first])
    kinds = IncidentActivity.objects.filter(incident=first).order_by("id")
    assert [row.kind for row in kinds] == ["closed", "reopened"]


def test_on_call_actions_need_the_responder_permission(client, django_user_model, grant):
    staff = django_user_model.objects.create_user("staff2", password="x", is_staff=True)
    staff = grant(staff, "view_incident", "change_incident")
    client.force_login(staff)
    incident = make_incident()
    response = run_action(client, "acknowledge", [incident])
    assert response.status_code == 200
    incident.refresh_from_db()
    assert incident.oncall_state == "open"

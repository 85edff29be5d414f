"""Who reaches the admin and what they may do there: staff only, view-only is read-only,
history is never deleted, and a fault event only by a superuser when it has no incidents."""

import pytest
from django.urls import reverse

from incidents.choices import Status
from incidents.models import FaultEvent, Incident
from tests.builders import make_execution, make_fault_event, make_incident, make_report

pytestmark = pytest.mark.django_db

VIEW_ALL = ("view_incident", "view_faultevent", "view_agentexecution", "view_triagereport")


def url(name: str, *args) -> str:
    return reverse(f"admin:incidents_{name}", args=args)


def test_site_header_names_the_admin(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "Incident triage admin" in response.content.decode()
    for model in ("Incidents", "Fault events", "Agent executions", "Triage reports"):
        assert model in response.content.decode()


def test_anonymous_user_is_sent_to_sign_in(client):
    incident = make_incident()
    response = client.get(url("incident_change", incident.pk))
    assert response.status_code == 302
    assert "login" in response.url and "next=" in response.url


def test_non_staff_user_is_sent_to_the_admin_login(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", "v@example.com", "x")
    client.force_login(user)
    response = client.get(url("incident_changelist"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_staff_without_permissions_is_forbidden(client, staff_user):
    client.force_login(staff_user)
    assert client.get(url("incident_changelist")).status_code == 403


def test_view_only_staff_sees_read_only_pages(client, staff_user, grant, admin_form_data):
    user = grant(staff_user, *VIEW_ALL)
    client.force_login(user)
    incident = make_incident(status=Status.INVESTIGATING)
    report = make_report(incident)
    for page in (
        url("incident_changelist"),
        url("faultevent_changelist"),
        url("agentexecution_changelist"),
        url("triagereport_changelist"),
        url("incident_change", incident.pk),
        url("faultevent_change", incident.fault_id),
        url("agentexecution_change", report.execution_id),
        url("triagereport_change", report.pk),
    ):
        response = client.get(page)
        assert response.status_code == 200, page
        assert 'name="_save"' not in response.content.decode(), page
    # A forged POST changes nothing.
    response = client.post(
        url("incident_change", incident.pk), {"status": Status.RESOLVED, "loaded_status": "x"}
    )
    assert response.status_code == 403
    client.post(
        url("incident_changelist"),
        {"action": "mark_resolved", "_selected_action": [str(incident.pk)]},
    )
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING


def test_view_only_staff_has_no_actions(client, staff_user, grant):
    client.force_login(grant(staff_user, "view_incident"))
    make_incident()
    response = client.get(url("incident_changelist"))
    actions = response.context["cl"].model_admin.get_actions(response.wsgi_request)
    assert actions == {}


def test_staff_with_change_permission_can_edit_status(client, staff_user, grant, admin_form_data):
    client.force_login(grant(staff_user, "view_incident", "change_incident"))
    incident = make_incident(status=Status.INVESTIGATING)
    data = admin_form_data(client.get(url("incident_change", incident.pk)))
    response = client.post(url("incident_change", incident.pk), {**data, "status": "resolved"})
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    response = client.get(url("incident_changelist"))
    actions = response.context["cl"].model_admin.get_actions(response.wsgi_request)
    assert set(actions) == {"requeue_for_triage", "mark_resolved", "mark_failed"}


@pytest.mark.parametrize("name", ["incident", "agentexecution", "triagereport"])
def test_history_records_cannot_be_deleted_even_by_a_superuser(admin_client, name):
    incident = make_incident(status=Status.FAILED)
    report = make_report(incident)
    pk = {"incident": incident.pk, "agentexecution": report.execution_id, "triagereport": report.pk}
    response = admin_client.post(url(f"{name}_delete", pk[name]), {"post": "yes"})
    assert response.status_code == 403
    changelist = admin_client.get(url(f"{name}_changelist"))
    assert "delete_selected" not in changelist.context["cl"].model_admin.get_actions(
        changelist.wsgi_request
    )
    assert Incident.objects.filter(pk=incident.pk).exists()


def test_superuser_deletes_a_fault_event_without_incidents(admin_client):
    event = make_fault_event(save=True)
    assert admin_client.get(url("faultevent_delete", event.pk)).status_code == 200
    response = admin_client.post(url("faultevent_delete", event.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not FaultEvent.objects.filter(pk=event.pk).exists()


def test_superuser_cannot_delete_a_fault_event_with_incidents(admin_client):
    incident = make_incident()
    response = admin_client.post(url("faultevent_delete", incident.fault_id), {"post": "yes"})
    assert response.status_code == 403
    page = admin_client.get(url("faultevent_change", incident.fault_id)).content.decode()
    assert "deletelink" not in page
    assert FaultEvent.objects.filter(pk=incident.fault_id).exists()


def test_bulk_delete_of_fault_events_keeps_those_with_incidents(admin_client):
    lonely = make_fault_event(save=True)
    used = make_incident().fault
    response = admin_client.post(
        url("faultevent_changelist"),
        {"action": "delete_selected", "_selected_action": [lonely.pk, used.pk], "post": "yes"},
    )
    assert response.status_code == 200  # Django's "cannot delete: protected" page
    assert FaultEvent.objects.filter(pk__in=[lonely.pk, used.pk]).count() == 2
    admin_client.post(
        url("faultevent_changelist"),
        {"action": "delete_selected", "_selected_action": [lonely.pk], "post": "yes"},
    )
    assert not FaultEvent.objects.filter(pk=lonely.pk).exists()


def test_staff_with_delete_permission_cannot_delete_fault_events(client, staff_user, grant):
    client.force_login(grant(staff_user, "view_faultevent", "delete_faultevent"))
    event = make_fault_event(save=True)
    response = client.post(url("faultevent_delete", event.pk), {"post": "yes"})
    assert response.status_code == 403
    assert FaultEvent.objects.filter(pk=event.pk).exists()


def test_execution_inline_links_need_only_view_permission(client, staff_user, grant):
    client.force_login(grant(staff_user, *VIEW_ALL))
    incident = make_incident()
    execution = make_execution(incident)
    page = client.get(url("incident_change", incident.pk)).content.decode()
    assert url("agentexecution_change", execution.pk) in page

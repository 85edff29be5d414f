"""Re-running triage with an agent profile: the setting, the store method, the worker's choice
of command, and the incident page's form (a POST with CSRF, responders and staff only)."""

import json
import shlex

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from incidents.choices import Status
from incidents.models import AgentExecution, Incident, TriageReport
from incidents.profiles import parse_profiles
from incidents.store import IncidentNotFound, InvalidRecord, InvalidTransition
from incidents.worker import Mode, Worker, WorkerConfig
from tests.agents import agent_python, agent_script, reachable_folder
from tests.builders import make_execution, make_incident, make_report

pytestmark = pytest.mark.django_db


def agent(*args: str) -> str:
    return shlex.join([agent_python(), str(agent_script("scripted_agent.py")), *args])


PROFILES = {"opus": "stub", "haiku": "stub"}


@pytest.fixture
def profiles(settings):
    settings.TRIAGE_AGENT_PROFILES = json.dumps(PROFILES)
    return PROFILES


# -- the setting --------------------------------------------------------------------------------
def test_profiles_are_a_json_object_of_name_to_command():
    text = '{"opus": "claude --model opus {workspace}", "k8s.v2": "stub"}'
    assert parse_profiles(text) == {"opus": "claude --model opus {workspace}", "k8s.v2": "stub"}
    assert parse_profiles("") == {} == parse_profiles("  ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("opus=stub", "TRIAGE_AGENT_PROFILES is not JSON"),
        ('["stub"]', "must be a JSON object of name -> command"),
        ('{"bad name": "stub"}', "profile name 'bad name' must be 1-64 letters"),
        ('{"": "stub"}', "profile name '' must be"),
        ('{"opus": ""}', "profile 'opus' needs a non-empty command"),
        ('{"opus": 3}', "profile 'opus' needs a non-empty command"),
    ],
)
def test_a_bad_profiles_setting_is_a_clear_error(text, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_profiles(text)


def test_a_profile_with_an_unknown_placeholder_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"agent profile 'x': unknown placeholder \{nope\}"):
        WorkerConfig(agent_command="stub", workspace_root=tmp_path, profiles={"x": "a {nope}"})


# -- the store ----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [Status.RESOLVED, Status.FAILED, Status.AGENT_FAILED])
def test_a_finished_incident_is_requeued_with_the_profile(store, profiles, admin_user, status):
    incident = make_incident(status=status, exit_code=1, failure_reason="x")
    make_report(incident)
    rerun = store.request_rerun(incident.incident_id, by=admin_user, profile="opus")
    stored = Incident.objects.get(pk=incident.pk)
    assert rerun.status == stored.status == Status.PENDING
    assert stored.agent_profile == "opus"
    assert (stored.exit_code, stored.failure_reason, stored.completed_at) == (None, None, None)
    assert TriageReport.objects.filter(incident=incident).count() == 1  # the old report stays


def test_a_pending_incident_just_gets_the_profile_and_default_clears_it(
    store, profiles, admin_user
):
    incident = make_incident()
    store.request_rerun(incident.incident_id, by=admin_user, profile="haiku")
    assert Incident.objects.get(pk=incident.pk).agent_profile == "haiku"
    store.request_rerun(incident.incident_id, by=admin_user, profile="")
    assert Incident.objects.get(pk=incident.pk).agent_profile == ""


def test_a_rerun_is_refused_while_an_agent_runs(store, profiles, admin_user):
    incident = make_incident(status=Status.INVESTIGATING)
    with pytest.raises(
        InvalidTransition, match=r"cannot move from investigating to pending: an agent"
    ):
        store.request_rerun(incident.incident_id, by=admin_user, profile="opus")
    assert Incident.objects.get(pk=incident.pk).agent_profile == ""


def test_an_unknown_profile_or_incident_is_refused(store, profiles, admin_user):
    incident = make_incident(status=Status.RESOLVED)
    with pytest.raises(
        InvalidRecord, match=r"agent_profile: unknown profile 'gpt' \(known: haiku, opus\)"
    ):
        store.request_rerun(incident.incident_id, by=admin_user, profile="gpt")
    assert Incident.objects.get(pk=incident.pk).status == Status.RESOLVED
    with pytest.raises(IncidentNotFound):
        store.request_rerun("00000000-0000-0000-0000-000000000000", by=admin_user, profile="")


def test_a_rerun_is_refused_when_the_fault_has_another_open_incident(store, profiles, admin_user):
    old = make_incident(status=Status.RESOLVED)
    make_incident(event=old.fault)  # the fault's open (pending) incident
    with pytest.raises(InvalidTransition, match="already has an open incident"):
        store.request_rerun(old.incident_id, by=admin_user, profile="opus")
    assert Incident.objects.get(pk=old.pk).status == Status.RESOLVED


# -- the worker runs the profile's command ------------------------------------------------------
def test_the_worker_runs_the_incidents_profile_and_records_it():
    with reachable_folder() as folder, reachable_folder(0o1777) as shared:
        order = shared / "order.txt"
        config = WorkerConfig(
            agent_command=agent("--exit", "3"),  # the default agent would fail
            workspace_root=folder / "workspaces",
            profiles={"opus": agent("--record", str(order), "--result", '{"model": "opus-4"}')},
        )
        default_run = make_incident()
        profiled = make_incident(agent_profile="opus")
        Worker(config, mode=Mode.UNTIL_EMPTY).run()
        assert order.read_text().split() == [str(profiled.incident_id)]
    profiled.refresh_from_db()
    default_run.refresh_from_db()
    assert (profiled.status, default_run.status) == (Status.RESOLVED, Status.FAILED)
    execution = AgentExecution.objects.get(incident=profiled)
    assert (execution.agent_profile, execution.model) == ("opus", "opus-4")
    assert AgentExecution.objects.get(incident=default_run).agent_profile == ""


def test_a_profile_the_worker_lacks_fails_the_run_saying_so():
    with reachable_folder() as folder:
        config = WorkerConfig(agent_command=agent(), workspace_root=folder / "workspaces")
        incident = make_incident(agent_profile="opus")
        Worker(config, mode=Mode.ONCE).run()
    incident.refresh_from_db()
    assert incident.status == Status.AGENT_FAILED
    assert incident.failure_reason == (
        "agent profile 'opus' is not in this worker's TRIAGE_AGENT_PROFILES (configured: none)"
    )
    execution = AgentExecution.objects.get(incident=incident)
    assert (execution.agent_profile, execution.error_message) == ("opus", incident.failure_reason)


# -- the page -----------------------------------------------------------------------------------
def rerun_url(incident) -> str:
    return reverse("incidents:rerun", args=[incident.incident_id])


def test_staff_rerun_from_the_page_requeues_with_the_profile(admin_client, profiles):
    incident = make_incident(status=Status.RESOLVED)
    make_execution(incident)
    page = admin_client.get(incident.get_absolute_url()).content.decode()
    assert 'data-testid="rerun-form"' in page and '<option value="opus">opus</option>' in page
    response = admin_client.post(rerun_url(incident), {"profile": "opus"})
    assert response.status_code == 303
    assert response["Location"] == incident.get_absolute_url() + "#executions-title"
    stored = Incident.objects.get(pk=incident.pk)
    assert (stored.status, stored.agent_profile) == (Status.PENDING, "opus")
    page = admin_client.get(response["Location"]).content.decode()
    assert "Re-run queued with opus" in page
    assert 'Next run: agent profile <span class="mono">opus</span>' in page


def test_a_refused_rerun_says_why_and_changes_nothing(admin_client, profiles):
    incident = make_incident(status=Status.INVESTIGATING)
    response = admin_client.post(rerun_url(incident), {"profile": "opus"}, follow=True)
    assert "Re-run not queued: incident" in response.content.decode()
    assert Incident.objects.get(pk=incident.pk).status == Status.INVESTIGATING
    response = admin_client.post(rerun_url(incident), {"profile": "<script>"}, follow=True)
    html = response.content.decode()
    assert "Re-run not queued: Select a valid choice. &lt;script&gt;" in html


def test_a_viewer_sees_no_form_and_cannot_post(client, viewer, profiles):
    incident = make_incident(status=Status.RESOLVED)
    client.force_login(viewer)
    assert (
        'data-testid="rerun-form"' not in client.get(incident.get_absolute_url()).content.decode()
    )
    assert client.post(rerun_url(incident), {"profile": "opus"}).status_code == 403
    assert Incident.objects.get(pk=incident.pk).status == Status.RESOLVED


def test_a_responder_may_rerun_and_the_timeline_says_so(client, django_user_model, profiles):
    from incidents.models import IncidentActivity
    from incidents.roles import responder_group

    responder = django_user_model.objects.create_user("responder", password="x")
    responder.groups.add(responder_group())
    incident = make_incident(status=Status.FAILED)
    client.force_login(responder)
    assert client.post(rerun_url(incident), {"profile": "haiku"}).status_code == 303
    assert Incident.objects.get(pk=incident.pk).agent_profile == "haiku"
    rows = IncidentActivity.objects.filter(incident=incident).order_by("id")
    assert [(row.kind, row.actor, row.from_value, row.to_value) for row in rows] == [
        ("status", responder, "failed", "pending"),
        ("rerun", responder, "default agent", "haiku"),
    ]
    page = client.get(incident.get_absolute_url()).content.decode()
    assert "Re-run requested" in page


def test_the_rerun_needs_csrf_and_post(admin_user, profiles):
    incident = make_incident(status=Status.RESOLVED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(rerun_url(incident), {"profile": "opus"}).status_code == 403
    assert client.get(rerun_url(incident)).status_code == 405
    assert Incident.objects.get(pk=incident.pk).status == Status.RESOLVED


def test_an_anonymous_post_goes_to_login(client, profiles):
    incident = make_incident(status=Status.RESOLVED)
    response = client.post(rerun_url(incident), {"profile": "opus"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]

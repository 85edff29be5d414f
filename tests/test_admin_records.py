"""Fault event corrections follow onto incidents; executions are read-only; reports re-render."""

import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse

from incidents.choices import Status
from incidents.models import FaultEvent, Incident, TriageReport
from tests.builders import make_execution, make_fault_event, make_incident, make_report

pytestmark = pytest.mark.django_db


def change_url(obj) -> str:
    return reverse(f"admin:incidents_{obj._meta.model_name}_change", args=[obj.pk])


def history(obj) -> list[str]:
    return list(
        LogEntry.objects.filter(object_id=str(obj.pk), action_flag=CHANGE)
        .order_by("pk")
        .values_list("change_message", flat=True)
    )


# -- fault events --------------------------------------------------------------------------------
def test_correcting_a_fault_event_updates_all_its_incidents(admin_client, admin_form_data):
    event = make_fault_event(save=True, cluster="prod-us-east-1", severity="low")
    incidents = [
        make_incident(event=event, status=Status.RESOLVED),
        make_incident(event=event, status=Status.FAILED),
        make_incident(event=event, status=Status.PENDING),
    ]
    bystander = make_incident(event=make_fault_event(cluster="prod-us-east-1", severity="low"))
    data = admin_form_data(admin_client.get(change_url(event)))
    new_timestamp = event.timestamp - timedelta(hours=1)
    data.update(
        cluster="prod-eu-west-1",
        severity="critical",
        resource_name="api-renamed",
        timestamp_0=new_timestamp.strftime("%Y-%m-%d"),
        timestamp_1=new_timestamp.strftime("%H:%M:%S"),
    )
    response = admin_client.post(change_url(event), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    event.refresh_from_db()
    assert (event.cluster, event.severity, event.resource_name) == (
        "prod-eu-west-1", "critical", "api-renamed",
    )  # fmt: skip
    for incident in incidents:
        incident.refresh_from_db()
        assert (incident.cluster, incident.severity, incident.resource_name) == (
            "prod-eu-west-1", "critical", "api-renamed",
        )  # fmt: skip
        assert incident.timestamp == event.timestamp
    bystander.refresh_from_db()
    assert (bystander.cluster, bystander.severity) == ("prod-us-east-1", "low")
    (message,) = history(event)
    assert "Severity: low → critical" in message
    assert "Cluster: prod-us-east-1 → prod-eu-west-1" in message
    assert "Resource name: " in message and "Timestamp: " in message
    assert message.endswith("copied to 3 incidents")
    for incident in incidents:
        (entry,) = history(incident)
        assert "Cluster: prod-us-east-1 → prod-eu-west-1" in entry
        assert entry.endswith(f"(corrected on fault event {event.pk})")
        assert "Severity: low → critical" in entry
    assert history(bystander) == []


def test_fault_id_is_read_only(admin_client, admin_form_data):
    event = make_fault_event(save=True)
    response = admin_client.get(change_url(event))
    assert "fault_id" not in response.context["adminform"].form.fields
    data = admin_form_data(response)
    response = admin_client.post(change_url(event), {**data, "fault_id": "forged"})
    assert response.status_code == 302
    assert FaultEvent.objects.filter(pk=event.pk).exists()
    assert not FaultEvent.objects.filter(pk="forged").exists()


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("cluster", "", "This field is required."),
        ("severity", "catastrophic", "Select a valid choice."),
        ("context", "{not json", "must be JSON text"),
        ("context", "[" * 5000 + "]" * 5000, "must be JSON text"),
    ],
)
def test_invalid_correction_is_a_form_error_and_changes_nothing(
    admin_client, admin_form_data, field, value, error
):
    event = make_fault_event(save=True)
    incident = make_incident(event=event)
    data = admin_form_data(admin_client.get(change_url(event)))
    response = admin_client.post(change_url(event), {**data, "cluster": "new", field: value})
    assert response.status_code == 200
    assert error in response.context["adminform"].form.errors[field][0]
    incident.refresh_from_db()
    assert incident.cluster == event.cluster
    assert history(event) == []


def test_saving_an_unchanged_fault_event_touches_no_incident(admin_client, admin_form_data):
    event = make_fault_event(save=True)
    incident = make_incident(event=event, cluster="as-reported-then")
    data = admin_form_data(admin_client.get(change_url(event)))
    assert admin_client.post(change_url(event), data).status_code == 302
    incident.refresh_from_db()
    assert incident.cluster == "as-reported-then"  # only corrected fields are copied


def test_fault_event_change_page_formats_context_and_links_incidents(admin_client):
    event = make_fault_event(save=True, context=json.dumps({"reason": "<img src=x onerror=1>"}))
    make_incident(event=event, status=Status.FAILED)
    make_incident(event=event)
    page = admin_client.get(change_url(event)).content.decode()
    assert "<img src=x onerror=1>" not in page
    assert "&lt;img src=x onerror=1&gt;" in page
    assert reverse("admin:incidents_incident_changelist") + f"?q={event.fault_id}" in page


# -- executions --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "context",
    ['{"context": "\\ud800 lone surrogate", "logs": []}', "[" * 5000 + "]" * 5000, "not json"],
    ids=["lone-surrogate", "deep-nesting", "not-json"],
)
def test_hostile_stored_context_renders_on_both_change_pages(admin_client, context):
    event = make_fault_event(save=True, context=context)
    incident = make_incident(event=event)
    for url in (
        reverse("admin:incidents_faultevent_change", args=[event.pk]),
        reverse("admin:incidents_incident_change", args=[incident.pk]),
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url


def test_execution_change_page_is_read_only(admin_client):
    incident = make_incident()
    execution = make_execution(incident, error_message="timed out", exit_code=124)
    make_report(incident, execution)
    response = admin_client.get(change_url(execution))
    assert response.status_code == 200
    page = response.content.decode()
    assert "timed out" in page and "/w/x/logs/agent.stdout.log" in page
    assert 'type="submit"' not in page.split('id="agentexecution_form"')[1]
    response = admin_client.post(change_url(execution), {"error_message": "rewritten"})
    assert response.status_code == 403
    execution.refresh_from_db()
    assert execution.error_message == "timed out"


# -- reports ---------------------------------------------------------------------------------------
HOSTILE_MARKDOWN = """# Findings

<script>alert('x')</script>

<img src="x" onerror="alert(1)">

[click](javascript:alert(1))
"""


def preview_of(response) -> str:
    """The rendered preview of a report change page (above the fieldsets, ended by <hr>)."""
    page = response.content.decode()
    return page.split('class="triage-report-body"')[1].split("<hr>")[0]


def test_report_change_page_previews_sanitized_html(admin_client):
    report = make_report(make_incident(), report_markdown=HOSTILE_MARKDOWN)
    response = admin_client.get(change_url(report))
    assert response.status_code == 200
    preview = preview_of(response)
    assert "<h1" in preview and "Findings" in preview
    assert "<script>" not in preview and "onerror" not in preview
    assert "javascript:" not in preview
    assert reverse("incidents:report", args=[report.pk]) in response.content.decode()


def test_report_stored_html_is_sanitized_again_in_the_preview(admin_client):
    report = make_report(
        make_incident(),
        report_html='<p>ok</p><script>alert(1)</script><a href="javascript:x">l</a>',
    )
    preview = preview_of(admin_client.get(change_url(report)))
    assert "<p>ok</p>" in preview
    assert "<script>" not in preview and "javascript:" not in preview


def test_editing_report_markdown_re_renders_its_html(admin_client, admin_form_data):
    report = make_report(make_incident(), report_html="<p>stale</p>")
    data = admin_form_data(admin_client.get(change_url(report)))
    data["report_markdown"] = "## Root cause\n\nA missing secret.\n\n<script>x()</script>"
    response = admin_client.post(change_url(report), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    report = TriageReport.objects.get(pk=report.pk)
    assert report.report_markdown.startswith("## Root cause")
    assert "<h2" in report.report_html and "A missing secret." in report.report_html
    assert "stale" not in report.report_html and "<script>" not in report.report_html
    (message,) = history(report)
    assert message.startswith("Report markdown: ") and message.endswith("HTML re-rendered")


def test_report_incident_and_execution_are_not_editable(admin_client, admin_form_data):
    incident = make_incident()
    report = make_report(incident)
    other = make_execution(make_incident())
    data = admin_form_data(admin_client.get(change_url(report)))
    admin_client.post(change_url(report), {**data, "execution": other.pk, "incident": other.pk})
    report.refresh_from_db()
    assert (report.incident_id, report.execution_id) != (other.incident_id, other.pk)
    assert report.incident_id == incident.pk


@pytest.mark.parametrize("model", [FaultEvent, Incident, TriageReport])
def test_no_add_page(admin_client, model):
    url = reverse(f"admin:incidents_{model._meta.model_name}_add")
    assert admin_client.get(url).status_code == 403


def test_propagated_correction_is_logged_on_every_incident_in_batches(
    admin_client, admin_form_data, monkeypatch
):
    monkeypatch.setattr("incidents.admin.fault_event.HISTORY_BATCH_SIZE", 2)
    event = make_fault_event(save=True, severity="low")
    incidents = [make_incident(event=event, status=Status.FAILED) for _ in range(4)]
    incidents.append(make_incident(event=event))
    data = admin_form_data(admin_client.get(change_url(event)))
    response = admin_client.post(change_url(event), {**data, "severity": "high"})
    assert response.status_code == 302
    for incident in incidents:
        assert history(incident) == [f"Severity: low → high (corrected on fault event {event.pk})"]

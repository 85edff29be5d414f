"""End to end in headless Chromium: the on-call loop as a responder, and as a viewer."""

import re
from datetime import UTC

import pytest
from django.utils import timezone

from incidents.choices import OnCallState, Severity
from incidents.ingest import IngestionService
from incidents.models import Incident, Silence
from tests.browser.conftest import PASSWORD, SCREENSHOTS, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def responder(django_user_model):
    from incidents.roles import responder_group

    user = django_user_model.objects.create_user("rita", "rita@example.com", PASSWORD)
    user.groups.add(responder_group())
    return user


def open_critical(history) -> list:
    return [
        incident
        for incident in history
        if incident.severity == Severity.CRITICAL and incident.oncall_state == OnCallState.OPEN
    ]


def same_fault_again(incident) -> dict:
    """The record upstream sends when the incident's fault fires again, now."""
    return {
        "faultId": incident.fault_id,
        "cluster": incident.cluster,
        "faultType": incident.fault_type,
        "severity": incident.severity,
        "resource": {
            "apiVersion": incident.resource_api_version,
            "kind": incident.resource_kind,
            "name": incident.resource_name,
            "namespace": incident.resource_namespace,
            "uid": incident.resource_uid,
        },
        "context": "Back-off restarting failed container",
        "timestamp": timezone.now().astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def test_a_responder_works_the_on_call_loop(page, live_server, responder, demo_history):
    console_errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    sign_in(page, live_server, responder)
    assert page.get_by_role("heading", name="Needs a human").is_visible()

    # Filter to open critical incidents.
    page.get_by_role("group", name="On call").get_by_label("Acknowledged").uncheck()
    page.get_by_role("group", name="Severity").get_by_label("Critical").check()
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"severity=critical"))
    filtered_url = page.url
    expected = open_critical(demo_history)
    assert len(expected) >= 2
    rows = page.get_by_test_id("incident-table").locator("tbody tr")
    assert rows.count() == len(expected)
    assert set(rows.locator("[data-oncall]").all_inner_texts()) == {"Open"}

    # Acknowledge two from the list: back on the same filtered list, which now omits them.
    first, second = expected[0], expected[1]
    for incident in (first, second):
        page.locator(f'input[name="incident"][value="{incident.pk}"]').check()
    page.get_by_role("button", name="Acknowledge").click()
    page.wait_for_url(filtered_url)
    assert "Acknowledge: 2 incidents" in page.get_by_test_id("messages").inner_text()
    assert rows.count() == len(expected) - 2
    acknowledged = {
        i.pk: i.oncall_state for i in Incident.objects.filter(pk__in=[first.pk, second.pk])
    }
    assert set(acknowledged.values()) == {OnCallState.ACKNOWLEDGED}

    # Assign one to yourself, from the list of acknowledged critical incidents.
    page.goto(f"{live_server.url}/?oncall=acknowledged&severity=critical")
    page.locator(f'input[name="incident"][value="{first.pk}"]').check()
    page.get_by_role("button", name="Assign to me").click()
    page.wait_for_url(re.compile(r"oncall=acknowledged"))
    assert "Assign to me: 1 incident" in page.get_by_test_id("messages").inner_text()

    # Its page: add a note, close it as a false positive.
    page.goto(f"{live_server.url}/incidents/{first.pk}/")
    assert page.get_by_test_id("assignee").inner_text() == "rita"
    page.get_by_label("Add a note").fill("Probe points at the old port; not a real crash.")
    page.get_by_role("button", name="Add note").click()
    page.wait_for_url(f"{live_server.url}/incidents/{first.pk}/")
    timeline = page.get_by_test_id("timeline")
    assert "Probe points at the old port" in timeline.inner_text()
    page.get_by_label("Close as").select_option("false_positive")
    page.get_by_role("button", name="Close", exact=True).click()
    page.wait_for_url(f"{live_server.url}/incidents/{first.pk}/")
    assert page.get_by_test_id("oncall-state").inner_text().endswith("Closed")
    assert "False positive" in timeline.inner_text()

    # Silence its fault for an hour, from its page: the form comes filled in.
    page.get_by_test_id("silence-link").click()
    page.wait_for_url(re.compile(r"/silences/\?"))
    assert page.get_by_label("Resource name").input_value() == first.resource_name
    assert page.get_by_label("For").input_value() == "1"
    page.get_by_label("Comment").fill("false positive while the probe is fixed")
    page.get_by_role("button", name="Silence", exact=True).click()
    page.wait_for_url(f"{live_server.url}/incidents/{first.pk}/")
    assert "Silenced" in page.get_by_test_id("messages").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "incident-oncall.png"), full_page=True)

    # The same fault fires again: stored, counted on the silence, no incident opened.
    before = Incident.objects.filter(fault_id=first.fault_id).count()
    service = IngestionService()
    service.add(same_fault_again(first))
    service.flush()
    assert (service.counts.silenced, service.counts.created) == (1, 0)
    assert Incident.objects.filter(fault_id=first.fault_id).count() == before
    page.get_by_role("link", name="Silences").click()
    active = page.get_by_test_id("active-silences")
    assert active.get_by_test_id("silence-matched").inner_text() == "1"
    assert Silence.objects.get().matched == 1
    page.screenshot(path=str(SCREENSHOTS / "silences.png"), full_page=True)
    assert console_errors == []


def test_a_viewer_sees_the_same_pages_without_action_buttons(page, live_server, sre, demo_history):
    sign_in(page, live_server, sre)
    assert page.get_by_role("heading", name="Needs a human").is_visible()
    assert page.get_by_test_id("bulk-form").count() == 0
    assert page.locator('input[name="incident"]').count() == 0
    target = open_critical(demo_history)[0]
    page.goto(f"{live_server.url}/incidents/{target.pk}/")
    assert page.get_by_test_id("timeline").is_visible()
    assert page.get_by_test_id("incident-actions").count() == 0
    for name in ("Acknowledge", "Close", "Add note", "Assign to me"):
        assert page.get_by_role("button", name=name, exact=True).count() == 0
    page.get_by_role("link", name="Silences").click()
    page.wait_for_url(re.compile(r"/silences/$"))
    assert page.get_by_test_id("silence-form").count() == 0
    assert page.get_by_role("button", name="Expire now").count() == 0

"""End to end in headless Chromium: sign in, narrow the list, open an incident and its report."""

import re

import pytest

from incidents.choices import Severity, Status
from tests.browser.conftest import open_filters, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_sign_in_is_required_and_leads_to_the_list(page, live_server, sre):
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url
    assert page.title() == "Sign in · Incident triage"
    sign_in(page, live_server, sre)
    assert page.title() == "Incidents · Incident triage"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/accounts/login/"))


def test_narrow_by_severity_and_cluster_then_open_incident_and_report(
    page, live_server, sre, demo_history
):
    console_errors: list[str] = []
    page.on(
        "console", lambda message: message.type == "error" and console_errors.append(message.text)
    )
    sign_in(page, live_server, sre)
    rows = page.get_by_test_id("incident-table").locator("tbody tr")
    assert rows.count() == 50  # one page of 72

    page.set_viewport_size({"width": 1280, "height": 1100})
    screenshot(page, "dashboard.png")

    # Narrow through the filter form: keyboard-reachable checkboxes, then Apply.
    open_filters(page)
    page.get_by_role("group", name="Severity").get_by_label("Critical").check()
    page.get_by_role("group", name="Cluster").get_by_label("prod-us-east-1").check()
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"severity=critical"))
    assert "cluster=prod-us-east-1" in page.url
    expected = [
        incident
        for incident in demo_history
        if incident.severity == Severity.CRITICAL and incident.cluster == "prod-us-east-1"
    ]
    assert rows.count() == len(expected) > 0
    assert page.get_by_test_id("match-count").inner_text() == str(len(expected))
    assert set(rows.locator("[data-severity]").all_inner_texts()) == {"Critical"}

    # Open the newest finished one with a report, then its report.
    target = next(
        incident for incident in expected if incident.status in (Status.RESOLVED, Status.FAILED)
    )
    page.locator(f'a[href="/incidents/{target.pk}/"]').first.click()
    page.wait_for_url(f"{live_server.url}/incidents/{target.pk}/")
    assert target.fault_type in page.title()
    assert page.get_by_role("heading", name="Lifecycle").is_visible()
    assert page.get_by_role("heading", name="Executive triage card").first.is_visible()
    screenshot(page, "incident.png", full_page=True)

    page.get_by_role("link", name=re.compile(r"^Report of ")).first.click()
    page.wait_for_url(re.compile(r"/reports/[0-9a-f-]+/$"))
    assert page.get_by_role("navigation", name="Contents").is_visible()
    screenshot(page, "report.png", full_page=True)
    # Nothing on the way was refused by the Content-Security-Policy (or failed otherwise).
    assert console_errors == []


def test_list_fits_a_phone_and_follows_dark_mode(chromium, live_server, sre, demo_history):
    context = chromium.new_context(
        viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True
    )
    page = context.new_page()
    try:
        sign_in(page, live_server, sre)
        # Nothing wider than the screen except inside the table's own scroll box.
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        # The filter panel and the summary start folded, so the incidents come first.
        assert page.locator("details.filters").get_attribute("open") is None
        assert page.get_by_test_id("summary-strip").get_attribute("open") is None
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 19, 24)"  # the dark theme's --bg
        screenshot(page, "dashboard-phone.png", full_page=False)
    finally:
        context.close()


def test_three_clicks_answer_which_critical_incidents_in_a_cluster_failed_and_why(
    page, live_server, sre, demo_history
):
    sign_in(page, live_server, sre)
    page.get_by_test_id("summary-strip").locator("summary").click()
    summary = page.locator("section.summary")
    summary.get_by_role("link", name=re.compile(r"^prod-us-east-1 \d+$")).click()
    page.get_by_test_id("summary-strip").locator("summary").click()
    summary.get_by_role("link", name=re.compile(r"^Critical \d+$")).click()
    page.get_by_test_id("summary-strip").locator("summary").click()
    summary.get_by_role("link", name=re.compile(r"^Triage failed \d+$")).click()
    page.wait_for_url(re.compile(r"status=failed"))
    expected = [
        incident
        for incident in demo_history
        if incident.cluster == "prod-us-east-1"
        and incident.severity == Severity.CRITICAL
        and incident.status == Status.FAILED
    ]
    rows = page.get_by_test_id("incident-table").locator("tbody tr")
    assert rows.count() == len(expected) > 0
    # ... and why: each row carries its failure reason.
    reasons = rows.locator(".resource__reason").all_inner_texts()
    assert reasons == [incident.failure_reason for incident in expected]


def test_auto_refresh_is_on_by_default_and_not_while_typing(page, live_server, sre, monkeypatch):
    monkeypatch.setattr("incidents.live.DEFAULT_REFRESH_SECONDS", 1)
    sign_in(page, live_server, sre)
    assert page.locator("body").get_attribute("data-refresh") == "1"
    page.evaluate("window.__before_reload = true")
    page.wait_for_event("load", timeout=5_000)
    assert page.evaluate("window.__before_reload") is None
    assert page.url == f"{live_server.url}/"  # reloaded, same URL
    # While someone types in the search box the page stays put.
    page.get_by_test_id("quick-search").fill("payments")
    page.evaluate("window.__typing = true")
    page.wait_for_timeout(2_500)
    assert page.evaluate("window.__typing") is True
    assert page.get_by_test_id("quick-search").input_value() == "payments"
    # Off is remembered for this user: the next visit does not refresh.
    page.get_by_test_id("refresh-choice").get_by_role("link", name="off").click()
    page.wait_for_url(re.compile(r"refresh=off"))
    page.goto(f"{live_server.url}/")
    assert page.locator("body").get_attribute("data-refresh") is None

"""End to end in headless Chromium: a responder judges a report (no JavaScript needed), reads
what changed since the previous report, and the scoreboard; screenshots in var/screenshots/."""

import random
from datetime import timedelta
from pathlib import Path

import pytest

from incidents.store import DjangoStateStore
from tests.browser.conftest import PASSWORD, sign_in
from tests.builders import make_fault_event, make_incident, make_report

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
UPSTREAM_REPORT = Path(__file__).resolve().parents[3] / "shared/upstream/report-k8s4agents.md"


@pytest.fixture
def responder(django_user_model):
    from incidents.roles import responder_group

    user = django_user_model.objects.create_user("rita", "rita@example.com", PASSWORD)
    user.groups.add(responder_group())
    return user


@pytest.fixture
def two_reports(transactional_db):
    """The upstream k8s4agents report, then the same fault's next report with a new hypothesis."""
    text = UPSTREAM_REPORT.read_text()
    first = make_incident(status="resolved", fault_type="CrashLoop", resource_name="test-pod")
    old = make_report(first, report_markdown=text, headline_cause="DATABASE_URL unset")
    second = make_incident(event=first.fault, status="resolved", resource_name="test-pod")
    edited = text.replace(
        "is unset after the ConfigMap rename — Confidence: High",
        "is read from a Secret that was rotated without its key — Confidence: Medium",
    ).replace("### Escalation Triggers", "### Escalation triggers (revised)")
    new = make_report(
        second,
        report_markdown=edited,
        generated_at=old.generated_at + timedelta(hours=3),
        headline_cause="Secret rotated without DATABASE_URL",
    )
    return old, new


def judged_history(django_user_model, count: int = 60):
    """Reports over five weeks with verdicts from three people, for the scoreboard."""
    from django.utils import timezone

    rng = random.Random(17)
    store = DjangoStateStore()
    people = [django_user_model.objects.create_user(name) for name in ("ana", "ben", "chloe")]
    weights = {"CrashLoop": 0.7, "OOMKilled": 0.5, "ImagePullBackOff": 0.85, "ProbeFailure": 0.4}
    for n in range(count):
        fault_type = rng.choice(list(weights))
        event = make_fault_event(
            save=True, fault_type=fault_type, cluster=rng.choice(["prod-eu-1", "prod-us-east-1"])
        )
        incident = make_incident(event=event, status="resolved")
        report = make_report(
            incident, generated_at=timezone.now() - timedelta(days=n % 34), recorded=True
        )
        for person in rng.sample(people, rng.randint(0, 2)):
            draw = rng.random()
            verdict = (
                "correct" if draw < weights[fault_type] else
                rng.choice(["partly_correct", "wrong", "wrong", "not_useful"])
            )  # fmt: skip
            missed = verdict in ("wrong", "partly_correct")
            cause = "memory limit too low for the JVM heap" if missed else ""
            store.record_report_verdict(report.pk, by=person, verdict=verdict, actual_cause=cause)


def test_a_responder_judges_a_report_and_sees_what_changed(
    page, live_server, responder, two_reports
):
    _old, new = two_reports
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, live_server, responder)
    page.goto(f"{live_server.url}/reports/{new.report_id}/")
    verdict_line = page.get_by_test_id("comparison-verdict")
    assert "Conclusion changed" in verdict_line.inner_text()
    changed = page.locator('[data-status="changed"]')
    assert "Primary Hypothesis" in changed.first.inner_text()
    page.get_by_label("Wrong").check()
    page.get_by_label("Actual root cause").fill("The Secret was rotated without DATABASE_URL")
    page.get_by_role("button", name="Record verdict").click()
    assert "Your verdict: wrong." in page.get_by_test_id("messages").inner_text()
    assert "rotated without DATABASE_URL" in page.get_by_test_id("verdicts").inner_text()
    page.get_by_test_id("comparison").screenshot(path=str(SCREENSHOTS / "report-comparison.png"))


def test_the_scoreboard(page, live_server, responder, transactional_db, django_user_model):
    judged_history(django_user_model)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, live_server, responder)
    page.get_by_role("link", name="Quality").click()
    page.get_by_label("90 days").check()
    page.get_by_role("button", name="Apply").click()
    assert "reports judged" in page.get_by_test_id("judged-share").inner_text()
    assert page.locator("svg[role=img]").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "scoreboard.png"), full_page=True)

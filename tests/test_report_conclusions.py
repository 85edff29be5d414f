"""The headline stored with each report, and report_ready saying "unchanged" (or staying
silent on channels that skip those) when a report concludes what the fault's previous one did."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import Notification, TriageReport
from incidents.notifications import messages
from incidents.notifications.channels import create_channel
from incidents.quality.compare import headline
from tests.builders import REPORT_MARKDOWN, make_execution, make_incident
from tests.test_compare import UPSTREAM_REPORT

pytestmark = pytest.mark.django_db


def test_the_headline_from_the_upstream_triage_card():
    cause, confidence = headline(UPSTREAM_REPORT.read_text())
    assert cause.startswith("The container exits with code 1 because `DATABASE_URL` is unset")
    assert confidence == "High"


def test_the_headline_from_a_card_row():
    assert headline(REPORT_MARKDOWN) == ("missing DATABASE_URL secret", None)


def test_without_a_card_the_first_headings_paragraph():
    text = (
        "# Node not ready\n\nThe kubelet stopped posting status after a disk-pressure event."
        "\n\n## More\n\nx\n"
    )
    assert headline(text) == (
        "The kubelet stopped posting status after a disk-pressure event.",
        None,
    )  # fmt: skip
    assert headline("no heading at all") == (None, None)
    assert headline("") == (None, None)


def record(store, incident, markdown, *, minutes=0):
    return store.record_triage_report(
        TriageReport(
            incident=incident,
            execution=make_execution(incident),
            report_markdown=markdown,
            generated_at=timezone.now() + timedelta(minutes=minutes),
        )
    )


def test_the_store_records_the_headline_with_the_report(store):
    report = record(store, make_incident(status="investigating"), UPSTREAM_REPORT.read_text())
    stored = TriageReport.objects.get(pk=report.pk)
    assert stored.headline_cause.endswith("after the ConfigMap rename")
    assert stored.headline_confidence == "High"


def card(cause: str) -> str:
    table = f"| field | value |\n|---|---|\n| root cause | {cause} |\n"
    return f"# Report\n\n## Executive triage card\n\n{table}"


def test_report_ready_says_unchanged_and_a_channel_may_skip_those(store):
    create_channel(name="all", kind="webhook", url="https://hooks.example.com/a", secret="s")
    create_channel(
        name="quiet", kind="webhook", url="https://hooks.example.com/q", secret="s",
        skip_unchanged_reports=True,
    )  # fmt: skip
    first = make_incident(status="investigating")
    record(store, first, card("Missing DATABASE_URL"))
    second = make_incident(event=first.fault, status="resolved")
    same = record(store, second, card("missing  DATABASE_URL"), minutes=5)
    changed = record(store, second, card("The node ran out of memory"), minutes=10)

    def sent(report):
        found = Notification.objects.filter(detail__report_id=str(report.report_id))
        return {row.channel.name: row.detail.get("unchanged", False) for row in found}

    assert sent(same) == {"all": True}
    assert sent(changed) == {"all": False, "quiet": False}
    row = Notification.objects.get(channel__name="all", detail__report_id=str(same.report_id))
    body = messages.webhook_body(row, "https://triage.example.com")
    text = str(messages.slack_message(body))
    assert "Unchanged" in text and "same conclusion as the previous report" in text

"""What changed since last time: sections of two k8s4agents reports compared, and the report
page's comparison with the previous report of the same fault."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from incidents.quality.compare import (
    MAX_DIFF_LINES,
    compare_sections,
    diff_lines,
    same_conclusion,
    split_sections,
)
from tests.builders import make_incident, make_report

UPSTREAM_REPORT = Path(settings.BASE_DIR).parent / "shared" / "upstream" / "report-k8s4agents.md"
TOP = "Kubernetes Incident Triage Report"
CARD = f"{TOP} › 0. Executive Triage Card"
UNKNOWNS = f"{TOP} › 3. Root Cause Analysis › Remaining Unknowns"


@pytest.fixture(scope="module")
def upstream() -> str:
    return UPSTREAM_REPORT.read_text()


def edited(text: str) -> str:
    """The upstream report as an agent's next run might write it: a changed hypothesis, a
    renamed section, a new section, a removed section."""
    text = text.replace("Confidence: High", "Confidence: Medium", 1)
    text = text.replace("### Escalation Triggers", "### Escalation triggers (revised)")
    start = text.index("### Remaining Unknowns")
    end = text.index("## 4. Remediation Plan")
    text = text[:start] + text[end:]
    return text + "\n## 7. Follow-up\n\nRe-check the ConfigMap after the next deploy.\n"


def by_title(changes):
    return {change.title: change for change in changes}


def test_sections_follow_the_headings_with_their_path(upstream):
    titles = [section.title for section in split_sections(upstream)]
    assert titles[:3] == [
        "Kubernetes Incident Triage Report",
        CARD,
        f"{CARD} › Primary Hypothesis",
    ]
    assert "Kubernetes Incident Triage Report › 6. Supporting Evidence › Log Excerpts" in titles


def test_a_hash_inside_a_code_block_is_no_heading():
    sections = split_sections("# Report\n\n```sh\n# not a heading\necho\n```\n\n## Next\ntext\n")
    assert [section.title for section in sections] == ["Report", "Report › Next"]
    assert "# not a heading" in sections[0].text


def test_the_upstream_report_against_itself_is_unchanged(upstream):
    assert {change.status for change in compare_sections(upstream, upstream)} == {"unchanged"}


def test_the_upstream_report_against_an_edited_copy(upstream):
    changes = compare_sections(upstream, edited(upstream))
    statuses = {change.title: change.status for change in changes}
    changed = {title for title, status in statuses.items() if status == "changed"}
    assert changed == {
        f"{CARD} › Primary Hypothesis",
    }
    assert statuses[f"{CARD} › Escalation triggers (revised)"] == "added"
    assert statuses[f"{CARD} › Escalation Triggers"] == "removed"
    assert statuses[UNKNOWNS] == "removed"
    assert statuses["Kubernetes Incident Triage Report › 7. Follow-up"] == "added"
    assert statuses["Kubernetes Incident Triage Report › 1. Problem Statement › Symptoms"] == (
        "unchanged"
    )
    hypothesis = by_title(changes)[f"{CARD} › Primary Hypothesis"]
    assert [line.kind for line in hypothesis.lines if line.kind in ("insert", "delete")] == [
        "delete",
        "insert",
    ]
    (deleted,) = [line.text for line in hypothesis.lines if line.kind == "delete"]
    assert deleted.endswith("Confidence: High")
    # The removed section sits where it stood: before the section that followed it.
    order = [change.title for change in changes]
    removed = order.index(UNKNOWNS)
    assert order[removed + 1] == "Kubernetes Incident Triage Report › 4. Remediation Plan"
    assert order[-1] == "Kubernetes Incident Triage Report › 7. Follow-up"


def test_spacing_alone_is_no_change():
    assert compare_sections("# A\n\ntext  here\n", "# A\ntext here\n\n")[0].status == "unchanged"


def test_the_diff_keeps_context_and_marks_what_it_left_out():
    old = "\n".join(f"line {n}" for n in range(20))
    new = old.replace("line 10", "line ten")
    lines = diff_lines(old, new, context=2)
    kinds = [line.kind for line in lines]
    assert kinds == ["skip", "equal", "equal", "delete", "insert", "equal", "equal", "skip"]


def test_a_huge_section_is_said_to_change_without_a_diff():
    old = "# A\n" + "\n".join(f"row {n}" for n in range(MAX_DIFF_LINES + 10))
    (change,) = compare_sections(old, old + "\nmore")
    assert (change.status, change.too_large, change.lines) == ("changed", True, [])


@pytest.mark.parametrize(
    ("previous", "current", "same"),
    [
        ("Missing DATABASE_URL", "missing  database_url", True),
        ("Missing DATABASE_URL", "OOMKilled", False),
        (None, "OOMKilled", None),
        ("OOMKilled", "", None),
    ],
)
def test_same_conclusion(previous, current, same):
    assert same_conclusion(previous, current) is same


@pytest.mark.django_db
def test_the_report_page_compares_with_the_previous_report_of_the_fault(client, viewer, upstream):
    first = make_incident(status="resolved")
    old = make_report(first, report_markdown=upstream, headline_cause="Missing DATABASE_URL")
    second = make_incident(event=first.fault, status="resolved")
    new = make_report(
        second,
        report_markdown=edited(upstream) + "\n<script>alert(1)</script>\n",
        generated_at=old.generated_at + timedelta(hours=2),
        headline_cause="Missing DATABASE_URL",
    )
    client.force_login(viewer)
    page = client.get(reverse("incidents:report", args=[new.report_id])).content.decode()
    assert "Same conclusion as on" in page
    assert reverse("incidents:report", args=[old.report_id]) in page
    assert 'data-status="changed"' in page and 'data-status="removed"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The first report of a fault has nothing to compare with.
    page = client.get(reverse("incidents:report", args=[old.report_id])).content.decode()
    assert 'data-testid="comparison"' not in page


@pytest.mark.django_db
def test_a_changed_conclusion_is_said(client, viewer):
    incident = make_incident(status="resolved")
    old = make_report(incident, headline_cause="Missing DATABASE_URL")
    new = make_report(
        incident,
        generated_at=old.generated_at + timedelta(minutes=5),
        headline_cause="The node ran out of memory",
    )
    client.force_login(viewer)
    page = client.get(reverse("incidents:report", args=[new.report_id])).content.decode()
    assert "Conclusion changed: on" in page and "Missing DATABASE_URL" in page

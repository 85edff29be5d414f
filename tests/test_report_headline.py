"""report_headline: the title, root cause and confidence of the reports agents really write."""

import re
from pathlib import Path

import pytest

from incidents.report_headline import MAX_CHARS, report_headline
from incidents.stub_agent import build_report
from tests.builders import REPORT_MARKDOWN

UPSTREAM_REPORT = Path(__file__).resolve().parents[2] / "shared" / "upstream"


def k8s4agents_report() -> str:
    path = UPSTREAM_REPORT / "report-k8s4agents.md"
    if not path.exists():  # a checkout without shared/: the card as the template writes it
        return K8S4AGENTS_CARD
    return path.read_text(encoding="utf-8")


HYPOTHESIS = (
    "The container exits with code 1 because `DATABASE_URL` is unset after the ConfigMap rename"
    " — Confidence: High"
)
K8S4AGENTS_CARD = f"""# Kubernetes Incident Triage Report

## 0. Executive Triage Card

| Field | Value |
|-------|-------|
| **Status** | 🔴 Active Incident |
| **Severity** | P3 |
| **Impact** | Single Pod |

### Primary Hypothesis
{HYPOTHESIS}

⚠️ **Most Dangerous Assumption**: that the ConfigMap `app-config` is the only source

## 1. Problem Statement
"""


def test_the_k8s4agents_card_gives_root_cause_and_confidence():
    headline = report_headline(k8s4agents_report())
    assert headline == {
        "title": "Kubernetes Incident Triage Report",
        "root_cause": "The container exits with code 1 because `DATABASE_URL` is unset after "
        "the ConfigMap rename",
        "confidence": "High",
        "severity": "P3",
        "status": "🔴 Active Incident",
        "impact": "Single Pod",
    }


def test_the_stub_agents_card_gives_the_most_likely_cause_and_its_percentage():
    report = build_report(
        {
            "faultType": "CrashLoop",
            "resource": {"kind": "Pod", "name": "api-1", "namespace": "payments"},
            "cluster": "prod",
            "severity": "critical",
            "context": "panic: missing DATABASE_URL",
        }
    )
    headline = report_headline(report)
    # The stub writes the k8s4agents form: "<cause> — Confidence: High (54%)".
    assert headline["title"] == "Kubernetes Incident Triage Report"
    assert headline["root_cause"] and "%" not in headline["root_cause"]
    assert re.fullmatch(r"(High|Medium|Low) \(\d{1,3}%\)", headline["confidence"])
    assert "critical" in headline["severity"]


def test_a_root_cause_row():
    headline = report_headline(REPORT_MARKDOWN)
    assert headline["root_cause"] == "missing DATABASE_URL secret"
    assert headline["confidence"] is None


@pytest.mark.parametrize(
    "markdown",
    ["", "no headings at all", "# Title only", "## Executive triage card\n\n| a |", "|" * 10_000],
)
def test_reports_without_a_card_give_nones_and_never_raise(markdown):
    headline = report_headline(markdown)
    assert headline["root_cause"] is None
    assert headline["confidence"] is None


def test_a_card_after_the_scanned_prefix_is_not_read_and_values_are_cut():
    long_cause = "x" * 5000
    card = f"## Executive triage card\n\n| root cause | {long_cause} |\n"
    assert len(report_headline(card)["root_cause"]) == MAX_CHARS
    assert report_headline("y\n" * 40_000 + card)["root_cause"] is None


def test_emphasis_and_links_are_plain_text_and_html_is_left_for_the_caller_to_escape():
    card = (
        "## 0. Executive Triage Card\n\n### Primary Hypothesis\n"
        "**Bad** [config](https://evil.example) <script>x</script> - Confidence: 40%\n"
    )
    headline = report_headline(card)
    assert headline["root_cause"] == "Bad config <script>x</script>"
    assert headline["confidence"] == "40%"

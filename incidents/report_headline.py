"""The headline of a triage report: title, root cause, confidence (and the card's other cells).

Agents following the k8s4agents template open with `## 0. Executive Triage Card`: a table of
Status/Severity/Impact/Duration, then `### Primary Hypothesis` whose first paragraph ends
`— Confidence: High`. The shipped stub writes `## 1. Executive triage card` with a
`| Most likely cause | … (70%) |` row. Both, and a `| root cause | … |` row, are read here.
Nothing is rendered: the values are plain text, emphasis and links stripped, each cut to
`MAX_CHARS`. Callers escape them for wherever they go (Slack mrkdwn, HTML).
"""

from __future__ import annotations

import re

MAX_CHARS = 300
# The card sits at the top: a 2 MB report is not scanned past this.
SCAN_CHARS = 64 * 1024

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CARD = re.compile(r"executive\s+triage\s+card", re.IGNORECASE)
_ROW = re.compile(r"^\s*\|(.+)\|\s*$")
_RULE = re.compile(r"^[\s|:-]+$")
# "… — Confidence: High", "… - confidence: 85%", "… (Confidence: Medium)",
# "… — Confidence: High (54%)"
_TRAILING_CONFIDENCE = re.compile(
    r"\s*(?:[—–-]+\s*|\(\s*)confidence\s*:\s*(.+?)\s*$", re.IGNORECASE
)
_TRAILING_PERCENT = re.compile(r"\s*\((\d{1,3}\s*%)\)\s*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_)(?=\S)(.+?)(?<=\S)\1")

_KEYS = {
    "root cause": "root_cause",
    "most likely cause": "root_cause",
    "primary hypothesis": "root_cause",
    "confidence": "confidence",
    "severity": "severity",
    "status": "status",
    "impact": "impact",
}
FIELDS = ("title", "root_cause", "confidence", "severity", "status", "impact")


def _plain(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = " ".join(text.replace("\\|", "|").split())
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def _split_confidence(text: str) -> tuple[str, str | None]:
    for pattern in (_TRAILING_CONFIDENCE, _TRAILING_PERCENT):
        match = pattern.search(text)
        if match and match.start() > 0:
            value = match.group(1).strip()
            if value.count(")") > value.count("("):  # the "(Confidence: …)" form's own bracket
                value = value[: value.rindex(")")].rstrip()
            return text[: match.start()].rstrip(" .—–-"), value
    return text, None


def _card_lines(lines: list[str]) -> list[str]:
    """The lines of the executive triage card section, up to the next heading of its level."""
    for start, line in enumerate(lines):
        heading = _HEADING.match(line)
        if heading and _CARD.search(heading.group(2)):
            level = len(heading.group(1))
            section = []
            for following in lines[start + 1 :]:
                nested = _HEADING.match(following)
                if nested and len(nested.group(1)) <= level:
                    break
                section.append(following)
            return section
    return []


def _first_paragraph(lines: list[str], heading: re.Pattern[str]) -> str | None:
    """The first paragraph under a heading matching `heading` (within `lines`)."""
    inside, paragraph = False, []
    for line in lines:
        match = _HEADING.match(line)
        if match:
            if inside:
                break
            inside = bool(heading.search(match.group(2)))
            continue
        if inside:
            if line.strip():
                paragraph.append(line.strip())
            elif paragraph:
                break
    return " ".join(paragraph) or None


def report_headline(markdown: str) -> dict[str, str | None]:
    """`{title, root_cause, confidence, severity, status, impact}` read from a report; a value
    the report does not give is None. Never raises on any text."""
    lines = (markdown or "")[:SCAN_CHARS].splitlines()
    headline: dict[str, str | None] = dict.fromkeys(FIELDS)
    for line in lines:
        match = _HEADING.match(line)
        if match and len(match.group(1)) == 1:
            headline["title"] = _plain(match.group(2)) or None
            break
    card = _card_lines(lines)
    for line in card:
        row = _ROW.match(line)
        if not row or _RULE.match(line):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row.group(1))]
        if len(cells) < 2:
            continue
        key = _KEYS.get(_plain(cells[0]).lower().rstrip(":"))
        if key and headline[key] is None and _plain(cells[1]):
            headline[key] = _plain(cells[1])
    hypothesis = _first_paragraph(card, re.compile(r"primary\s+hypothesis", re.IGNORECASE))
    if hypothesis and headline["root_cause"] is None:
        headline["root_cause"] = _plain(hypothesis)
    if headline["root_cause"]:
        cause, confidence = _split_confidence(headline["root_cause"])
        headline["root_cause"] = cause or headline["root_cause"]
        if headline["confidence"] is None:
            headline["confidence"] = confidence
    return headline

"""What the incident page's header card says about the newest report: the cause (from the
report's Executive Triage Card, read by `report_headline`) and the first recommended action.

Plain text only; the template escapes it. Reports are untrusted and may be 2 MB: only the top
SCAN_CHARS are read, as for the headline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from incidents.report_headline import SCAN_CHARS, report_headline

MAX_CHARS = 300
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_ACTIONS = re.compile(
    r"(recommended|immediate|next|first|suggested)\s+(actions?|steps?|fix)|remediation",
    re.IGNORECASE,
)
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+(?:\[[ xX]\]\s+)?(.+)$")
_ROW = re.compile(r"^\s*\|\s*([^|]+?)\s*\|\s*(.+?)\s*\|\s*$")
_ROW_KEYS = ("first action", "recommended action", "next step", "immediate action")
_MARKUP = re.compile(r"\*\*|__|`|!?\[([^\]]*)\]\([^)]*\)")


def _plain(text: str) -> str:
    text = " ".join(_MARKUP.sub(lambda m: m.group(1) or "", text).split())
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def first_action(markdown: str) -> str | None:
    """The card's "first action" row, else the first list item (or line) under a
    recommended/immediate/next actions heading; None when the report has neither."""
    lines = (markdown or "")[:SCAN_CHARS].splitlines()
    for line in lines:
        row = _ROW.match(line)
        if row and _plain(row.group(1)).lower().rstrip(":") in _ROW_KEYS:
            return _plain(row.group(2)) or None
    inside = False
    for line in lines:
        heading = _HEADING.match(line)
        if heading:
            if inside:
                return None
            inside = bool(_ACTIONS.search(heading.group(1)))
            continue
        if inside and line.strip() and not line.lstrip().startswith(("```", "|", ">")):
            item = _ITEM.match(line)
            return _plain(item.group(1) if item else line) or None
    return None


@dataclass(frozen=True)
class ReportSummary:
    cause: str | None
    confidence: str | None
    action: str | None

    def __bool__(self) -> bool:
        return bool(self.cause or self.action)


def summarize_report(markdown: str) -> ReportSummary:
    headline = report_headline(markdown)
    return ReportSummary(
        cause=headline["root_cause"],
        confidence=headline["confidence"],
        action=first_action(markdown),
    )

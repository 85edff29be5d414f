"""What changed since last time: a report compared with the previous report of the same fault.

Both reports are cut into sections at every heading (markdown-it's own reading of the markdown,
so a `#` inside a code block is not a heading). A section is known by its heading path
(`1. Problem Statement › Symptoms`), so a section that moved is compared with itself. Each
section of either report is `unchanged`, `changed` (with a line diff from difflib), `added` or
`removed`, in the new report's order with removed sections where they stood.

Nothing here is marked safe: templates escape every line of the diff as they print it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cache

from markdown_it import MarkdownIt

from incidents.report_headline import MAX_CHARS, SCAN_CHARS, report_headline

PREAMBLE = "(before the first heading)"
CONFIDENCE_CHARS = 64  # triage_reports.headline_confidence
CONTEXT_LINES = 2
# difflib is quadratic in the worst case: a section beyond these is only said to have changed.
MAX_DIFF_LINES = 2_000
MAX_DIFF_CHARS = 200_000
# Reports are capped at 2 MiB by the worker; the comparison reads at most this much of each.
MAX_COMPARED_CHARS = 512 * 1024


@cache
def _parser() -> MarkdownIt:
    # The block rules are enough to find headings; nothing is rendered.
    return MarkdownIt("commonmark", {"maxNesting": 20})


@dataclass(frozen=True)
class Section:
    key: str  # the heading path, with an occurrence number when a path repeats
    title: str  # the heading path as shown
    text: str  # the section's lines, heading included


def split_sections(markdown: str) -> list[Section]:
    """The report's sections: what comes before the first heading (if anything), then one per
    heading up to the next heading of any level."""
    text = (markdown or "")[:MAX_COMPARED_CHARS]
    lines = text.splitlines()
    starts: list[tuple[int, int, str]] = []  # (line, level, title)
    tokens = _parser().parse(text)
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.map:
            title = " ".join(tokens[index + 1].content.split())
            starts.append((token.map[0], int(token.tag[1]), title))
    sections: list[Section] = []
    first = starts[0][0] if starts else len(lines)
    if "\n".join(lines[:first]).strip():
        sections.append(Section(PREAMBLE, PREAMBLE, "\n".join(lines[:first]).strip()))
    path: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for position, (line, level, title) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(lines)
        path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, title)]
        shown = " › ".join(name for _, name in path)
        seen[shown] = seen.get(shown, 0) + 1
        key = shown if seen[shown] == 1 else f"{shown} ({seen[shown]})"
        sections.append(Section(key, shown, "\n".join(lines[line:end]).strip()))
    return sections


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "equal", "insert", "delete", "skip" (unchanged lines left out)
    text: str


@dataclass(frozen=True)
class SectionChange:
    status: str  # "unchanged", "changed", "added", "removed"
    title: str
    lines: list[DiffLine] = field(default_factory=list)
    too_large: bool = False  # changed, but too large to diff

    @property
    def changed_lines(self) -> int:
        return sum(1 for line in self.lines if line.kind in ("insert", "delete"))


def _normal(text: str) -> str:
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def diff_lines(old: str, new: str, *, context: int = CONTEXT_LINES) -> list[DiffLine]:
    """A line diff of two texts with `context` unchanged lines around each change."""
    before, after = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    lines: list[DiffLine] = []
    last = 0
    for number, group in enumerate(matcher.get_grouped_opcodes(context)):
        if number or group[0][1] > 0:
            lines.append(DiffLine("skip", ""))
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                lines += [DiffLine("equal", text) for text in before[a1:a2]]
            else:
                lines += [DiffLine("delete", text) for text in before[a1:a2]]
                lines += [DiffLine("insert", text) for text in after[b1:b2]]
            last = a2
    if lines and last < len(before):
        lines.append(DiffLine("skip", ""))
    return lines


def _change(title: str, old: str, new: str) -> SectionChange:
    if _normal(old) == _normal(new):
        return SectionChange("unchanged", title)
    sizes = (old.count("\n") + new.count("\n"), len(old) + len(new))
    if sizes[0] > MAX_DIFF_LINES or sizes[1] > MAX_DIFF_CHARS:
        return SectionChange("changed", title, too_large=True)
    return SectionChange("changed", title, diff_lines(old, new))


def _whole(status: str, section: Section) -> SectionChange:
    """An added (all inserted) or removed (all deleted) section, its text when not too large."""
    kind = "insert" if status == "added" else "delete"
    lines = section.text.splitlines()
    if len(lines) > MAX_DIFF_LINES or len(section.text) > MAX_DIFF_CHARS:
        return SectionChange(status, section.title, too_large=True)
    return SectionChange(status, section.title, [DiffLine(kind, line) for line in lines])


def compare_sections(previous: str, current: str) -> list[SectionChange]:
    """Each section of either report with what became of it, in the current report's order."""
    old = {section.key: section for section in split_sections(previous)}
    new = split_sections(current)
    new_keys = {section.key for section in new}
    old_order = list(old)
    changes: list[SectionChange] = []
    placed: set[str] = set()
    for section in new:
        if section.key in old:
            # Removed sections that stood before this one in the old report come first.
            for key in old_order[: old_order.index(section.key)]:
                if key not in new_keys and key not in placed:
                    placed.add(key)
                    changes.append(_whole("removed", old[key]))
            placed.add(section.key)
            changes.append(_change(section.title, old[section.key].text, section.text))
        else:
            changes.append(_whole("added", section))
    changes += [
        _whole("removed", old[key])
        for key in old_order
        if key not in new_keys and key not in placed
    ]
    return changes


_SPACE = re.compile(r"\s+")


def same_conclusion(previous: str | None, current: str | None) -> bool | None:
    """Whether two headline causes say the same (case and spacing aside); None when either
    report states no cause we could read."""
    if not previous or not current:
        return None
    return (
        _SPACE.sub(" ", previous).strip().casefold() == _SPACE.sub(" ", current).strip().casefold()
    )


def headline(markdown: str) -> tuple[str | None, str | None]:
    """(root cause, confidence) of a report, read once when it is recorded: from its executive
    triage card when it has one (`incidents.report_headline`), else the first paragraph under
    its first heading (no confidence). (None, None) when it states neither."""
    card = report_headline(markdown)
    if card["root_cause"]:
        confidence = card["confidence"]
        return card["root_cause"], confidence[:CONFIDENCE_CHARS] if confidence else None
    tokens = _parser().parse((markdown or "")[:SCAN_CHARS])
    seen_heading = False
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            seen_heading = True
        elif seen_heading and token.type == "paragraph_open":
            text = " ".join(tokens[index + 1].content.split())
            if text:
                return (text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"), None
    return None, None

"""Template helpers for the dashboard: badges, durations, the lifecycle, fault context, the chart.

Nothing here marks text safe: templates autoescape what these return (the chart's numbers are
computed here; labels are escaped by the template).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django import template
from django.utils import timezone

from incidents.choices import (
    ONCALL_COLOURS,
    SEVERITY_COLOURS,
    STATUS_COLOURS,
    OnCallState,
    Severity,
    Status,
)
from incidents.context import NotJSON, load_context, printable
from incidents.models import Incident
from incidents.selectors import Summary

register = template.Library()


# --- badges -----------------------------------------------------------------------------------


@register.inclusion_tag("incidents/partials/_badge.html")
def status_badge(value: str) -> dict:
    """A status badge: its colour from STATUS_COLOURS and its label (colour is never alone)."""
    label = Status(value).label if value in Status.values else value
    return {"kind": "status", "value": value, "label": label, "colour": STATUS_COLOURS.get(value)}


@register.inclusion_tag("incidents/partials/_badge.html")
def oncall_badge(value: str) -> dict:
    """The on-call state (is someone on it, is it over): Open, Acknowledged, Closed."""
    if value not in OnCallState.values:
        return {"kind": "oncall", "value": value, "label": value, "colour": None}
    state = OnCallState(value)
    return {
        "kind": "oncall",
        "value": value,
        "label": state.label,
        "colour": ONCALL_COLOURS.get(state),
    }


@register.inclusion_tag("incidents/partials/_badge.html")
def severity_badge(value: str) -> dict:
    """A severity badge: its colour from SEVERITY_COLOURS and its label."""
    label = Severity(value).label if value in Severity.values else value
    return {
        "kind": "severity",
        "value": value,
        "label": label,
        "colour": SEVERITY_COLOURS.get(value),
    }


# --- durations --------------------------------------------------------------------------------


# Keyset position belongs to one list; narrowing the filter starts from its first page.
_PAGE_PARAMETERS = ("after", "before", "last")


@register.simple_tag(takes_context=True)
def narrowed(context, parameter: str, value: str | None = None) -> str:
    """The current list's query with `parameter` set to `value` alone (removed when None),
    every other filter kept, back on the first page."""
    # The list's effective query: the default view's on-call filter included.
    query = context.get("list_query", context["request"].GET).copy()
    for name in _PAGE_PARAMETERS:
        query.pop(name, None)
    if value is None:
        query.pop(parameter, None)
    else:
        query.setlist(parameter, [value])
    return f"?{query.urlencode()}"


@register.filter
def human_duration(value: timedelta | None) -> str:
    """`<1s`, `45s`, `12m 05s`, `3h 04m`, `2d 3h`; empty for None."""
    if value is None:
        return ""
    if abs(value.total_seconds()) < 1:
        return "<1s"  # a run that took 0.4 s did not take "0s"
    seconds = int(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d {hours}h"
    elif hours:
        text = f"{hours}h {minutes:02d}m"
    elif minutes:
        text = f"{minutes}m {secs:02d}s"
    else:
        text = f"{secs}s"
    return sign + text


@register.filter
def since(value: datetime | None, now: datetime | None = None) -> str:
    """A compact relative time for tables: `just now`, `12m ago`, `5h ago`, `3d 4h ago`,
    `9d ago` (in the future: `in 5m`). The absolute time goes in the cell's title."""
    if value is None:
        return ""
    delta = (now or timezone.now()) - value
    future = delta.total_seconds() < 0
    seconds = abs(int(delta.total_seconds()))
    if seconds < 45:
        return "just now"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        text = f"{max(minutes, 1)}m"
    elif hours < 24:
        text = f"{hours}h"
    elif days < 7:
        text = f"{days}d {hours % 24}h" if hours % 24 else f"{days}d"
    else:
        text = f"{days}d"
    return f"in {text}" if future else f"{text} ago"


@register.simple_tag
def elapsed(start: datetime | None, end: datetime | None) -> str:
    """The time from `start` to `end` as human_duration; empty when either is missing."""
    if start is None or end is None:
        return ""
    return human_duration(end - start)


# --- the lifecycle ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    label: str
    at: datetime | None
    note: str  # the wait before this step, or how long it has been pending
    state: str  # "done", "current" or "future", for the timeline's marker


@register.simple_tag
def lifecycle(incident: Incident, now: datetime | None = None) -> list[Step]:
    """created → started → completed, with the wait before the start and the run's duration."""
    now = now or timezone.now()
    created, started, completed = incident.created_at, incident.started_at, incident.completed_at
    steps = [Step("Created", created, "fault received, incident queued", "done")]
    if started:
        steps.append(Step("Started", started, f"after waiting {elapsed(created, started)}", "done"))
    elif completed is None:
        steps.append(
            Step("Started", None, f"waiting for {elapsed(created, now)} so far", "current")
        )
    if completed:
        since = started or created
        verb = "ran" if started else "closed after"
        label = Status(incident.status).label if incident.status in Status.values else "Completed"
        steps.append(
            Step(f"Completed ({label})", completed, f"{verb} {elapsed(since, completed)}", "done")
        )
    elif started:
        steps.append(
            Step("Completed", None, f"running for {elapsed(started, now)} so far", "current")
        )
    else:
        steps.append(Step("Completed", None, "", "future"))
    return steps


# --- fault context and container logs ---------------------------------------------------------


@register.filter
def strip_ansi(text: str) -> str:
    """`text` without terminal escapes and control characters (autoescaping then makes it inert)
    and with lone surrogates shown as U+FFFD."""
    return printable(text)


@dataclass(frozen=True)
class LogSample:
    container: str
    previous: bool
    has_panic: bool
    sample: str


@dataclass(frozen=True)
class FaultContext:
    """The incident's context JSON, taken apart for display."""

    message: str  # upstream's context sentence, if it sent one
    logs: list[LogSample]
    details: str  # everything else, pretty-printed JSON ("" when nothing else)
    valid_json: bool


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@register.filter
def fault_context(text: str) -> FaultContext:
    """Parse a context: a JSON object with an optional `context` sentence and `logs` array of
    {container, previous, hasPanic, sample}; anything else is kept as details. Text that is not
    JSON is shown as it is."""
    try:
        data = load_context(text)
    except NotJSON:
        return FaultContext(message="", logs=[], details=strip_ansi(text), valid_json=False)
    if not isinstance(data, dict):
        if isinstance(data, str):
            return FaultContext(message=strip_ansi(data), logs=[], details="", valid_json=True)
        data = {"context": data}
    rest = dict(data)
    message = rest.pop("context", "")
    if not isinstance(message, str):
        rest["context"], message = message, ""
    logs: list[LogSample] = []
    raw_logs = rest.pop("logs", [])
    if isinstance(raw_logs, list):
        for entry in raw_logs:
            if not isinstance(entry, dict):
                continue
            logs.append(
                LogSample(
                    container=strip_ansi(_text(entry.get("container") or "(unnamed container)")),
                    previous=entry.get("previous") is True,
                    has_panic=entry.get("hasPanic") is True,
                    sample=strip_ansi(_text(entry.get("sample", ""))),
                )
            )
    elif raw_logs:
        rest["logs"] = raw_logs
    details = json.dumps(rest, indent=2, sort_keys=True, ensure_ascii=False) if rest else ""
    return FaultContext(
        message=strip_ansi(message), logs=logs, details=strip_ansi(details), valid_json=True
    )


# --- the chart --------------------------------------------------------------------------------

CHART_WIDTH = 1100
CHART_HEIGHT = 180
_LEFT, _RIGHT, _TOP, _BOTTOM = 40, 8, 10, 26
# Stacked from the bottom, most severe first: the bars' bases are what the eye compares.
_STACK = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW]


@dataclass(frozen=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class AxisLabel:
    x: float
    y: float
    text: str


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 4, 5, 6, 8 × 10^n at or above `value` (at least 1): a top whose
    half is a round number too."""
    step = 1
    while True:
        for factor in (1, 2, 4, 5, 6, 8):
            if step * factor >= value:
                return step * factor
        step *= 10


def _day_label(day: date, with_month: bool) -> str:
    return day.strftime("%b %-d") if with_month else day.strftime("%-d")


@register.inclusion_tag("incidents/partials/_chart.html")
def incident_chart(summary: Summary) -> dict:
    """Incidents per day by severity as a stacked bar chart, drawn as inline SVG."""
    days = summary.days
    plot_width = CHART_WIDTH - _LEFT - _RIGHT
    plot_height = CHART_HEIGHT - _TOP - _BOTTOM
    top = _nice_ceiling(max((bar.total for bar in days), default=0))
    slot = plot_width / max(len(days), 1)
    bar_width = max(slot * 0.72, 1.0)
    segments: list[Segment] = []
    labels: list[AxisLabel] = []
    every = max(1, -(-len(days) // 10))  # at most about ten date labels
    for index, bar in enumerate(days):
        x = _LEFT + index * slot + (slot - bar_width) / 2
        base: float = _TOP + plot_height
        for severity in _STACK:
            count = bar.by_severity.get(severity, 0)
            if not count:
                continue
            height = plot_height * count / top
            base -= height
            segments.append(
                Segment(
                    x=round(x, 2),
                    y=round(base, 2),
                    width=round(bar_width, 2),
                    height=round(height, 2),
                    colour=SEVERITY_COLOURS[severity],
                    title=f"{bar.day:%a %b %-d}: {count} {severity.label.lower()}",
                )
            )
        if index % every == 0:
            labels.append(
                AxisLabel(
                    x=round(_LEFT + index * slot + slot / 2, 2),
                    y=CHART_HEIGHT - 8,
                    text=_day_label(bar.day, index == 0 or bar.day.day <= every),
                )
            )
    grid = [
        AxisLabel(x=_LEFT - 6, y=round(_TOP + plot_height * (1 - fraction), 2), text=f"{value:g}")
        for fraction, value in ((0, 0), (0.5, top // 2), (1, top))
        if fraction != 0.5 or top % 2 == 0  # no half-incident gridline
    ]
    busiest = max(days, key=lambda bar: bar.total, default=None)
    description = (
        f"{summary.total} incidents from {days[0].day:%b %-d} to {days[-1].day:%b %-d}"
        + (
            f"; busiest day {busiest.day:%b %-d} with {busiest.total}."
            if busiest and busiest.total
            else "."
        )
        if days
        else "No days in range."
    )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": _LEFT,
        "right": CHART_WIDTH - _RIGHT,
        "segments": segments,
        "labels": labels,
        "grid": grid,
        "description": description,
        "legend": [(severity.label, SEVERITY_COLOURS[severity]) for severity in _STACK],
        "summary": summary,
    }

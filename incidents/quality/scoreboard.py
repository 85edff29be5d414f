"""The numbers of `/quality/`: how often the agents' reports were judged, and how they fared.

Every figure is a verdict count (one person's judgement of one report) over the reports
generated in a window of whole UTC days; "judged" is the share of those reports with at least
one verdict. The counts come from `quality_daily` (one row per day, cluster and fault type,
kept by the store): one GROUP BY over at most days x clusters x fault types rows, whatever the
number of reports and verdicts. The list of judged reports reads `report_verdicts` newest first
through `report_verdicts_generated_idx`. Two queries in all.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from django.db.models import QuerySet, Sum
from django.utils import timezone

from incidents.choices import VERDICT_COLOURS, Verdict
from incidents.models import QualityDay, ReportVerdict
from incidents.quality.rollup import COUNTERS

WINDOWS = (7, 30, 90)
DEFAULT_WINDOW = 30
RECENT_LIMIT = 25


@dataclass(frozen=True, kw_only=True)
class ScoreFilters:
    days: int = DEFAULT_WINDOW
    clusters: tuple[str, ...] = ()
    fault_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Score:
    """Verdict counts of one group (everything, a fault type, a week)."""

    label: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, verdict: str) -> float:
        """The verdict's share of this group's verdicts, in percent (0 with no verdict)."""
        return 100 * self.counts.get(verdict, 0) / self.total if self.total else 0.0

    @cached_property
    def shares(self) -> list[tuple[str, str, str, int, float]]:
        """(value, label, colour, count, percent) per verdict, in Verdict's order."""
        return [
            (value, label, VERDICT_COLOURS[value], self.counts.get(value, 0), self.share(value))
            for value, label in Verdict.choices
        ]

    @cached_property
    def bar(self) -> list[tuple[str, float, float]]:
        """(colour, x, width) in percent per verdict present: the row's share bar (an SVG, as
        the page's policy allows no inline style)."""
        segments, x = [], 0.0
        for _value, _label, colour, count, percent in self.shares:
            if count:
                segments.append((colour, round(x, 3), round(percent, 3)))
                x += percent
        return segments


@dataclass(frozen=True)
class Scoreboard:
    filters: ScoreFilters
    start: datetime
    end: datetime
    reports: int  # reports generated in the window (under the filters)
    judged: int  # of which at least one verdict
    overall: Score
    by_fault_type: list[Score]
    weeks: list[tuple[date, Score]]
    recent: list[ReportVerdict] = field(default_factory=list)

    @property
    def judged_share(self) -> float:
        return 100 * self.judged / self.reports if self.reports else 0.0


def window(days: int, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last `days` whole UTC days, today included: [start, end)."""
    now = (now or timezone.now()).astimezone(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days - 1), today + timedelta(days=1)


def _days(filters: ScoreFilters, start: datetime, end: datetime) -> QuerySet[QualityDay]:
    queryset = QualityDay.objects.filter(day__gte=start.date(), day__lt=end.date())
    if filters.clusters:
        queryset = queryset.filter(cluster__in=filters.clusters)
    if filters.fault_types:
        queryset = queryset.filter(fault_type__in=filters.fault_types)
    return queryset.order_by()


def _recent(filters: ScoreFilters, start: datetime, end: datetime) -> list[ReportVerdict]:
    """The latest judged reports (by the report's date: report_verdicts_generated_idx)."""
    queryset = ReportVerdict.objects.filter(generated_at__gte=start, generated_at__lt=end)
    if filters.clusters:
        queryset = queryset.filter(cluster__in=filters.clusters)
    if filters.fault_types:
        queryset = queryset.filter(fault_type__in=filters.fault_types)
    return list(
        queryset.select_related("report__incident", "user")
        .defer("report__report_markdown", "report__report_html", "report__incident__context")
        .order_by("-generated_at", "-pk")[:RECENT_LIMIT]
    )


def _weeks(start: datetime, end: datetime) -> list[date]:
    """The Mondays of the ISO weeks the window touches."""
    first = start.date() - timedelta(days=start.weekday())
    last = (end - timedelta(microseconds=1)).date()
    return [first + timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]


def scoreboard(filters: ScoreFilters, *, now: datetime | None = None) -> Scoreboard:
    """The scoreboard for `filters`: one GROUP BY over the window's day counters (at most days
    x fault types rows out), and the latest judged reports."""
    start, end = window(filters.days, now=now)
    rows = (
        _days(filters, start, end)
        .values_list("day", "fault_type")
        .annotate(**{name: Sum(name) for name in COUNTERS})
    )
    by_type: dict[str, dict[str, int]] = defaultdict(dict)
    per_week: dict[date, dict[str, int]] = defaultdict(dict)
    overall: dict[str, int] = {}
    totals = {"reports": 0, "judged": 0}
    for day, fault_type, *values in rows:
        counts = dict(zip(COUNTERS, values, strict=True))
        for name in totals:
            totals[name] += counts.pop(name)
        week = day - timedelta(days=day.weekday())
        for verdict, n in counts.items():
            if n:
                for bucket in (by_type[fault_type], per_week[week], overall):
                    bucket[verdict] = bucket.get(verdict, 0) + n
    return Scoreboard(
        filters=filters,
        start=start,
        end=end,
        reports=totals["reports"],
        judged=totals["judged"],
        overall=Score("All judged reports", overall),
        by_fault_type=sorted(
            (Score(name, counts) for name, counts in by_type.items() if counts),
            key=lambda score: (-score.total, score.label),
        ),
        weeks=[
            (week, Score(f"week of {week:%Y-%m-%d}", per_week.get(week, {})))
            for week in _weeks(start, end)
        ],
        recent=_recent(filters, start, end),
    )

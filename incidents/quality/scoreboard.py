"""The numbers of `/quality/`: how often the agents' reports were judged, and how they fared.

Every figure is a verdict count (one person's judgement of one report) over the reports
generated in a window of whole UTC days; "judged" is the share of those reports with at least
one verdict. Verdicts carry copies of their report's `generated_at`, cluster and fault type, so
the verdict queries read `report_verdicts` alone through `report_verdicts_generated_idx`; the
one query that counts reports reads `triage_reports` by `generated_at`, joining incidents only
when a cluster or fault type narrows it. Five queries in all, each bounded by the window.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncWeek
from django.utils import timezone

from incidents.choices import VERDICT_COLOURS, Verdict
from incidents.models import ReportVerdict, TriageReport

WINDOWS = (7, 30, 90)
DEFAULT_WINDOW = 30
RECENT_LIMIT = 50


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

    @property
    def shares(self) -> list[tuple[str, str, str, int, float]]:
        """(value, label, colour, count, percent) per verdict, in Verdict's order."""
        return [
            (value, label, VERDICT_COLOURS[value], self.counts.get(value, 0), self.share(value))
            for value, label in Verdict.choices
        ]

    @property
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


def _verdicts(filters: ScoreFilters, start: datetime, end: datetime) -> QuerySet[ReportVerdict]:
    queryset = ReportVerdict.objects.filter(generated_at__gte=start, generated_at__lt=end)
    if filters.clusters:
        queryset = queryset.filter(cluster__in=filters.clusters)
    if filters.fault_types:
        queryset = queryset.filter(fault_type__in=filters.fault_types)
    return queryset.order_by()


def _reports(filters: ScoreFilters, start: datetime, end: datetime) -> int:
    queryset = TriageReport.objects.filter(generated_at__gte=start, generated_at__lt=end)
    if filters.clusters:
        queryset = queryset.filter(incident__cluster__in=filters.clusters)
    if filters.fault_types:
        queryset = queryset.filter(incident__fault_type__in=filters.fault_types)
    return queryset.order_by().count()


def _weeks(start: datetime, end: datetime) -> list[date]:
    """The Mondays of the ISO weeks the window touches."""
    first = start.date() - timedelta(days=start.weekday())
    return [first + timedelta(weeks=n) for n in range((end.date() - first).days // 7 + 1)]


def scoreboard(filters: ScoreFilters, *, now: datetime | None = None) -> Scoreboard:
    """The scoreboard for `filters` (five queries, each bounded by the window)."""
    start, end = window(filters.days, now=now)
    verdicts = _verdicts(filters, start, end)
    by_type: dict[str, dict[str, int]] = defaultdict(dict)
    overall: dict[str, int] = {}
    for fault_type, verdict, n in verdicts.values_list("fault_type", "verdict").annotate(
        n=Count("*")
    ):
        by_type[fault_type][verdict] = n
        overall[verdict] = overall.get(verdict, 0) + n
    per_week: dict[date, dict[str, int]] = defaultdict(dict)
    rows = (
        verdicts.annotate(week=TruncWeek("generated_at", tzinfo=UTC))
        .values_list("week", "verdict")
        .annotate(n=Count("*"))
    )
    for week, verdict, n in rows:
        day = week.date() if isinstance(week, datetime) else week
        per_week[day][verdict] = n
    judged = verdicts.values("report_id").distinct().count()
    recent = list(
        verdicts.select_related("report__incident", "user")
        .defer("report__report_markdown", "report__report_html", "report__incident__context")
        .order_by("-updated_at", "-pk")[:RECENT_LIMIT]
    )
    return Scoreboard(
        filters=filters,
        start=start,
        end=end,
        reports=_reports(filters, start, end),
        judged=judged,
        overall=Score("All judged reports", overall),
        by_fault_type=sorted(
            (Score(name, counts) for name, counts in by_type.items()),
            key=lambda score: (-score.total, score.label),
        ),
        weeks=[
            (week, Score(f"week of {week:%Y-%m-%d}", per_week.get(week, {})))
            for week in _weeks(start, end)
        ],
        recent=recent,
    )

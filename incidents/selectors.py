"""Read-side queries for the dashboard: the list, its summary, filter choices, one incident.

Everything here is written for a table of a million incidents:

- The list is paginated by keyset (the sort key of the last row shown), never `COUNT(*)` and
  `OFFSET`: every page costs one index range scan, however deep. Its queries use the
  `(filter_column, created_at)` and `created_at DESC` indexes (see `Incident.Meta.indexes`).
- The number of matching rows is counted only up to `COUNT_CAP` and shown as "more than 1,000"
  beyond; a page says its position in that count ("51–100 of more than 1,000").
- Summary counts and the chart cover one time window (the filter's range on fault time or
  received time, or the last
  `DEFAULT_WINDOW_DAYS` days), are computed in one GROUP BY, and are cached for
  `SUMMARY_CACHE_SECONDS`; the page says which window and when they were computed.
- Filter choices are DISTINCTs over the much smaller `fault_events` table, cached for
  `CHOICES_CACHE_SECONDS`.

A list request therefore makes at most: the page (1; one per severity or status, at most 5, when
sorted by those), the capped count (1), the summary (1 when not cached) and the choices (1 when
not cached), besides the session and the user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import cast

from django.core.cache import cache
from django.db.models import CharField, Count, IntegerField, Prefetch, Q, QuerySet, Value
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from incidents.choices import (
    SEVERITY_COLOURS,
    SEVERITY_RANK,
    STATUS_COLOURS,
    Severity,
    Status,
)
from incidents.models import (
    AgentExecution,
    AgentHealth,
    FaultEvent,
    Incident,
    IncidentActivity,
    Silence,
    TriageReport,
)
from incidents.notifications import breaker

PAGE_SIZE = 50
# Counting is the list's one cost that grows with the matches (a heap visit per row for most
# filters): measured at 300,000 incidents, 10,000 matches took 100-200 ms, 1,000 take 10-20 ms.
COUNT_CAP = 1_000
DEFAULT_WINDOW_DAYS = 14
MAX_CHART_DAYS = 92
SUMMARY_CACHE_SECONDS = 30
CHOICES_CACHE_SECONDS = 300
RECURRENCE_LIMIT = 20

# The list never loads `context` (fault context and logs: the widest column).
LIST_FIELDS = (
    "incident_id",
    "fault_id",
    "status",
    "created_at",
    "started_at",
    "completed_at",
    "exit_code",
    "cluster",
    "resource_kind",
    "resource_name",
    "resource_namespace",
    "fault_type",
    "severity",
    "failure_reason",
    "timestamp",
    "oncall_state",
    "occurrences",
    "last_seen_at",
)

STATUS_RANK = {status: rank for rank, status in enumerate(Status.values)}


# --- the list ---------------------------------------------------------------------------------


def incident_list_queryset() -> QuerySet[Incident]:
    """Every incident, only the columns the list shows; filters and order are applied later."""
    return Incident.objects.only(*LIST_FIELDS)


@dataclass(frozen=True)
class SortKey:
    """One column of a sort: a model field or an annotation, and its direction."""

    name: str
    descending: bool


def _order(queryset: QuerySet[Incident], keys: Sequence[SortKey], *, reverse: bool):
    return queryset.order_by(
        *[("-" if key.descending != reverse else "") + key.name for key in keys]
    )


@dataclass(frozen=True)
class Partition:
    """A sort led by a small fixed vocabulary (severity, status): `alias` holds the value's rank.

    Such a sort is read one value at a time (`column = value ORDER BY created_at`), each an index
    range scan on `(column, created_at)`, instead of sorting every row by a CASE expression.
    """

    alias: str
    column: str
    ranks: dict[str, int]


@dataclass(frozen=True)
class Sort:
    """A total order over incidents: the last key is always the primary key (a tie-breaker)."""

    label: str
    keys: tuple[SortKey, ...]
    partition: Partition | None = None  # when set, keys[0] is its rank

    def order(self, queryset: QuerySet[Incident], *, reverse: bool = False) -> QuerySet[Incident]:
        """`queryset` in this order (or reversed); for an unpartitioned sort only."""
        if self.partition is not None:
            raise TypeError(f"{self.label!r} is read one {self.partition.column} at a time")
        return _order(queryset, self.keys, reverse=reverse)

    def fetch(
        self,
        queryset: QuerySet[Incident],
        values: Sequence[object] | None,
        *,
        reverse: bool,
        limit: int,
    ) -> list[Incident]:
        """Up to `limit` rows strictly after `values` (a cursor's keys; None: from the start),
        in this order or reversed. One query, or one per partition value at most."""
        if self.partition is None:
            ordered = self.order(queryset, reverse=reverse)
            if values:
                ordered = ordered.filter(_beyond(self.keys, values, reverse=reverse))
            return list(ordered[:limit])
        partition, within = self.partition, self.keys[1:]
        descending = self.keys[0].descending != reverse
        rows: list[Incident] = []
        ranked = sorted(partition.ranks.items(), key=lambda item: item[1], reverse=descending)
        for value, rank in ranked:
            part = queryset.filter(**{partition.column: value})
            if values:
                cursor_rank = cast(int, values[0])  # decode_cursor made it the rank
                if (rank > cursor_rank) if descending else (rank < cursor_rank):
                    continue  # wholly before the cursor
                if rank == cursor_rank:
                    part = part.filter(_beyond(within, values[1:], reverse=reverse))
            fetched = list(_order(part, within, reverse=reverse)[: limit - len(rows)])
            for row in fetched:
                setattr(row, partition.alias, rank)
            rows += fetched
            if len(rows) >= limit:
                break
        return rows


_NEWEST = (SortKey("created_at", True), SortKey("incident_id", True))
_SEVERITY = Partition("severity_rank", "severity", SEVERITY_RANK)
_STATUS = Partition("status_rank", "status", STATUS_RANK)

# `sort` parameter -> order. Every order is read through an index: created_at's for the created
# orders, (severity, created_at) and (status, created_at) one value at a time for the others.
SORTS: dict[str, Sort] = {
    "-created": Sort("Newest first", _NEWEST),
    "created": Sort("Oldest first", (SortKey("created_at", False), SortKey("incident_id", False))),
    "severity": Sort("Most severe first", (SortKey("severity_rank", False), *_NEWEST), _SEVERITY),
    "-severity": Sort("Least severe first", (SortKey("severity_rank", True), *_NEWEST), _SEVERITY),
    "status": Sort("Status (lifecycle order)", (SortKey("status_rank", False), *_NEWEST), _STATUS),
    "-status": Sort("Status (reversed)", (SortKey("status_rank", True), *_NEWEST), _STATUS),
    # incidents_last_seen_idx and incidents_occurrences_idx.
    "-last_seen": Sort(
        "Last seen first", (SortKey("last_seen_at", True), SortKey("incident_id", True))
    ),
    "last_seen": Sort(
        "Last seen longest ago", (SortKey("last_seen_at", False), SortKey("incident_id", False))
    ),
    "-occurrences": Sort("Most repeated first", (SortKey("occurrences", True), *_NEWEST)),
    "occurrences": Sort(
        "Least repeated first",
        (
            SortKey("occurrences", False),
            SortKey("created_at", False),
            SortKey("incident_id", False),
        ),
    ),
}
DEFAULT_SORT = "-created"


class InvalidCursor(ValueError):
    """A page link that does not decode for the current sort (edited, truncated, or stale)."""


def encode_cursor(sort: Sort, row: Incident) -> str:
    """An opaque, URL-safe token for the position of `row` in `sort`."""
    values: list[object] = []
    for key in sort.keys:
        value = getattr(row, key.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, uuid.UUID):
            value = value.hex
        values.append(value)
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: Sort, token: str) -> list[object]:
    """The key values in `token`, typed for `sort`'s keys. Raises InvalidCursor."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise InvalidCursor("the page link is not valid") from error
    if not isinstance(values, list) or len(values) != len(sort.keys):
        raise InvalidCursor("the page link does not belong to this sort order")
    typed: list[object] = []
    for key, value in zip(sort.keys, values, strict=True):
        try:
            if key.name in ("created_at", "last_seen_at"):
                moment = datetime.fromisoformat(value)
                if timezone.is_naive(moment):
                    raise ValueError("naive datetime")
                # In UTC here, where an offset that moves it past year 1 or 9999 overflows;
                # SQLite's adapter would convert it mid-query (a 500, where PostgreSQL is 400).
                typed.append(moment.astimezone(UTC))
            elif key.name == "incident_id":
                if not isinstance(value, str):
                    raise TypeError(value)
                typed.append(uuid.UUID(hex=value))
            elif isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**31:
                typed.append(value)  # a rank: small, and within every database's integer
            else:
                raise TypeError(value)
        except (TypeError, ValueError, OverflowError) as error:
            raise InvalidCursor("the page link is not valid") from error
    return typed


def _beyond(keys: Sequence[SortKey], values: Sequence[object], *, reverse: bool) -> Q:
    """Rows strictly after `values` in the order of `keys` (before them when `reverse`).

    The lexicographic comparison (a, b, c) > (x, y, z) written out as OR-ed prefixes. The first
    key is also bounded on its own (`a >= x`) so the database can turn it into an index range.
    """
    condition = Q()
    equal_prefix = Q()
    for key, value in zip(keys, values, strict=True):
        lookup = "lt" if key.descending != reverse else "gt"
        condition |= equal_prefix & Q(**{f"{key.name}__{lookup}": value})
        equal_prefix &= Q(**{key.name: value})
    first = keys[0]
    first_lookup = "lte" if first.descending != reverse else "gte"
    return Q(**{f"{first.name}__{first_lookup}": values[0]}) & condition


@dataclass(frozen=True)
class Page:
    """One page of the list and the cursors of its neighbours (None: there is none)."""

    rows: list[Incident]
    next_cursor: str | None
    previous_cursor: str | None
    is_first: bool
    is_last: bool


def paginate(
    queryset: QuerySet[Incident],
    *,
    sort: Sort,
    after: str | None = None,
    before: str | None = None,
    last: bool = False,
    size: int = PAGE_SIZE,
) -> Page:
    """One page by keyset: the `size` rows after `after`, before `before`, the last page, or the
    first. `size + 1` rows are read (the extra one tells whether there is a further page), in one
    query, or one per severity or status for those sorts.

    Raises InvalidCursor for a token that does not decode for `sort`.
    """
    backwards = bool(before) or last
    token = before or after
    values = decode_cursor(sort, token) if token else None
    fetched = sort.fetch(queryset, values, reverse=backwards, limit=size + 1)
    more = len(fetched) > size
    rows = fetched[:size]
    if backwards:
        rows.reverse()
        # Walking backwards from `before` leaves at least that row after this page.
        is_first, is_last = not more, last
    else:
        is_first, is_last = not after, not more
    return Page(
        rows=rows,
        next_cursor=encode_cursor(sort, rows[-1]) if rows and not is_last else None,
        previous_cursor=encode_cursor(sort, rows[0]) if rows and not is_first else None,
        is_first=is_first,
        is_last=is_last,
    )


@dataclass(frozen=True)
class CappedCount:
    value: int
    capped: bool  # True: there are more than `value` rows

    def __str__(self) -> str:
        # Said the same way wherever a count is shown (the heading, the pager).
        return f"more than {self.value:,}" if self.capped else f"{self.value:,}"

    @property
    def short(self) -> str:
        """Where room is short (a tab title): "99+"."""
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"


def capped_count(queryset: QuerySet[Incident], cap: int | None = None) -> CappedCount:
    """How many rows match, counted up to `cap` (default COUNT_CAP) with a LIMIT inside the
    COUNT: bounded work however many rows match."""
    cap = COUNT_CAP if cap is None else cap
    counted = queryset.order_by()[: cap + 1].count()
    return CappedCount(value=min(counted, cap), capped=counted > cap)


def _sort_values(sort: Sort, row: Incident) -> list[object]:
    return [getattr(row, key.name) for key in sort.keys]


def _before(sort: Sort, values: Sequence[object]) -> Q:
    """Rows strictly before `values` in `sort` (for partitioned sorts: the earlier partitions,
    and the rows before within the same one)."""
    if sort.partition is None:
        return _beyond(sort.keys, values, reverse=True)
    partition, rank = sort.partition, cast(int, values[0])  # a partition's first key is its rank
    descending = sort.keys[0].descending
    earlier = [
        value
        for value, other in partition.ranks.items()
        if (other > rank if descending else other < rank)
    ]
    current = [value for value, other in partition.ranks.items() if other == rank]
    return Q(**{f"{partition.column}__in": earlier}) | (
        Q(**{f"{partition.column}__in": current}) & _beyond(sort.keys[1:], values[1:], reverse=True)
    )


@dataclass(frozen=True)
class Position:
    """Where a page is in the list: "51–100 of more than 1,000, newest first"."""

    first: int | None  # 1-based number of the page's first row; None: beyond the count's bound
    shown: int
    total: CappedCount
    sort_label: str
    is_last: bool

    def __str__(self) -> str:
        if self.shown == 0:
            return f"none of {self.total}, {self.sort_label}"
        if self.first is not None:
            last = self.first + self.shown - 1
            return f"{self.first:,}–{last:,} of {self.total}, {self.sort_label}"
        if self.is_last:
            return f"the last {self.shown:,} of {self.total}, {self.sort_label}"
        return f"{self.shown:,} rows after the first {self.total.value:,}, {self.sort_label}"


def page_position(
    queryset: QuerySet[Incident], *, sort: Sort, page: Page, total: CappedCount
) -> Position:
    """The position of `page` among `total` rows. A middle page counts the rows before it (up to
    the count's bound: one bounded query); the first and an exactly counted last page need none."""
    shown = len(page.rows)
    unknown = Position(
        first=None, shown=shown, total=total, sort_label=sort.label.lower(), is_last=page.is_last
    )
    if not shown or page.is_first:
        return replace(unknown, first=1)
    if page.is_last and not total.capped:
        return replace(unknown, first=total.value - shown + 1)
    before = capped_count(
        queryset.filter(_before(sort, _sort_values(sort, page.rows[0]))), cap=total.value
    )
    return unknown if before.capped else replace(unknown, first=before.value + 1)


# --- the summary: counts and chart over one window ------------------------------------------


@dataclass(frozen=True)
class Window:
    """The range the summary and chart cover: [start, end) of `column` (fault or received time)."""

    start: datetime
    end: datetime
    is_default: bool  # no lower bound given: the last DEFAULT_WINDOW_DAYS days
    clamped: bool  # the filter's range was longer than MAX_CHART_DAYS and was cut
    open_ended: bool = False  # no upper bound given: the window ends now
    column: str = "created_at"  # `timestamp` (when the fault occurred) or `created_at`
    relative: str | None = None  # a quick range ("1h"): the start moves with now

    @property
    def cache_text(self) -> str:
        """The window in a cache key: an open end is "now", whenever it is computed, and a quick
        range is its name (its start moves every request)."""
        end = "now" if self.open_ended else self.end.isoformat()
        start = f"now-{self.relative}" if self.relative else self.start.isoformat()
        return f"{self.column}|{start}|{end}"

    @property
    def days(self) -> list[date]:
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def summary_window(
    created_after: datetime | None,
    created_before: datetime | None,
    *,
    now: datetime | None = None,
    column: str = "created_at",
    relative: str | None = None,
) -> Window:
    """The filter's range of `column` (the arguments keep their first name, created_*, but
    bound whichever time `column` is), defaulting to the last DEFAULT_WINDOW_DAYS days (whole UTC
    days, today included) and cut to the last MAX_CHART_DAYS days of the range."""
    now = now or timezone.now()
    end = created_before or now
    # The day of the window's last moment (`end` itself is excluded).
    last = (end - timedelta(microseconds=1)).astimezone(UTC)
    today = last.replace(hour=0, minute=0, second=0, microsecond=0)
    if created_after is None:
        start = today - timedelta(days=DEFAULT_WINDOW_DAYS - 1)
    else:
        start = created_after
    earliest = today - timedelta(days=MAX_CHART_DAYS - 1)
    clamped = start < earliest
    if clamped:
        start = earliest
    start = min(start, end)
    return Window(
        start=start,
        end=end,
        is_default=created_after is None,
        clamped=clamped,
        open_ended=created_before is None,
        column=column,
        relative=relative,
    )


@dataclass(frozen=True)
class Tally:
    """One count in the summary: a value of a column, how to draw it, how many."""

    value: str
    label: str
    colour: str
    count: int


@dataclass(frozen=True)
class DayBar:
    day: date
    by_severity: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_severity.values())


@dataclass(frozen=True)
class Summary:
    """Counts by status, severity and cluster, and incidents per day by severity, in `window`."""

    window: Window
    total: int
    by_status: list[Tally]
    by_severity: list[Tally]
    by_cluster: list[Tally]
    days: list[DayBar]
    computed_at: datetime = field(default_factory=timezone.now)


def _tallies(counts: dict[str, int], choices: Iterable[tuple[str, str]], colours) -> list[Tally]:
    return [
        Tally(value=value, label=label, colour=colours.get(value, "grey"), count=counts[value])
        for value, label in choices
        if counts.get(value)
    ]


def summarize(queryset: QuerySet[Incident], window: Window, *, cache_key: str) -> Summary:
    """The summary of `queryset` (already filtered) within `window`, cached for
    SUMMARY_CACHE_SECONDS under `cache_key` (which must identify the filter).

    One GROUP BY (day, severity, status, cluster) over the window's rows: the window bounds the
    work (about DEFAULT_WINDOW_DAYS / history of the table), not the table's size.
    """
    key = (
        "incidents:summary:"
        + hashlib.sha256(f"{cache_key}|{window.cache_text}".encode()).hexdigest()
    )
    cached = cache.get(key)
    if cached is not None:
        return cached
    rows = (
        queryset.filter(
            **{f"{window.column}__gte": window.start, f"{window.column}__lt": window.end}
        )
        .annotate(day=TruncDate(window.column, tzinfo=UTC))
        .values_list("day", "severity", "status", "cluster")
        .annotate(n=Count("*"))
        .order_by()
    )
    by_status: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    by_cluster: dict[str, int] = {}
    per_day: dict[date, dict[str, int]] = {}
    total = 0
    for day, severity, status, cluster, n in rows:
        total += n
        by_status[status] = by_status.get(status, 0) + n
        by_severity[severity] = by_severity.get(severity, 0) + n
        by_cluster[cluster] = by_cluster.get(cluster, 0) + n
        bucket = per_day.setdefault(day, {})
        bucket[severity] = bucket.get(severity, 0) + n
    clusters = sorted(by_cluster, key=lambda name: (-by_cluster[name], name))
    summary = Summary(
        window=window,
        total=total,
        by_status=_tallies(by_status, Status.choices, STATUS_COLOURS),
        by_severity=_tallies(by_severity, Severity.choices, SEVERITY_COLOURS),
        by_cluster=_tallies(by_cluster, [(name, name) for name in clusters], {}),
        days=[DayBar(day=day, by_severity=per_day.get(day, {})) for day in window.days],
    )
    cache.set(key, summary, SUMMARY_CACHE_SECONDS)
    return summary


# --- filter choices ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterChoices:
    clusters: list[str]
    namespaces: list[str]
    kinds: list[str]
    fault_types: list[str]
    # Per filter parameter, the number of faults with each value (shown beside the choice).
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


CHOICES_CACHE_KEY = "incidents:filter-choices:v2"
_CHOICE_PARAMETERS = {
    "cluster": "cluster",
    "resource_namespace": "namespace",
    "resource_kind": "resource_kind",
    "fault_type": "fault_type",
}


DEGRADED_SINCE = "agents:degraded_since"


def _parse_database_datetime(text: str) -> datetime:
    """A timestamp cast to text by the database: PostgreSQL's carries its offset (the session is
    in UTC), SQLite's is naive UTC."""
    parsed = parse_datetime(text)
    if parsed is None:
        raise ValueError(f"agent_health.degraded_since: not a timestamp: {text!r}")
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def filter_choices() -> FilterChoices:
    """The distinct clusters, namespaces, kinds and fault types, from `fault_events`, each with
    the number of faults that have it.

    Every incident copies these columns from its fault, so the fault table (one row per fault,
    not per occurrence) holds the same values in far fewer rows, each column with its own index
    (a GROUP BY on it reads the index alone). Cached for CHOICES_CACHE_SECONDS: a value that
    appears meanwhile is still accepted by the filters, it is only missing from the choices.
    """
    cached = cache.get(CHOICES_CACHE_KEY)
    if cached is not None:
        return cached

    # One round trip: the four GROUP BYs as a UNION ALL, each row tagged with its column.
    parts: list[QuerySet] = [
        FaultEvent.objects.order_by()
        .values_list(Value(column, output_field=CharField()), column)
        .annotate(n=Count("*"))
        for column in _CHOICE_PARAMETERS
    ]
    # The agents-degraded banner's state rides along (a row only while degraded): every page
    # shows the banner, and a cold list page would otherwise pay a query for it alone. It is
    # cached for the banner's own BANNER_CACHE_SECONDS, not for the choices' time.
    parts.append(
        AgentHealth.objects.filter(pk=1, degraded_since__isnull=False)
        .order_by()
        .values_list(
            Value(DEGRADED_SINCE, output_field=CharField()),
            Cast("degraded_since", CharField()),
            Value(0, output_field=IntegerField()),
        )
    )
    found: dict[str, dict[str, int]] = {column: {} for column in _CHOICE_PARAMETERS}
    degraded_since: datetime | None = None
    for column, value, n in parts[0].union(*parts[1:], all=True):
        if column == DEGRADED_SINCE:
            degraded_since = _parse_database_datetime(value)
        elif value:
            found[column][value] = n
    breaker.remember_degraded_since(degraded_since)
    choices = FilterChoices(
        clusters=sorted(found["cluster"]),
        namespaces=sorted(found["resource_namespace"]),
        kinds=sorted(found["resource_kind"]),
        fault_types=sorted(found["fault_type"]),
        counts={_CHOICE_PARAMETERS[column]: found[column] for column in _CHOICE_PARAMETERS},
    )
    cache.set(CHOICES_CACHE_KEY, choices, CHOICES_CACHE_SECONDS)
    return choices


# --- CSV export -------------------------------------------------------------------------------


def export_rows(
    queryset: QuerySet[Incident], *, limit: int | None = None, chunk_size: int = 2000
) -> Iterator[Incident]:
    """The rows of `queryset` (the first `limit` when given), newest first, streamed from the
    database in chunks (a server-side cursor on PostgreSQL): memory stays flat however many
    rows match."""
    ordered = SORTS[DEFAULT_SORT].order(queryset)
    if limit is not None:
        ordered = ordered[:limit]
    return ordered.iterator(chunk_size=chunk_size)


# --- one incident, one report -----------------------------------------------------------------


def incident_detail_queryset() -> QuerySet[Incident]:
    """Incidents with their fault, the people on them, executions and reports (newest first),
    and the timeline (newest first, with each row's person): a fixed number of queries."""
    return Incident.objects.select_related(
        "fault", "assignee", "acknowledged_by", "closed_by"
    ).prefetch_related(
        Prefetch("executions", queryset=AgentExecution.objects.order_by("-started_at")),
        Prefetch("reports", queryset=TriageReport.objects.order_by("-generated_at")),
        Prefetch(
            "activity",
            queryset=IncidentActivity.objects.select_related("actor").order_by("-at", "-id"),
        ),
    )


def recurrences(incident: Incident, limit: int = RECURRENCE_LIMIT) -> list[Incident]:
    """The other incidents of the same fault, latest occurrence first (index: fault, timestamp)."""
    return list(
        Incident.objects.only(*LIST_FIELDS)
        .filter(fault_id=incident.fault_id)
        .exclude(pk=incident.pk)
        .order_by("-timestamp", "-created_at")[:limit]
    )


# --- silences ---------------------------------------------------------------------------------

SILENCE_LIMIT = 100


def silences(*, active: bool, limit: int = SILENCE_LIMIT) -> list[Silence]:
    """Active silences (ending soonest first) or ended ones (latest first), with their authors."""
    from django.utils import timezone

    now = timezone.now()
    in_force = Q(expired_at__isnull=True, ends_at__gt=now)
    queryset = Silence.objects.select_related("created_by", "expired_by")
    if active:
        return list(queryset.filter(in_force).order_by("ends_at", "pk")[:limit])
    return list(queryset.exclude(in_force).order_by("-ends_at", "-pk")[:limit])


def report_queryset() -> QuerySet[TriageReport]:
    """Reports with the incident they belong to (for the page's heading and links)."""
    return TriageReport.objects.select_related("incident")

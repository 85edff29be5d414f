"""Read-side queries: keyset pages, the capped count, the summary window, cached choices."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from incidents import selectors
from incidents.choices import SEVERITY_RANK, Status
from incidents.models import Incident
from tests.builders import make_fault_event, make_incident

pytestmark = pytest.mark.django_db

BASE = datetime(2025, 12, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()


def make_history(count: int, *, same_time_every: int = 1) -> list[Incident]:
    """`count` incidents a minute apart, several sharing a created_at when same_time_every > 1;
    severities and statuses vary so every sort has ties to break."""
    severities = ["low", "critical", "medium", "high"]
    statuses = [Status.RESOLVED, Status.FAILED, Status.PENDING, Status.AGENT_FAILED]
    return [
        make_incident(
            event=make_fault_event(severity=severities[n % 4]),
            status=statuses[n % 4],
            created_at=BASE - timedelta(minutes=n // same_time_every),
            occurrences=1 + n % 3,
            last_seen_at=BASE - timedelta(minutes=n % 5),
        )
        for n in range(count)
    ]


def walk(sort_key: str, size: int) -> list[Incident]:
    sort = selectors.SORTS[sort_key]
    rows: list[Incident] = []
    page = selectors.paginate(selectors.incident_list_queryset(), sort=sort, size=size)
    assert page.is_first
    rows += page.rows
    while not page.is_last:
        page = selectors.paginate(
            selectors.incident_list_queryset(), sort=sort, after=page.next_cursor, size=size
        )
        rows += page.rows
    return rows


def expected_order(incidents: list[Incident], sort_key: str) -> list:
    newest = sorted(incidents, key=lambda i: (i.created_at, i.pk.hex), reverse=True)
    if sort_key == "-created":
        return [i.pk for i in newest]
    if sort_key == "created":
        return [i.pk for i in reversed(newest)]
    if sort_key.lstrip("-") == "last_seen":
        by_seen = sorted(incidents, key=lambda i: (i.last_seen_at, i.pk.hex))
        return [i.pk for i in (reversed(by_seen) if sort_key.startswith("-") else by_seen)]
    if sort_key == "-occurrences":
        return [i.pk for i in sorted(newest, key=lambda i: -i.occurrences)]
    if sort_key == "occurrences":
        return [i.pk for i in sorted(reversed(newest), key=lambda i: i.occurrences)]
    ranks = {"severity": SEVERITY_RANK, "status": selectors.STATUS_RANK}[sort_key.lstrip("-")]
    column = sort_key.lstrip("-")
    sign = -1 if sort_key.startswith("-") else 1
    return [i.pk for i in sorted(newest, key=lambda i: sign * ranks[getattr(i, column)])]


@pytest.mark.parametrize("sort_key", list(selectors.SORTS))
def test_walking_forward_visits_every_incident_once_in_order(sort_key):
    incidents = make_history(23, same_time_every=3)  # ties on created_at
    rows = walk(sort_key, size=5)
    assert [row.pk for row in rows] == expected_order(incidents, sort_key)


@pytest.mark.parametrize("sort_key", ["-created", "severity"])
def test_walking_backward_from_the_last_page_gives_the_same_pages(sort_key):
    make_history(17, same_time_every=2)
    sort = selectors.SORTS[sort_key]
    forward = walk(sort_key, size=5)
    page = selectors.paginate(selectors.incident_list_queryset(), sort=sort, last=True, size=5)
    assert page.is_last and not page.is_first and page.next_cursor is None
    backward = list(page.rows)
    while not page.is_first:
        page = selectors.paginate(
            selectors.incident_list_queryset(), sort=sort, before=page.previous_cursor, size=5
        )
        backward = page.rows + backward
    assert [row.pk for row in backward] == [row.pk for row in forward]
    # Pages reached backwards are aligned to the end: the first one holds the remainder.
    assert len(page.rows) == 17 % 5


def test_one_page_that_holds_everything_has_no_neighbours():
    make_history(3)
    page = selectors.paginate(selectors.incident_list_queryset(), sort=selectors.SORTS["-created"])
    assert page.is_first and page.is_last
    assert page.next_cursor is None and page.previous_cursor is None


def test_a_page_in_created_order_is_one_query(django_assert_num_queries):
    make_history(12)
    sort = selectors.SORTS["-created"]
    with django_assert_num_queries(1):
        first = selectors.paginate(selectors.incident_list_queryset(), sort=sort, size=5)
    with django_assert_num_queries(1):
        selectors.paginate(
            selectors.incident_list_queryset(), sort=sort, after=first.next_cursor, size=5
        )


def test_a_page_by_severity_reads_one_severity_at_a_time_until_full(django_assert_num_queries):
    critical = [make_incident(event=make_fault_event(severity="critical")) for _ in range(3)]
    make_incident(event=make_fault_event(severity="low"))
    sort = selectors.SORTS["severity"]
    with django_assert_num_queries(1):  # 3 critical fill a page of 2 (+1 to look ahead)
        page = selectors.paginate(selectors.incident_list_queryset(), sort=sort, size=2)
    assert [row.pk for row in page.rows] == [i.pk for i in reversed(critical)][:2]
    with django_assert_num_queries(4):  # the rest: critical, then high, medium, low
        page = selectors.paginate(
            selectors.incident_list_queryset(), sort=sort, after=page.next_cursor, size=2
        )
    assert [row.severity for row in page.rows] == ["critical", "low"]
    assert page.is_last
    after_low = selectors.encode_cursor(sort, page.rows[-1])
    with django_assert_num_queries(1):  # after a low row only low is left to read
        beyond = selectors.paginate(
            selectors.incident_list_queryset(), sort=sort, after=after_low, size=2
        )
    assert beyond.rows == []


@pytest.mark.parametrize(
    "token",
    ["not-base64!", "bm9wZQ", "WzEsMl0", "WyJ4IiwieSJd", "W251bGwsbnVsbF0", "e30"],
)
def test_a_token_that_does_not_decode_is_invalid_cursor(token):
    with pytest.raises(selectors.InvalidCursor):
        selectors.paginate(
            selectors.incident_list_queryset(), sort=selectors.SORTS["-created"], after=token
        )


def test_a_cursor_of_one_sort_is_invalid_for_another():
    make_history(6)
    page = selectors.paginate(
        selectors.incident_list_queryset(), sort=selectors.SORTS["-created"], size=2
    )
    with pytest.raises(selectors.InvalidCursor):
        selectors.paginate(
            selectors.incident_list_queryset(),
            sort=selectors.SORTS["severity"],
            after=page.next_cursor,
        )


def test_capped_count_counts_up_to_the_cap():
    make_history(7)
    queryset = selectors.incident_list_queryset()
    assert str(selectors.capped_count(queryset, cap=10)) == "7"
    capped = selectors.capped_count(queryset, cap=5)
    assert (capped.value, capped.capped, str(capped)) == (5, True, "more than 5")


def test_default_window_is_the_last_fourteen_whole_days():
    now = datetime(2025, 12, 20, 15, 30, tzinfo=UTC)
    window = selectors.summary_window(None, None, now=now)
    assert window.start == datetime(2025, 12, 7, tzinfo=UTC)
    assert window.end == now
    assert len(window.days) == selectors.DEFAULT_WINDOW_DAYS
    assert window.is_default and not window.clamped


def test_a_long_filter_range_is_cut_to_the_chart_maximum():
    after = datetime(2020, 1, 1, tzinfo=UTC)
    before = datetime(2025, 12, 21, tzinfo=UTC)
    window = selectors.summary_window(after, before)
    assert window.clamped and not window.is_default
    assert len(window.days) == selectors.MAX_CHART_DAYS
    assert window.days[-1] == datetime(2025, 12, 20, tzinfo=UTC).date()


def test_summary_counts_by_status_severity_cluster_and_day_within_the_window():
    now = datetime(2025, 12, 20, 15, 30, tzinfo=UTC)
    make_incident(event=make_fault_event(severity="critical", cluster="a"), created_at=now)
    make_incident(
        event=make_fault_event(severity="critical", cluster="b"),
        status="failed",
        created_at=now - timedelta(days=1),
    )
    make_incident(event=make_fault_event(severity="low", cluster="b"), created_at=now)
    make_incident(created_at=now - timedelta(days=30))  # outside the window
    window = selectors.summary_window(None, None, now=now + timedelta(minutes=1))
    summary = selectors.summarize(Incident.objects.all(), window, cache_key="all")
    assert summary.total == 3
    assert [(t.value, t.count, t.colour) for t in summary.by_status] == [
        ("pending", 2, "grey"),
        ("failed", 1, "red"),
    ]
    assert [(t.value, t.count) for t in summary.by_severity] == [("critical", 2), ("low", 1)]
    assert [(t.value, t.count) for t in summary.by_cluster] == [("b", 2), ("a", 1)]
    assert summary.days[-1].by_severity == {"critical": 1, "low": 1}
    assert summary.days[-2].by_severity == {"critical": 1}
    assert sum(bar.total for bar in summary.days) == 3


def test_summary_is_cached_per_filter(django_assert_num_queries):
    make_incident()
    window = selectors.summary_window(None, None)
    with django_assert_num_queries(1):
        selectors.summarize(Incident.objects.all(), window, cache_key="all")
    with django_assert_num_queries(0):
        cached = selectors.summarize(Incident.objects.all(), window, cache_key="all")
    assert cached.total == 1
    with django_assert_num_queries(1):
        other = selectors.summarize(
            Incident.objects.filter(status="failed"), window, cache_key="failed"
        )
    assert other.total == 0


def test_filter_choices_are_distinct_values_of_fault_events_and_cached(
    django_assert_num_queries,
):
    make_fault_event(cluster="b", resource_namespace="payments", save=True)
    make_fault_event(cluster="a", resource_namespace="", resource_kind="Deployment", save=True)
    make_fault_event(cluster="a", resource_namespace="payments", save=True)
    with django_assert_num_queries(1):
        choices = selectors.filter_choices()
    assert choices.clusters == ["a", "b"]
    assert choices.namespaces == ["payments"]  # an empty namespace is no choice
    assert choices.kinds == ["Deployment", "Pod"]
    assert choices.fault_types == ["CrashLoop"]
    with django_assert_num_queries(0):
        assert selectors.filter_choices() == choices


def test_recurrences_are_the_other_incidents_of_the_fault_latest_first():
    event = make_fault_event(save=True)
    older = make_incident(event=event, status="resolved", timestamp=BASE - timedelta(days=2))
    newer = make_incident(event=event, status="failed", timestamp=BASE - timedelta(days=1))
    current = make_incident(event=event, timestamp=BASE)
    make_incident()
    assert [i.pk for i in selectors.recurrences(current)] == [newer.pk, older.pk]


def test_export_rows_stream_every_match_newest_first():
    incidents = make_history(5)
    rows = list(selectors.export_rows(selectors.incident_list_queryset(), chunk_size=2))
    assert [row.pk for row in rows] == [i.pk for i in incidents]

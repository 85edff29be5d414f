"""The incident changelist's date hierarchy: the same periods as Django's, found by index probes."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import QuerySet
from django.urls import reverse

from incidents.admin.dates import IndexedDatesQuerySet, indexed_dates_class, period_starts
from incidents.choices import Status
from incidents.models import AgentExecution, Incident
from tests.builders import make_execution, make_incident

pytestmark = pytest.mark.django_db

CREATED = [
    datetime(2024, 12, 31, 23, 59, tzinfo=UTC),
    datetime(2025, 1, 1, 0, 0, tzinfo=UTC),
    datetime(2025, 3, 15, 12, 0, tzinfo=UTC),
    datetime(2025, 3, 17, 8, 0, tzinfo=UTC),
    datetime(2026, 2, 28, 23, 0, tzinfo=UTC),
]


def indexed(queryset: QuerySet) -> QuerySet:
    clone = queryset.all()
    clone.__class__ = indexed_dates_class(type(queryset))
    return clone


@pytest.fixture
def incidents() -> list[Incident]:
    return [
        make_incident(created_at=created, status=Status.FAILED if n % 2 else Status.PENDING)
        for n, created in enumerate(CREATED)
    ]


@pytest.mark.parametrize("kind", ["year", "month", "day"])
@pytest.mark.parametrize("order", ["ASC", "DESC"])
@pytest.mark.parametrize("status", [None, Status.FAILED])
def test_same_periods_as_django(incidents, kind, order, status):
    queryset = Incident.objects.all()
    if status:
        queryset = queryset.filter(status=status)
    expected = list(queryset.datetimes("created_at", kind, order=order))
    assert indexed(queryset).datetimes("created_at", kind, order=order) == expected
    narrowed = queryset.filter(created_at__year=2025, created_at__month=3)
    expected = list(narrowed.datetimes("created_at", kind, order=order))
    assert indexed(narrowed).datetimes("created_at", kind, order=order) == expected


def test_no_rows_no_periods():
    assert indexed(Incident.objects.all()).datetimes("created_at", "month") == []


def test_one_query_of_probes_after_the_bounds(incidents, django_assert_num_queries):
    with django_assert_num_queries(2):  # MIN/MAX, then one row of probes
        indexed(Incident.objects.all()).datetimes("created_at", "day")


def test_a_column_without_a_leading_index_keeps_djangos_query(django_assert_num_queries):
    make_execution(make_incident())
    queryset = indexed(AgentExecution.objects.all())
    assert isinstance(queryset, IndexedDatesQuerySet)
    with django_assert_num_queries(1):
        periods = list(queryset.datetimes("completed_at", "month"))
    assert periods == list(AgentExecution.objects.datetimes("completed_at", "month"))


def test_period_starts_cross_year_and_month_ends():
    first = datetime(2024, 11, 30, 22, 0, tzinfo=UTC)
    last = datetime(2025, 2, 1, 1, 0, tzinfo=UTC)
    assert [start.month for start in period_starts(first, last, "month")] == [11, 12, 1, 2]
    assert [start.year for start in period_starts(first, last, "year")] == [2024, 2025]
    days = period_starts(first, last, "day")
    assert days[0] == datetime(2024, 11, 30, tzinfo=UTC) and days[-1].date().isoformat() == (
        "2025-02-01"
    )
    assert all(b - a == timedelta(days=1) for a, b in zip(days, days[1:], strict=False))


def test_changelist_hierarchy_links_match_the_data(admin_client, incidents):
    url = reverse("admin:incidents_incident_changelist")
    response = admin_client.get(url)
    page = response.content.decode()
    for year in ("2024", "2025", "2026"):
        assert f"created_at__year={year}" in page
    response = admin_client.get(url, {"created_at__year": 2025})
    page = response.content.decode()
    assert "created_at__month=1" in page and "created_at__month=3" in page
    assert "created_at__month=2&" not in page and 'created_at__month=2"' not in page
    response = admin_client.get(url, {"created_at__year": 2025, "created_at__month": 3})
    page = response.content.decode()
    assert "created_at__day=15" in page and "created_at__day=17" in page
    assert "created_at__day=16" not in page

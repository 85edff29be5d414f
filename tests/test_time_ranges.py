"""Fault time: `occurred_after` / `occurred_before`, quick ranges (`range`) on fault or received
time (`time`), relative bounds (`now-1h`), form errors, and the heading's range description."""

from datetime import UTC, datetime, timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone

from incidents.filters import IncidentFilterSet
from incidents.models import Incident
from incidents.selectors import FilterChoices
from tests.builders import make_fault_event, make_incident

pytestmark = pytest.mark.django_db

NO_CHOICES = FilterChoices(clusters=[], namespaces=[], kinds=[], fault_types=[])
LIST = "/"


def _filterset(query: str) -> IncidentFilterSet:
    return IncidentFilterSet(QueryDict(query), queryset=Incident.objects.all(), choices=NO_CHOICES)


def found(query: str) -> set:
    filterset = _filterset(query)
    assert filterset.is_valid(), filterset.errors
    return set(filterset.qs.values_list("pk", flat=True))


def errors(query: str) -> dict:
    filterset = _filterset(query)
    assert not filterset.is_valid()
    return filterset.errors


def occurred(at: datetime, **overrides) -> Incident:
    """An incident received now for a fault that occurred at `at`."""
    return make_incident(event=make_fault_event(timestamp=at), **overrides)


def test_occurred_bounds_filter_on_the_faults_time_not_on_when_it_was_received():
    on_the_day = occurred(datetime(2025, 12, 20, 15, 30, tzinfo=UTC))
    occurred(datetime(2025, 12, 21, 0, 0, tzinfo=UTC))
    assert found("occurred_after=2025-12-20&occurred_before=2025-12-20") == {on_the_day.pk}
    assert found("created_after=2025-12-20&created_before=2025-12-20") == set()


def test_occurred_bounds_take_datetimes_with_offsets():
    target = occurred(datetime(2025, 12, 20, 15, 30, tzinfo=UTC))
    assert found("occurred_after=2025-12-20T16:30:00%2B01:00") == {target.pk}
    assert found("occurred_before=2025-12-20T16:30:00%2B01:00") == set()


def test_a_quick_range_is_on_fault_time_by_default():
    now = timezone.now()
    recent = occurred(now - timedelta(minutes=10))
    occurred(now - timedelta(hours=2))  # received now, occurred two hours ago
    assert found("range=15m") == {recent.pk}
    assert found("range=6h") == {recent.pk, Incident.objects.exclude(pk=recent.pk).get().pk}


def test_received_time_is_one_switch_away():
    now = timezone.now()
    late = occurred(now - timedelta(days=3))  # an old fault, received now
    make_incident(
        event=make_fault_event(timestamp=now - timedelta(days=2)),
        created_at=now - timedelta(days=2),
    )
    assert found("range=1h") == set()
    assert found("range=1h&time=received") == {late.pk}


@pytest.mark.parametrize("key", ["15m", "1h", "6h", "24h", "7d", "30d"])
def test_every_quick_range_is_accepted(key):
    assert _filterset(f"range={key}").is_valid()


def test_custom_range_uses_the_dates():
    target = occurred(datetime(2025, 12, 20, 15, 30, tzinfo=UTC))
    assert found("range=custom&occurred_after=2025-12-20") == {target.pk}


def test_relative_bounds_are_moments_before_now():
    now = timezone.now()
    recent = occurred(now - timedelta(minutes=30))
    occurred(now - timedelta(hours=3))
    assert found("occurred_after=now-1h") == {recent.pk}
    assert found("occurred_after=NOW-2d&occurred_before=now-1h") == {
        Incident.objects.exclude(pk=recent.pk).get().pk
    }


@pytest.mark.parametrize("value", ["now-1y", "now+1h", "yesterday", "now-"])
def test_an_unsupported_relative_bound_is_a_form_error_naming_the_forms(value):
    message = errors(f"occurred_after={value}")["occurred_after"][0]
    assert "now-1h" in message


def test_a_reversed_range_is_a_form_error():
    message = errors("occurred_after=2025-12-21&occurred_before=2025-12-20")["occurred_before"]
    assert "must be later than" in message[0]
    assert "created_before" in errors("created_after=2025-12-21&created_before=2025-12-20")


def test_a_quick_range_and_a_from_date_of_the_same_time_conflict():
    assert "range" in errors("range=1h&occurred_after=2025-12-20")
    assert _filterset("range=1h&created_after=2025-12-20").is_valid()  # other basis: both apply


def test_an_unknown_range_or_basis_is_a_form_error():
    assert "range" in errors("range=2h")
    assert "time" in errors("time=yesterday")


@pytest.mark.parametrize(
    ("query", "description"),
    [
        ("", "fault time: all time"),
        ("range=1h", "fault time: last hour"),
        ("range=7d&time=received", "received: last 7 days"),
        ("occurred_after=2025-12-20", "fault time: since 2025-12-20"),
        (
            "created_after=2025-12-20&created_before=2025-12-20",
            "received: 2025-12-20 to 2025-12-21",
        ),
        ("occurred_before=2025-12-20T15:30:00Z", "fault time: before 2025-12-20 15:30:00 UTC"),
    ],
)
def test_the_range_is_described_truthfully(query, description):
    filterset = _filterset(query)
    assert filterset.is_valid(), filterset.errors
    assert filterset.time_range().description == description


def test_the_list_and_its_summary_use_the_same_time(admin_client):
    now = timezone.now()
    occurred(now - timedelta(days=20))  # received now, occurred 20 days ago
    response = admin_client.get(LIST, {"oncall": "open", "range": "7d"})
    assert response.status_code == 200
    assert response.context["range_description"] == "fault time: last 7 days"
    assert response.context["summary"].window.column == "timestamp"
    assert response.context["summary"].total == 0 and not response.context["page"].rows
    received = admin_client.get(LIST, {"oncall": "open", "range": "7d", "time": "received"})
    assert received.context["summary"].window.column == "created_at"
    assert received.context["summary"].total == 1 and len(received.context["page"].rows) == 1


def test_the_chart_counts_faults_on_the_day_they_occurred(admin_client):
    occurred(datetime(2025, 12, 20, 15, 30, tzinfo=UTC))
    response = admin_client.get(
        LIST, {"oncall": "open", "occurred_after": "2025-12-19", "occurred_before": "2025-12-21"}
    )
    bars = {bar.day.isoformat(): bar.total for bar in response.context["summary"].days}
    assert bars == {"2025-12-19": 0, "2025-12-20": 1, "2025-12-21": 0}


def test_a_bad_time_answers_with_the_forms_errors_not_an_error_page(admin_client):
    response = admin_client.get(LIST, {"occurred_after": "now-1fortnight"})
    assert response.status_code == 400
    assert b'data-testid="filter-errors"' in response.content
    assert b"now-1h" in response.content

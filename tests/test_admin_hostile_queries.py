"""Red-team F6 (admin side) and F8: stored dates at the ends of time and hostile query strings.

A fault dated year 1 or 9999 is inserted directly (ingestion's own range check is not what is
tested here): no admin list, search, date hierarchy level or change page may 500 on it. A staff
user's query string may only use the filters the admin offers; anything else, or a value that
cannot be a filter, is a filter error (redirect to `?e=1` with a message), never a 500 or a scan.
"""

from datetime import UTC, datetime

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.builders import make_execution, make_fault_event, make_incident, make_report

pytestmark = pytest.mark.django_db

FIRST = datetime(1, 1, 1, 0, 0, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
HIERARCHIES = {
    "incident": "created_at",
    "faultevent": "timestamp",
    "agentexecution": "started_at",
    "triagereport": "generated_at",
}


def changelist_url(model_name: str) -> str:
    return reverse(f"admin:incidents_{model_name}_changelist")


def dated_rows(moment: datetime) -> dict[str, object]:
    """A fault, its incident, an execution and a report, every date at `moment`."""
    event = make_fault_event(save=True, timestamp=moment, resource_name="edge-of-time")
    incident = make_incident(event=event, created_at=moment, status="resolved",
                             started_at=moment, completed_at=moment)  # fmt: skip
    execution = make_execution(incident, started_at=moment, completed_at=moment)
    report = make_report(incident, execution, generated_at=moment)
    return {"faultevent": event, "incident": incident, "agentexecution": execution,
            "triagereport": report}  # fmt: skip


@pytest.fixture(params=[FIRST, LAST], ids=["year-1", "year-9999"])
def edge(request) -> tuple[datetime, dict[str, object]]:
    make_incident()  # a row of today beside it: the hierarchy spans 1 or 9999 to now
    return request.param, dated_rows(request.param)


@pytest.mark.parametrize("model_name", HIERARCHIES)
def test_lists_and_search_open_with_a_row_at_the_end_of_time(admin_client, edge, model_name):
    _, rows = edge
    for query in ({}, {"q": "edge-of-time"}, {"q": "zzz"}, {"q": str(rows[model_name].pk)}):
        response = admin_client.get(changelist_url(model_name), query)
        assert response.status_code == 200, query


@pytest.mark.parametrize("model_name", HIERARCHIES)
def test_date_hierarchy_drills_down_to_the_row_at_the_end_of_time(admin_client, edge, model_name):
    moment, rows = edge
    field = HIERARCHIES[model_name]
    levels = [
        {f"{field}__year": moment.year},
        {f"{field}__year": moment.year, f"{field}__month": moment.month},
        {f"{field}__year": moment.year, f"{field}__month": moment.month,
         f"{field}__day": moment.day},
    ]  # fmt: skip
    for query in levels:
        response = admin_client.get(changelist_url(model_name), query)
        assert response.status_code == 200, query
        shown = {obj.pk for obj in response.context["cl"].result_list}
        assert shown == {rows[model_name].pk}, query
    # The top level lists the year of the row among its links.
    response = admin_client.get(changelist_url(model_name))
    assert f"{field}__year={moment.year}" in response.content.decode()


@pytest.mark.parametrize("model_name", HIERARCHIES)
def test_change_page_opens_for_a_row_at_the_end_of_time(admin_client, edge, model_name):
    moment, rows = edge
    url = reverse(f"admin:incidents_{model_name}_change", args=[rows[model_name].pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert f"{moment.year:04d}" in response.content.decode()


def assert_filter_error(response, reason: str) -> None:
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert any(reason in message for message in shown), shown


HOSTILE = [
    ("incident", {"created_at__year": "9999", "created_at__month": "13"}, "not a date"),
    ("incident", {"created_at__year": "99999999999999999999"}, "not a date"),
    ("incident", {"created_at__year": "0"}, "not a date"),
    ("incident", {"created_at__year": "nine"}, "not a date"),
    ("agentexecution", {"started_at__year": "2025", "started_at__day": "32"}, "not a date"),
    ("incident", {"failure_reason__regex": "["}, "failure_reason__regex is not one of"),
    ("agentexecution", {"error_message__regex": "("}, "error_message__regex is not one of"),
    ("incident", {"context__icontains": "zzzz"}, "context__icontains is not one of"),
    ("faultevent", {"context__icontains": "zzzz"}, "context__icontains is not one of"),
    ("incident", {"timestamp__year": "9999"}, "timestamp__year is not one of"),
    ("incident", {"created_at__gte": "0001-01-01T00:00:00+14:00"}, "created_at__gte is not one"),
    ("triagereport", {"report_markdown__icontains": "x"}, "report_markdown__icontains is not"),
    ("agentexecution", {"incident__context__icontains": "x"}, "incident__context__icontains"),
    ("incident", {"cluster": "a\x00b"}, "NUL character"),
]


@pytest.mark.parametrize(("model_name", "query", "reason"), HOSTILE)
def test_hostile_query_string_is_a_filter_error(admin_client, model_name, query, reason):
    dated_rows(LAST)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(changelist_url(model_name), query)
    assert_filter_error(response, reason)
    # Refused before any query of the listed tables: no scan, whatever the parameter.
    listed = [q["sql"] for q in queries.captured_queries if '"incidents' in q["sql"]]
    assert not listed, listed


@pytest.mark.parametrize("model_name", HIERARCHIES)
def test_year_9999_of_the_date_hierarchy_is_no_error(admin_client, model_name):
    field = HIERARCHIES[model_name]
    year, month, day = f"{field}__year", f"{field}__month", f"{field}__day"
    for query in (
        {year: "9999"},
        {year: "9999", month: "12"},
        {year: "9999", month: "12", day: "31"},
    ):
        response = admin_client.get(changelist_url(model_name), query)
        assert response.status_code == 200, query
        assert list(response.context["cl"].result_list) == []


def test_offered_filters_are_still_accepted(admin_client):
    wanted = make_incident(status="failed")
    make_incident(status="pending")
    response = admin_client.get(changelist_url("incident"), {"status__exact": "failed"})
    assert response.status_code == 200
    assert [obj.pk for obj in response.context["cl"].result_list] == [wanted.pk]
    response = admin_client.get(changelist_url("agentexecution"), {"outcome": "failed"})
    assert response.status_code == 200

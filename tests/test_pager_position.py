"""The pager says where the page is ("51–100 of 120, newest first"), in every sort, and beyond
the count's bound says so in the same words as the heading ("more than N")."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents import selectors
from tests.builders import make_fault_event, make_incident

pytestmark = pytest.mark.django_db

LIST = "/"


@pytest.fixture
def history():
    now = timezone.now()
    severities = ["critical", "high", "medium", "low"]
    return [
        make_incident(
            event=make_fault_event(severity=severities[n % 4]),
            created_at=now - timedelta(minutes=n),
        )
        for n in range(120)
    ]


@pytest.mark.parametrize("sort", ["", "severity", "status", "created"])
def test_each_page_says_where_it_is(admin_client, history, sort):
    query = {"oncall": "open", **({"sort": sort} if sort else {})}
    label = selectors.SORTS[sort or selectors.DEFAULT_SORT].label.lower()
    first = admin_client.get(LIST, query)
    assert str(first.context["position"]) == f"1–50 of 120, {label}"
    second = admin_client.get(LIST, {**query, "after": first.context["page"].next_cursor})
    assert str(second.context["position"]) == f"51–100 of 120, {label}"
    assert f"51–100 of 120, {label}" in second.content.decode()
    third = admin_client.get(LIST, {**query, "after": second.context["page"].next_cursor})
    assert str(third.context["position"]) == f"101–120 of 120, {label}"
    last = admin_client.get(LIST, {**query, "last": "1"})
    assert [row.pk for row in last.context["page"].rows] == [
        row.pk for row in third.context["page"].rows
    ]


def test_beyond_the_bound_the_count_and_the_position_say_more_than(
    admin_client, history, monkeypatch
):
    monkeypatch.setattr(selectors, "COUNT_CAP", 60)
    first = admin_client.get(LIST, {"oncall": "open"})
    assert str(first.context["count"]) == "more than 60"
    assert str(first.context["position"]) == "1–50 of more than 60, newest first"
    second = admin_client.get(LIST, {"oncall": "open", "after": first.context["page"].next_cursor})
    assert str(second.context["position"]) == "51–100 of more than 60, newest first"
    third = admin_client.get(LIST, {"oncall": "open", "after": second.context["page"].next_cursor})
    assert str(third.context["position"]) == "the last 20 of more than 60, newest first"
    monkeypatch.setattr(selectors, "COUNT_CAP", 40)
    middle = admin_client.get(LIST, {"oncall": "open", "after": first.context["page"].next_cursor})
    assert str(middle.context["position"]) == "50 rows after the first 40, newest first"
    last = admin_client.get(LIST, {"oncall": "open", "last": "1"})
    assert len(last.context["page"].rows) == 50  # unknown total: the last full page
    assert str(last.context["position"]) == "the last 50 of more than 40, newest first"

"""Red-team F10: a forged page cursor is a 400 (or an empty page), never a 500, on both databases.

The attacker edits the base64 JSON behind `after=` / `before=`: out-of-range dates once shifted
to UTC, wrong types, huge numbers, nested values. SQLite used to 500 on the dates that overflow.
"""

import base64
import json

import pytest
from django.urls import reverse

from incidents.selectors import SORTS
from tests.builders import make_incident

pytestmark = pytest.mark.django_db

LIST = reverse("incidents:list")
UUID_HEX = "0" * 32


def token(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


DATES = [
    "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
    "9999-12-31T23:30:00-01:00",  # after year 9999 in UTC
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00-14:00",
    "2025-13-01T00:00:00+00:00",
    "2025-01-01T00:00:00",  # naive
    "2025-01-01T00:00:00+99:00",
    "",
]
OTHER_VALUES = [None, True, 1.5, [1], {"a": 1}, 10**30, -(10**30), "x" * 400, "NaN"]


def forged_cursors(sort_key: str) -> list[str]:
    """Every shape of forgery for `sort_key`'s keys: each key in turn given each bad value."""
    keys = [key.name for key in SORTS[sort_key].keys]
    good = {"created_at": "2025-01-01T00:00:00+00:00", "incident_id": UUID_HEX}
    base = [good.get(name, 1) for name in keys]
    forged = [token(v) for v in (base[:-1], [*base, 1], {}, "x", 1, None)]
    for index, name in enumerate(keys):
        bad_values = DATES + OTHER_VALUES if name == "created_at" else OTHER_VALUES + DATES[:2]
        for bad in bad_values:
            forged.append(token([*base[:index], bad, *base[index + 1 :]]))
    forged += ["%%%", "====", "e30", "W10", "bnVsbA", "x" * 600]
    return forged


@pytest.mark.parametrize("sort_key", SORTS)
@pytest.mark.parametrize("position", ["after", "before"])
def test_forged_cursor_is_a_400_or_a_page(admin_client, sort_key, position):
    """A cursor that decodes to a real position (year 9999, rank 1) pages from there; anything
    else is a 400 with the form's message. Never a 500."""
    incident = make_incident()
    outcomes = []
    for cursor in forged_cursors(sort_key):
        response = admin_client.get(LIST, {"sort": sort_key, position: cursor})
        outcomes.append(response.status_code)
        assert response.status_code in (200, 400), cursor
        if response.status_code == 200:
            assert {row.pk for row in response.context["page"].rows} <= {incident.pk}, cursor
    assert outcomes.count(400) > outcomes.count(200)


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:30:00-01:00"])
def test_dates_that_leave_datetimes_range_in_utc_are_refused(admin_client, moment):
    make_incident()
    response = admin_client.get(LIST, {"after": token([moment, UUID_HEX])})
    assert response.status_code == 400
    assert "page link is not valid" in response.content.decode()


@pytest.mark.parametrize(
    ("moment", "expected_rows"),
    [("0001-01-01T00:00:00-14:00", 0), ("9999-12-31T23:59:59+00:00", 1)],
)
def test_extreme_but_valid_dates_page_normally(admin_client, moment, expected_rows):
    make_incident()
    response = admin_client.get(LIST, {"after": token([moment, UUID_HEX])})
    assert response.status_code == 200
    assert len(response.context["page"].rows) == expected_rows

"""Red-team F7: /incidents.csv is the whole file or an explicit error before the first byte.

At a million incidents the export outran gunicorn's timeout and arrived cut after a 200. Now a
filter matching more than TRIAGE_EXPORT_MAX_ROWS is refused with 422 and a message before any
CSV is written, and a 200 carries every matching row.
"""

import csv
import io

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from incidents import selectors
from tests.builders import make_fault_event, make_incident

pytestmark = pytest.mark.django_db

EXPORT = reverse("incidents:export")


def csv_rows(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_more_rows_than_the_limit_is_a_422_before_any_csv(admin_client, settings):
    settings.TRIAGE_EXPORT_MAX_ROWS = 3
    for _ in range(4):
        make_incident()
    response = admin_client.get(EXPORT)
    assert response.status_code == 422
    assert not isinstance(response, StreamingHttpResponse)  # nothing was streamed
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "Content-Disposition" not in response
    text = response.content.decode()
    assert "More than 3 incidents match" in text and "Narrow the filter" in text


def test_up_to_the_limit_the_whole_file_arrives(admin_client, settings):
    settings.TRIAGE_EXPORT_MAX_ROWS = 3
    made = {str(make_incident().pk) for _ in range(3)}
    response = admin_client.get(EXPORT)
    assert response.status_code == 200
    assert response["X-Export-Row-Limit"] == "3"
    assert {row["incident_id"] for row in csv_rows(response)} == made


def test_a_narrower_filter_exports_what_the_refusal_asked_for(admin_client, settings):
    settings.TRIAGE_EXPORT_MAX_ROWS = 2
    for _ in range(3):
        make_incident()
    wanted = make_incident(event=make_fault_event(cluster="prod-eu"))
    assert admin_client.get(EXPORT).status_code == 422
    response = admin_client.get(EXPORT, {"cluster": "prod-eu"})
    assert response.status_code == 200
    assert [row["incident_id"] for row in csv_rows(response)] == [str(wanted.pk)]


def test_rows_arriving_after_the_count_never_push_the_file_past_the_limit(
    admin_client, settings, monkeypatch
):
    settings.TRIAGE_EXPORT_MAX_ROWS = 2
    for _ in range(5):
        make_incident()
    # The count saw the table before three more incidents arrived.
    monkeypatch.setattr(
        selectors, "capped_count", lambda queryset, cap: selectors.CappedCount(2, capped=False)
    )
    response = admin_client.get(EXPORT)
    assert response.status_code == 200
    assert len(csv_rows(response)) == 2


def test_the_default_limit_is_well_below_a_spreadsheets_rows(settings):
    assert 0 < settings.TRIAGE_EXPORT_MAX_ROWS <= 1_048_575  # Excel's last row, less the header

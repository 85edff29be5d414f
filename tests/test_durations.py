"""Issue 14 papercut: a run under a second says "<1s", never "ran 0s"."""

from datetime import UTC, datetime, timedelta

import pytest

from incidents.choices import Status
from incidents.templatetags.incident_tags import human_duration, lifecycle
from tests.builders import make_execution, make_incident

START = datetime(2025, 12, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "shown"),
    [
        (timedelta(0), "<1s"),
        (timedelta(milliseconds=400), "<1s"),
        (timedelta(milliseconds=999), "<1s"),
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=61), "1m 01s"),
    ],
)
def test_human_duration(delta, shown):
    assert human_duration(delta) == shown


@pytest.mark.django_db
def test_a_sub_second_run_reads_ran_under_a_second(admin_client):
    incident = make_incident(
        status=Status.RESOLVED,
        created_at=START,
        started_at=START,
        completed_at=START + timedelta(milliseconds=300),
    )
    make_execution(incident, started_at=START, completed_at=START + timedelta(milliseconds=300))
    notes = [step.note for step in lifecycle(incident)]
    assert "ran <1s" in notes
    html = admin_client.get(incident.get_absolute_url()).content.decode()
    assert "ran &lt;1s" in html and "0s<" not in html

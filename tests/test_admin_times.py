"""Issue 14 papercut: the admin shows times to the second with the zone, as the dashboard does."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from tests.builders import make_execution, make_incident

pytestmark = pytest.mark.django_db

CREATED = datetime(2025, 12, 20, 14, 3, 7, tzinfo=UTC)
SHOWN = "2025-12-20 14:03:07 UTC"


def test_changelist_shows_seconds_and_zone(admin_client):
    make_incident(created_at=CREATED)
    html = admin_client.get(reverse("admin:incidents_incident_changelist")).content.decode()
    assert SHOWN in html


def test_read_only_times_on_a_change_page_show_seconds_and_zone(admin_client):
    incident = make_incident(created_at=CREATED)
    execution = make_execution(incident, started_at=CREATED)
    for url in (
        reverse("admin:incidents_incident_change", args=[incident.pk]),
        reverse("admin:incidents_agentexecution_change", args=[execution.pk]),
    ):
        assert SHOWN in admin_client.get(url).content.decode(), url

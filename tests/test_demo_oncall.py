"""The demo's on-call activity: every on-call state, a running silence, counted repeats."""

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Max

from incidents.choices import OnCallState, Status
from incidents.demo_oncall import play_oncall
from incidents.models import Incident, IncidentActivity, Silence
from tests.builders import make_incident

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_the_demo_shows_every_on_call_state_a_silence_and_repeats():
    out = io.StringIO()
    call_command("ingest_events", str(SAMPLES / "events.jsonl"), "--quiet", stdout=out)
    assert Incident.objects.aggregate(most=Max("occurrences"))["most"] > 1  # counted repeats
    # What run_triage leaves: most incidents finished (the worker itself is tested elsewhere).
    for n, pk in enumerate(Incident.objects.values_list("pk", flat=True)):
        status = [Status.RESOLVED, Status.FAILED, Status.RESOLVED][n % 3]
        Incident.objects.filter(pk=pk).update(status=status, completed_at="2025-12-20T16:00:00Z")
    done = play_oncall()
    assert done["closed"] and done["acknowledged"] and done["silenced"] == 1
    states = set(Incident.objects.values_list("oncall_state", flat=True))
    assert states == {OnCallState.OPEN, OnCallState.ACKNOWLEDGED, OnCallState.CLOSED}
    assert set(Incident.objects.exclude(resolution="").values_list("resolution", flat=True)) == {
        "fixed", "false_positive", "wont_fix", "duplicate",
    }  # fmt: skip
    out = io.StringIO()
    call_command("ingest_events", str(SAMPLES / "arriving.jsonl"), "--quiet", stdout=out)
    silenced = int(out.getvalue().split("silenced ")[1].split(",")[0])
    (silence,) = Silence.objects.all()
    assert silence.is_active() and silence.matched == silenced > 0


def test_running_it_again_changes_nothing_done():
    for _ in range(6):
        make_incident(status=Status.RESOLVED)
    play_oncall()
    rows = IncidentActivity.objects.count()
    again = play_oncall()
    assert sum(again.values()) == 0
    assert IncidentActivity.objects.count() == rows
    assert Silence.objects.count() == 1

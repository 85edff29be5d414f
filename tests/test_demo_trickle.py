"""The demo's faults keep arriving: records replayed with fresh timestamps, pending kept up."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command

from incidents.choices import Status
from incidents.demo_trickle import Trickle, fired_now
from incidents.models import Incident
from incidents.store import DjangoStateStore

ARRIVING = Path(__file__).resolve().parents[1] / "samples" / "arriving.jsonl"
NOW = datetime(2026, 11, 30, 3, 0, 7, tzinfo=UTC)


def test_a_replayed_record_changes_only_its_timestamps():
    bare = {"faultId": "abc", "timestamp": "2025-12-20T06:00:22Z", "cluster": "c", "logs": []}
    assert json.loads(fired_now(json.dumps(bare), NOW)) == {
        **bare,
        "timestamp": "2026-11-30T03:00:07Z",
    }
    old = {"cluster": "c", "event": {"timestamp": "2025-12-20T06:01:11Z", "reason": "Failed"}}
    assert json.loads(fired_now(json.dumps(old), NOW))["event"] == {
        "timestamp": "2026-11-30T03:00:07Z",
        "reason": "Failed",
    }
    wrapped = {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"logger": "kubernetes/faults", "data": json.dumps(bare)},
    }
    data = json.loads(json.loads(fired_now(json.dumps(wrapped), NOW))["params"]["data"])
    assert data == {**bare, "timestamp": "2026-11-30T03:00:07Z"}


@pytest.mark.django_db(transaction=True)
def test_the_trickle_keeps_incidents_pending_and_faults_repeat():
    trickle = Trickle.from_file(ARRIVING, keep_pending=3)
    assert trickle.tick(NOW) >= 3
    pending = list(Incident.objects.filter(status=Status.PENDING))
    assert len(pending) == 3
    assert {incident.timestamp for incident in pending} == {NOW}
    # Nothing more while enough are waiting.
    assert trickle.tick(NOW) == 0
    # The worker takes them all: the trickle brings the same faults back, as new incidents.
    store = DjangoStateStore()
    for incident in pending:
        store.update_incident_status(incident.pk, Status.INVESTIGATING)
        store.complete_incident(incident.pk, 0)
    later = NOW.replace(minute=30)
    trickle.position = 0  # the same records again
    assert trickle.tick(later) >= 3
    again = Incident.objects.filter(status=Status.PENDING)
    assert {i.fault_id for i in again} == {i.fault_id for i in pending}
    assert {i.timestamp for i in again} == {later}


@pytest.mark.django_db(transaction=True)
def test_the_command_runs_a_bounded_number_of_checks(capsys):
    call_command("demo_trickle", str(ARRIVING), "--ticks", "1", "--keep-pending", "2")
    assert Incident.objects.filter(status=Status.PENDING).count() == 2
    assert "created" in capsys.readouterr().out

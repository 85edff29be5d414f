"""Retention: purge_history and the store's purge_incidents."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from incidents.models import AgentExecution, FaultEvent, Incident, IncidentActivity, TriageReport
from tests.builders import make_execution, make_fault_event, make_incident, make_report

pytestmark = pytest.mark.django_db


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)


def make_old(status: str = "resolved", *, age: float = 40, **overrides) -> Incident:
    """An old finished incident with its execution and report, closed on call unless told."""
    overrides.setdefault("completed_at", days_ago(age) + timedelta(minutes=5))
    if overrides.setdefault("oncall_state", "closed") == "closed":
        overrides.setdefault("closed_at", days_ago(age) + timedelta(minutes=10))
        overrides.setdefault("resolution", "fixed")
    incident = make_incident(status=status, created_at=days_ago(age), **overrides)
    execution = make_execution(
        incident, started_at=days_ago(age), completed_at=days_ago(age) + timedelta(minutes=2)
    )
    make_report(incident, execution)
    return incident


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_history", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()[-1]


@pytest.mark.parametrize("status", ["pending", "investigating"])
def test_an_open_incident_and_its_fault_survive_any_purge(status):
    old_open = make_incident(status=status, created_at=days_ago(400))
    # A finished occurrence of the same fault, old enough: it goes, the fault stays.
    finished = make_old(event=old_open.fault, age=500)
    purge("--older-than", "1", "--batch-size", "1")
    assert Incident.objects.filter(pk=old_open.pk).exists()
    assert FaultEvent.objects.filter(pk=old_open.fault_id).exists()
    assert not Incident.objects.filter(pk=finished.pk).exists()


def test_purges_old_finished_incidents_with_their_rows_workspaces_and_orphan_faults(
    settings, tmp_path
):
    settings.TRIAGE_WORKSPACE_ROOT = tmp_path
    old = [make_old(status) for status in ("resolved", "failed", "agent_failed")]
    for incident in old:
        (tmp_path / str(incident.pk) / "output").mkdir(parents=True)
    recent = make_old(age=5)
    (tmp_path / str(recent.pk)).mkdir()
    line = purge("--older-than", "30", "--batch-size", "2")
    assert line.startswith(
        "purged 3 incidents, 3 executions, 3 reports, 3 fault events, 3 workspaces in "
    )
    assert list(Incident.objects.all()) == [recent]
    assert AgentExecution.objects.get().incident_id == recent.pk
    assert TriageReport.objects.get().incident_id == recent.pk
    assert list(FaultEvent.objects.values_list("pk", flat=True)) == [recent.fault_id]
    assert [path.name for path in tmp_path.iterdir()] == [str(recent.pk)]


def test_a_requeued_incident_completed_recently_is_kept():
    incident = make_old(age=90, completed_at=days_ago(1))
    purge("--older-than", "30")
    assert Incident.objects.filter(pk=incident.pk).exists()


def test_a_fault_with_a_kept_incident_is_kept():
    fault = make_fault_event(save=True)
    make_old(event=fault, age=60)
    kept = make_old(event=fault, age=2)
    purge("--older-than", "30")
    assert list(Incident.objects.all()) == [kept]
    assert FaultEvent.objects.filter(pk=fault.pk).exists()


def test_dry_run_counts_and_deletes_nothing():
    make_old()
    make_old(status="failed")
    make_incident(status="pending", created_at=days_ago(90))
    line = purge("--older-than", "30", "--dry-run")
    assert line == (
        "would purge 2 incidents, 2 executions, 2 reports, 0 fault events, 0 workspaces"
    )
    assert Incident.objects.count() == 3


def test_retention_days_setting_is_the_default(settings):
    settings.TRIAGE_RETENTION_DAYS = 30
    make_old()
    assert purge().startswith("purged 1 incidents")


@pytest.mark.parametrize(
    "args", [[], ["--older-than", "0"], ["--older-than", "5", "--batch-size", "0"]]
)
def test_usage_errors(settings, args):
    settings.TRIAGE_RETENTION_DAYS = None
    with pytest.raises(CommandError):
        call_command("purge_history", *args, stdout=StringIO())


def test_store_purge_batch_is_bounded(store):
    for _ in range(3):
        make_old()
    first = store.purge_incidents(older_than=days_ago(30), limit=2)
    assert (first.incidents, first.executions, first.reports, first.fault_events) == (2, 2, 2, 2)
    assert len(first.incident_ids) == 2
    assert store.purge_incidents(older_than=days_ago(30), limit=2).incidents == 1
    assert store.purge_incidents(older_than=days_ago(30), limit=2).incidents == 0
    with pytest.raises(ValueError, match="limit"):
        store.purge_incidents(older_than=days_ago(30), limit=0)


@pytest.mark.parametrize("oncall_state", ["open", "acknowledged"])
def test_a_finished_incident_still_open_on_call_survives(oncall_state):
    extra = {"acknowledged_at": days_ago(39)} if oncall_state == "acknowledged" else {}
    kept = make_old(age=400, oncall_state=oncall_state, **extra)
    closed = make_old(age=400)
    line = purge("--older-than", "30")
    assert line.startswith("purged 1 incidents")
    assert list(Incident.objects.all()) == [kept]
    assert not Incident.objects.filter(pk=closed.pk).exists()


def test_purge_deletes_the_timeline_of_purged_incidents(store, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    gone = make_old(oncall_state="open")
    kept = make_old(age=2, oncall_state="open")
    for incident in (gone, kept):
        store.add_incident_note(incident.pk, text="on it", by=alice)
        store.close_incident(incident.pk, by=alice, resolution="fixed")
    Incident.objects.filter(pk=gone.pk).update(closed_at=days_ago(39))
    batch = store.purge_incidents(older_than=days_ago(30), limit=10)
    assert batch.incident_ids == [gone.pk]
    assert not IncidentActivity.objects.filter(incident_id=gone.pk).exists()
    assert IncidentActivity.objects.filter(incident_id=kept.pk).count() == 2


def test_purge_deletes_the_notifications_of_purged_incidents(store):
    from incidents.models import Notification
    from incidents.notifications.channels import create_channel

    hook = create_channel(
        name="hook", kind="webhook", url="https://hooks.example.com/x", secret="s3cr3t"
    )
    gone, kept = make_old(), make_old(age=2)
    for incident in (gone, kept):
        Notification.objects.create(
            channel=hook, event="incident_opened", incident=incident, dedup_key=str(incident.pk)
        )
    assert store.purge_incidents(older_than=days_ago(30), limit=10).incident_ids == [gone.pk]
    assert list(Notification.objects.values_list("incident_id", flat=True)) == [kept.pk]

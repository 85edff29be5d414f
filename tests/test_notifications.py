"""Notifications, the writing side: channels, routing, the outbox rows the store writes with
each change (and only with it), and the agents' circuit breaker."""

import shlex
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents.choices import Status
from incidents.ingest import IngestionService
from incidents.models import (
    AgentHealth,
    Incident,
    Notification,
    NotificationBatch,
    NotificationChannel,
    TriageReport,
)
from incidents.notifications import outbox
from incidents.notifications.channels import create_channel, mask_url, routes
from incidents.notifications.kinds import EventKind
from incidents.store import InvalidTransition
from incidents.worker import Mode, Worker, WorkerConfig
from tests.agents import agent_python, agent_script, reachable_folder
from tests.builders import make_execution, make_fault_event, make_incident

pytestmark = pytest.mark.django_db

SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/abcdefghijklmnopqrstuvwx"


def channel(name="all", **overrides):
    values = {"kind": "webhook", "url": f"https://hooks.example.com/{name}", "secret": "s3cr3t"}
    values.update(overrides)
    return create_channel(name=name, **values)


def fan_out() -> int:
    """Route every waiting batch of opened incidents, as a deliverer does before sending."""
    written = 0
    while outbox.batches_waiting(using="default"):
        written += outbox.fan_out(using="default")
    return written


def rows(**filters) -> list[tuple[str, str, object]]:
    """(channel name, event, incident id) of the outbox rows once routed, sorted."""
    fan_out()
    found = Notification.objects.filter(**filters).select_related("channel")
    return sorted((n.channel.name, n.event, n.incident_id) for n in found)


def payload(fault_id: str, *, timestamp="2025-12-20T15:30:00Z", **overrides) -> dict:
    record = {
        "faultId": fault_id,
        "cluster": "prod-us-east-1",
        "faultType": "CrashLoop",
        "severity": "critical",
        "resource": {"apiVersion": "v1", "kind": "Pod", "name": "api", "namespace": "payments"},
        "timestamp": timestamp,
    }
    record.update(overrides)
    return record


# -- add_channel ----------------------------------------------------------------------------------
def test_add_channel_prints_the_channel_with_url_and_secret_masked(tmp_path, capsys):
    url_file, secret_file = tmp_path / "url", tmp_path / "secret"
    url_file.write_text(SLACK_URL + "\n")
    secret_file.write_text("do-not-print-me\n")
    call_command(
        "add_channel", "sre", "--kind", "webhook", "--url-file", str(url_file),
        "--secret-file", str(secret_file), "--min-severity", "high",
        "--cluster", "prod-b", "prod-a", "--events", "incident_opened", "report_ready",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert SLACK_URL not in out and "/services/" not in out and "do-not-print-me" not in out
    assert mask_url(SLACK_URL) in out and "set (15 characters)" in out
    assert "clusters: prod-a, prod-b" in out and "events: incident_opened, report_ready" in out
    stored = NotificationChannel.objects.get(name="sre")
    assert (stored.url, stored.secret) == (SLACK_URL, "do-not-print-me")
    assert stored.min_severity == "high"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "webhook", "--url", "https://x.example/h"], "secret: a webhook needs a secret"),
        (["--kind", "slack", "--url", "ftp://x.example/h"], "url: must be an http"),
        (["--kind", "slack", "--url", "not a url"], "url: must be an http"),
        (["--kind", "slack", "--url-file", "/nonexistent/url"], "--url-file /nonexistent/url"),
        (["--kind", "slack", "--url", "https://x.example", "--events", "nope"], "invalid choice"),
        (["--kind", "email", "--url", "https://x.example"], "invalid choice"),
    ],
)
def test_add_channel_refuses_bad_channels_naming_the_field(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("add_channel", "bad", *args)
    assert not NotificationChannel.objects.exists()


def test_a_channel_name_is_unique():
    channel("sre")
    with pytest.raises(CommandError, match="name"):
        call_command("add_channel", "sre", "--kind", "slack", "--url", SLACK_URL)


# -- routing --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings_", "event", "severity", "cluster", "routed"),
    [
        ({}, "incident_opened", "low", "any", True),
        ({"min_severity": "high"}, "incident_opened", "critical", "c", True),
        ({"min_severity": "high"}, "incident_opened", "high", "c", True),
        ({"min_severity": "high"}, "incident_opened", "medium", "c", False),
        ({"clusters": ["prod"]}, "report_ready", "low", "prod", True),
        ({"clusters": ["prod"]}, "report_ready", "low", "staging", False),
        ({"events": ["report_ready"]}, "incident_opened", "critical", "c", False),
        ({"events": ["report_ready"]}, "report_ready", "critical", "c", True),
        # The agent system has no severity or cluster: only the event list applies.
        ({"min_severity": "critical", "clusters": ["x"]}, "agents_degraded", None, None, True),
        ({"events": ["incident_opened"]}, "agents_recovered", None, None, False),
        ({"enabled": False}, "incident_opened", "critical", "c", False),
    ],
)
def test_routing(settings_, event, severity, cluster, routed):
    assert routes(channel(**settings_), event, severity=severity, cluster=cluster) is routed


# -- the outbox rows the store and ingestion write ------------------------------------------------
def test_a_new_incident_is_announced_to_the_channels_it_routes_to(store):
    channel("all")
    channel("critical-only", min_severity="critical")
    channel("staging", clusters=["staging"])
    channel("reports", events=["report_ready"])
    medium = store.create_incident(make_fault_event(severity="medium"))
    critical = store.create_incident(make_fault_event(severity="critical"))
    assert rows() == sorted(
        [
            ("all", "incident_opened", medium.pk),
            ("all", "incident_opened", critical.pk),
            ("critical-only", "incident_opened", critical.pk),
        ]
    )


def test_no_row_without_the_change_and_no_change_without_its_row(store):
    channel("all")
    event = make_fault_event()
    store.create_incident(event)
    with pytest.raises(InvalidTransition):  # the fault already has an open incident
        store.create_incident(make_fault_event(fault_id=event.fault_id))
    assert NotificationBatch.objects.count() == 1
    with pytest.raises(RuntimeError), transaction.atomic():
        store.create_incident(make_fault_event())
        raise RuntimeError("the caller's transaction fails after the store call")
    assert NotificationBatch.objects.count() == Incident.objects.count() == 1
    assert len(rows()) == 1 and not NotificationBatch.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_outbox_refuses_writes_outside_a_transaction():
    incident = make_incident()
    channel("all")
    with pytest.raises(outbox.OutsideTransaction):
        outbox.enqueue(EventKind.ACKNOWLEDGED, incident, by="alice")
    with transaction.atomic():
        assert outbox.enqueue(EventKind.ACKNOWLEDGED, incident, by="alice") == 1
    (row,) = Notification.objects.all()
    assert row.detail == {"by": "alice"}


def test_ingestion_announces_each_created_incident_once_and_coalesced_faults_not_again():
    channel("all")
    channel("critical-only", min_severity="critical")
    service = IngestionService(batch_size=10)
    for n in range(3):
        service.add(payload(f"f{n}", severity="warning" if n else "critical"))
    service.add(payload("f0", timestamp="2025-12-20T15:31:00Z"))  # fires again while open
    service.add(payload("f0"))  # a replay
    service.flush()
    service.add(payload("f0", timestamp="2025-12-20T15:32:00Z"))  # again, in a later batch
    service.flush()
    assert (service.counts.created, service.counts.coalesced, service.counts.duplicate) == (3, 2, 1)
    opened = rows(event="incident_opened")
    assert [name for name, _, _ in opened].count("all") == 3
    critical = Incident.objects.get(fault_id="f0")
    only_critical = [(name, pk) for name, _, pk in opened if name == "critical-only"]
    assert only_critical == [("critical-only", critical.pk)]


def _flush_queries(service: IngestionService, prefix: str, size: int) -> list[str]:
    for n in range(size):
        service.add(payload(f"{prefix}-{n}"))
    with CaptureQueriesContext(connection) as queries:
        service.flush()
    assert service.counts.created == service.counts.received
    return [query["sql"] for query in queries.captured_queries]


def test_ingestion_adds_one_channel_query_and_one_insert_per_batch_whatever_its_size():
    service = IngestionService(batch_size=1000)
    without = [_flush_queries(service, f"quiet{size}", size) for size in (1, 50)]
    assert len(without[0]) == len(without[1])
    channel("all")
    with_channel = [_flush_queries(service, f"loud{size}", size) for size in (1, 50)]
    assert len(with_channel[0]) == len(with_channel[1]) == len(without[0]) + 1
    added = [sql for sql in with_channel[1] if "notification" in sql]
    assert len(added) == 2
    assert "notification_channels" in added[0]
    assert added[1].startswith('INSERT INTO "notification_batches"')  # one row per batch
    assert len([sql for sql in without[1] if "notification" in sql]) == 1  # the channels only
    assert fan_out() == Notification.objects.count() == 51


def test_fan_out_routes_a_batch_once_and_skips_incidents_gone_meanwhile(store):
    channel("all")
    channel("critical-only", min_severity="critical")
    kept = store.create_incident(make_fault_event(severity="critical"))
    gone = store.create_incident(make_fault_event())
    Incident.objects.filter(pk=gone.pk).delete()
    assert fan_out() == 2
    assert rows() == sorted(
        [("all", "incident_opened", kept.pk), ("critical-only", "incident_opened", kept.pk)]
    )
    assert outbox.fan_out(using="default") == 0  # nothing left to route


def test_a_report_is_announced_once_even_when_recorded_again(store):
    channel("all", events=["report_ready"])
    incident = make_incident(status="investigating")
    report = store.record_triage_report(
        TriageReport(incident=incident, execution=make_execution(incident), report_markdown="# r")
    )
    report.report_markdown = "# corrected"
    report.report_html = ""
    store.record_triage_report(report)
    (row,) = Notification.objects.all()
    assert (row.event, row.incident_id, row.detail) == (
        "report_ready",
        incident.pk,
        {"report_id": str(report.report_id)},
    )


def test_no_channel_no_rows_and_no_incident_no_query(store, django_assert_num_queries):
    store.create_incident(make_fault_event())
    assert not Notification.objects.exists() and not NotificationBatch.objects.exists()
    with transaction.atomic(), django_assert_num_queries(0):
        assert outbox.incidents_opened(None, []) == 0


# -- the circuit breaker --------------------------------------------------------------------------
def agent(*args: str) -> str:
    return shlex.join([agent_python(), str(agent_script("scripted_agent.py")), *args])


@pytest.fixture
def triage():
    """Triage one new incident with the scripted agent; returns the incident, finished."""
    with reachable_folder() as folder:

        def run(*agent_args: str) -> Incident:
            incident = make_incident()
            config = WorkerConfig(agent_command=agent(*agent_args), workspace_root=folder / "ws")
            Worker(config, mode=Mode.ONCE).run()
            incident.refresh_from_db()
            return incident

        yield run


def test_three_failed_runs_degrade_once_and_the_next_success_recovers_once(triage, settings):
    settings.TRIAGE_DEGRADED_AFTER = 3
    channel("all")
    assert triage("--report", "none").status == Status.AGENT_FAILED
    assert triage("--exit", "3").status == Status.FAILED
    assert not Notification.objects.filter(event="agents_degraded").exists()
    triage("--report", "none")
    triage("--report", "none")  # a fourth failure: still one degraded
    assert Notification.objects.filter(event="agent_failed").count() == 4
    (degraded,) = Notification.objects.filter(event="agents_degraded")
    assert degraded.incident_id is None
    assert degraded.detail["failures"] == 3 and degraded.detail["threshold"] == 3
    assert "investigation report missing" in degraded.detail["last_failure_reason"]
    assert AgentHealth.objects.get().degraded_since is not None

    assert triage().status == Status.RESOLVED
    assert triage().status == Status.RESOLVED  # healthy already: nothing more
    (recovered,) = Notification.objects.filter(event="agents_recovered")
    assert recovered.detail["failures"] == 4
    assert recovered.detail["downtime_seconds"] >= 0
    assert recovered.detail["failing_since"] == degraded.detail["failing_since"]
    assert recovered.detail["failing_since"] <= recovered.detail["degraded_since"]
    health = AgentHealth.objects.get()
    assert (health.consecutive_failures, health.degraded_since) == (0, None)


def test_a_success_between_failures_resets_the_count(triage, settings):
    settings.TRIAGE_DEGRADED_AFTER = 2
    channel("all")
    triage("--report", "none")
    triage()
    triage("--report", "none")
    assert not Notification.objects.filter(event__startswith="agents_").exists()
    assert AgentHealth.objects.get().consecutive_failures == 1


def test_completions_by_hand_end_no_run_and_notify_nobody(store, settings):
    settings.TRIAGE_DEGRADED_AFTER = 1
    channel("all")
    pending = make_incident()
    stuck = make_incident(status="investigating")
    make_execution(stuck, started_at=stuck.started_at, completed_at=None)
    store.complete_incident(pending.pk, None, "marked failed in the admin", status="agent_failed")
    store.complete_incident(stuck.pk, None, "marked failed in the admin", status="failed")
    assert not Notification.objects.exclude(event="incident_opened").exists()
    assert not AgentHealth.objects.filter(consecutive_failures__gt=0).exists()


def test_the_dashboard_shows_a_banner_while_degraded(admin_client, settings):
    assert b"agents-degraded" not in admin_client.get("/").content
    AgentHealth.objects.create(consecutive_failures=3, degraded_since=timezone.now())
    from django.core.cache import cache

    cache.clear()
    html = admin_client.get("/").content.decode()
    assert 'data-testid="agents-degraded"' in html and "AI agent system degraded" in html


def test_a_second_agents_degraded_needs_a_recovery_first(store, settings):
    settings.TRIAGE_DEGRADED_AFTER = 1
    channel("all", events=["agents_degraded"])
    for _ in range(2):
        incident = make_incident(status="investigating")
        make_execution(incident, started_at=incident.started_at + timedelta(seconds=1))
        store.complete_incident(incident.pk, 1, "boom", status="failed")
    assert Notification.objects.filter(event="agents_degraded").count() == 1

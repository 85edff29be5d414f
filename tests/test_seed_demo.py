"""seed_demo: the history it writes obeys the store's rules, on SQLite and on PostgreSQL."""

import json
from collections import Counter
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, F, Q

from incidents.choices import OPEN_STATUSES, TERMINAL_STATUSES, Status
from incidents.models import (
    DENORMALIZED_FIELDS,
    AgentExecution,
    FaultEvent,
    Incident,
    TriageReport,
)
from incidents.rendering import render_markdown
from incidents.seeding import (
    FAULT_TYPES,
    HistoryGenerator,
    SeedOptions,
    seed_history,
)
from tests.builders import make_incident

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def seeded() -> None:
    seed_history(SeedOptions(incidents=1500, clusters=5, namespaces=12, days=30, seed=7, now=NOW))


def test_seed_writes_the_requested_incidents_with_their_faults(seeded):
    assert Incident.objects.count() == 1500
    # Every fault written has at least one incident, and faults recur.
    assert not FaultEvent.objects.filter(incidents__isnull=True).exists()
    assert FaultEvent.objects.count() < 1500
    assert Incident.objects.values("cluster").distinct().count() == 5
    assert (
        Incident.objects.exclude(resource_kind="Node")
        .values("resource_namespace")
        .distinct()
        .count()
        <= 12
    )


def test_seed_copies_every_fault_field_onto_its_incidents(seeded):
    mismatched = Q()
    for name in DENORMALIZED_FIELDS:
        if name != "timestamp":  # each occurrence has its own time
            mismatched |= ~Q(**{name: F(f"fault__{name}")})
    assert not Incident.objects.filter(mismatched).exists()


def test_seed_stays_inside_the_window_and_orders_fault_times(seeded):
    oldest = Incident.objects.order_by("created_at").first()
    newest = Incident.objects.order_by("-created_at").first()
    assert (NOW - oldest.created_at).days < 30
    assert newest.created_at <= NOW
    assert not Incident.objects.filter(timestamp__gt=F("created_at")).exists()
    # A fault's timestamp is its newest occurrence.
    latest = Incident.objects.filter(fault=newest.fault).order_by("-timestamp").first()
    assert newest.fault.timestamp == latest.timestamp


def test_seed_statuses_are_skewed_and_open_ones_are_few_and_recent(seeded):
    counts = Counter(Incident.objects.values_list("status", flat=True))
    assert counts[Status.RESOLVED] > 0.7 * 1500
    assert counts[Status.FAILED] and counts[Status.AGENT_FAILED]
    open_count = counts[Status.PENDING] + counts[Status.INVESTIGATING]
    assert 0 < open_count <= 10
    # Open incidents are each fault's newest: at most one per fault (the unique index agrees).
    for incident in Incident.objects.filter(status__in=OPEN_STATUSES):
        assert not incident.fault.incidents.filter(created_at__gt=incident.created_at).exists()


def test_seed_severities_are_skewed(seeded):
    counts = Counter(Incident.objects.values_list("severity", flat=True))
    assert counts["critical"] < counts["high"] < counts["medium"]
    assert counts["critical"] > 0


def test_seed_fault_types_match_resource_kinds(seeded):
    pairs = set(Incident.objects.values_list("fault_type", "resource_kind").distinct())
    assert {fault_type for fault_type, _ in pairs} == set(FAULT_TYPES)
    for fault_type, kind in pairs:
        assert kind in FAULT_TYPES[fault_type][1]
    assert not Incident.objects.filter(resource_kind="Node").exclude(resource_namespace="").exists()


def test_seed_lifecycle_fields_match_each_status(seeded):
    finished = Incident.objects.filter(status__in=TERMINAL_STATUSES)
    assert not finished.filter(Q(completed_at__isnull=True) | Q(started_at__isnull=True)).exists()
    assert not finished.filter(completed_at__lt=F("started_at")).exists()
    assert not Incident.objects.filter(status=Status.RESOLVED).exclude(exit_code=0).exists()
    assert not Incident.objects.filter(status=Status.FAILED, exit_code=0).exists()
    assert not Incident.objects.filter(
        status__in=[Status.FAILED, Status.AGENT_FAILED], failure_reason__isnull=True
    ).exists()
    pending = Incident.objects.filter(status=Status.PENDING)
    assert not pending.filter(started_at__isnull=False).exists()
    assert not AgentExecution.objects.filter(incident__status=Status.PENDING).exists()


def test_seed_executions_and_reports_belong_to_finished_runs(seeded):
    runs = Incident.objects.exclude(status=Status.PENDING).annotate(n=Count("executions"))
    assert not runs.filter(n=0).exists()
    assert runs.filter(n=2).exists()  # a crashed first attempt, then a requeue
    # The incident's completion is its last execution's.
    for incident in Incident.objects.filter(status__in=TERMINAL_STATUSES)[:50]:
        last = incident.executions.order_by("-started_at").first()
        assert last.completed_at == incident.completed_at
        assert last.exit_code == incident.exit_code
    with_report = set(TriageReport.objects.values_list("incident__status", flat=True))
    assert with_report == {Status.RESOLVED, Status.FAILED}
    assert not TriageReport.objects.exclude(execution__incident=F("incident")).exists()
    assert (
        TriageReport.objects.count()
        == Incident.objects.filter(status__in=[Status.RESOLVED, Status.FAILED]).count()
    )


def test_seed_report_html_is_the_rendered_markdown(seeded):
    reports = list(TriageReport.objects.select_related("incident").order_by("?")[:40])
    for report in reports:
        assert report.report_html == render_markdown(report.report_markdown)
        assert report.incident.resource_name in report.report_markdown
        assert report.incident.cluster in report.report_markdown
    assert len({report.report_markdown for report in reports}) == len(reports)


def test_seed_contexts_are_json_with_logs(seeded):
    contexts = list(Incident.objects.values_list("context", flat=True)[:200])
    sizes = [len(context) for context in contexts]
    assert 200 <= sum(sizes) / len(sizes) <= 450
    for context in contexts:
        parsed = json.loads(context)
        assert parsed["context"]
        assert parsed["logs"][0]["container"] and parsed["logs"][0]["sample"]


def test_same_seed_generates_the_same_rows():
    options = SeedOptions(incidents=300, seed=3, now=NOW, batch_size=100)
    first, second = HistoryGenerator(options), HistoryGenerator(options)
    assert list(first.fault_rows()) == list(second.fault_rows())
    assert list(first.chunks()) == list(second.chunks())
    other = HistoryGenerator(SeedOptions(incidents=300, seed=4, now=NOW))
    assert list(other.fault_rows()) != list(first.fault_rows())


def test_generator_chunks_cover_every_incident_once():
    generator = HistoryGenerator(SeedOptions(incidents=250, seed=1, now=NOW, batch_size=100))
    chunks = list(generator.chunks())
    assert [len(incidents) for incidents, _, _ in chunks] == [100, 100, 50]
    ids = [row[0] for incidents, _, _ in chunks for row in incidents]
    assert len(set(ids)) == 250


def test_seed_demo_command_reports_what_it_wrote():
    out = StringIO()
    call_command("seed_demo", "--incidents", "200", "--days", "10", stdout=out)
    assert Incident.objects.count() == 200
    summary = out.getvalue().strip().splitlines()[-1]
    assert summary.startswith("seeded fault_events ")
    assert "incidents 200," in summary
    assert f"agent_executions {AgentExecution.objects.count()}" in summary
    assert f"triage_reports {TriageReport.objects.count()}" in summary


def test_seed_demo_refuses_a_database_with_history():
    existing = make_incident()
    with pytest.raises(CommandError, match="table fault_events already has rows.*--flush"):
        call_command("seed_demo", "--incidents", "10", stdout=StringIO())
    assert list(Incident.objects.all()) == [existing]


def test_seed_demo_flush_replaces_the_history():
    existing = make_incident()
    call_command("seed_demo", "--incidents", "50", "--flush", stdout=StringIO())
    assert Incident.objects.count() == 50
    assert not Incident.objects.filter(pk=existing.pk).exists()


@pytest.mark.parametrize("option", ["--incidents", "--clusters", "--namespaces", "--days"])
def test_seed_demo_rejects_a_count_below_one(option):
    arguments = ["--incidents", "10", option, "0"]
    with pytest.raises(CommandError, match=f"{option} must be at least 1, not 0"):
        call_command("seed_demo", *arguments, stdout=StringIO())
    assert not Incident.objects.exists()


@pytest.mark.postgres
def test_seed_on_postgresql_rebuilds_exactly_the_indexes_it_dropped():
    def indexes() -> set[tuple[str, str, bool]]:
        # (name, definition up to any WHERE, partial?): PostgreSQL prints a rebuilt predicate
        # with different casts, so the predicate is compared by presence only.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
                "('fault_events', 'incidents', 'agent_executions', 'triage_reports')"
            )
            return {
                (name, definition.split(" WHERE ")[0], " WHERE " in definition)
                for name, definition in cursor.fetchall()
            }

    before = indexes()
    assert {"incidents_search_trgm_idx", "incidents_one_open_per_fault"} <= {i[0] for i in before}
    result = seed_history(SeedOptions(incidents=400, seed=2, now=NOW))
    assert indexes() == before
    assert result.rows["incidents"] == 400
    assert result.index_seconds > 0

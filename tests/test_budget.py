"""The daily agent budget: today's recorded spend stops claims until the next UTC day or a
raised budget, with time controlled by the worker's clock; the dashboard says why."""

import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from incidents.budget import budget_state, spend_on, utc_day_bounds
from incidents.choices import Status
from incidents.models import AgentExecution, Incident
from incidents.worker import Mode, Worker, WorkerConfig
from tests.agents import reachable_folder
from tests.builders import make_execution, make_incident

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def spent(amount: str, at: datetime) -> AgentExecution:
    incident = make_incident(status=Status.RESOLVED)
    return make_execution(
        incident, started_at=at - timedelta(minutes=1), completed_at=at, cost_usd=Decimal(amount)
    )


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_spend_is_the_utc_days_costed_runs():
    spent("1.25", NOON)
    spent("0.75", NOON.replace(hour=0, minute=0, second=0))  # the day's first instant
    spent("9", NOON - timedelta(days=1))
    spent("9", NOON.replace(hour=23, minute=59) + timedelta(minutes=1))  # the next day
    no_cost = make_incident(status=Status.RESOLVED)
    make_execution(no_cost, started_at=NOON - timedelta(minutes=1), completed_at=NOON)
    assert spend_on(NOON) == Decimal("2.00")
    # A time given in another zone is the same instant: its UTC day counts.
    assert spend_on(NOON.astimezone(ZoneInfo("Asia/Tokyo"))) == Decimal("2")
    assert utc_day_bounds(NOON) == (NOON.replace(hour=0), NOON.replace(hour=0) + timedelta(days=1))


def test_budget_state_exhausted_at_the_limit_and_none_without_one():
    spent("5", NOON)
    assert budget_state(now=NOON, limit=Decimal("5")).exhausted
    assert not budget_state(now=NOON, limit=Decimal("5.01")).exhausted
    assert not budget_state(now=NOON, limit=None).exhausted
    state = budget_state(now=NOON, limit=Decimal("5"))
    assert state.reason() == (
        "daily agent budget reached: $5.00 spent of $5.00 on 2026-03-10 (UTC); claims resume "
        "at 2026-03-11T00:00:00+00:00 or when TRIAGE_DAILY_BUDGET_USD is raised"
    )


def test_the_spend_is_one_query(django_assert_num_queries):
    spent("1", NOON)
    with django_assert_num_queries(1):
        budget_state(now=NOON, limit=Decimal("3"))


def worker(folder, clock: Clock, budget: str | None, mode=Mode.UNTIL_EMPTY) -> Worker:
    config = WorkerConfig(
        agent_command="stub",
        workspace_root=folder / "workspaces",
        daily_budget=None if budget is None else Decimal(budget),
    )
    return Worker(config, mode=mode, clock=clock)


def test_the_budget_stops_claims_and_they_resume_the_next_utc_day(caplog, monkeypatch):
    monkeypatch.setenv("TRIAGE_STUB_OUTCOME", "resolved")
    spent("10", NOON)
    waiting = make_incident()
    clock = Clock(NOON)
    caplog.set_level(logging.INFO, logger="incidents.worker")
    with reachable_folder() as folder:
        summary = worker(folder, clock, "10").run()
        assert summary.triaged == 0
        assert Incident.objects.get(pk=waiting.pk).status == Status.PENDING
        assert "claims paused: daily agent budget reached: $10.00 spent of $10.00" in (
            summary.line()
        )
        assert not AgentExecution.objects.filter(incident=waiting).exists()

        clock.now = NOON + timedelta(hours=11, minutes=59)  # 23:59 the same day: still paused
        assert worker(folder, clock, "10").run().triaged == 0

        clock.now = NOON + timedelta(hours=12)  # 00:00 UTC the next day
        summary = worker(folder, clock, "10").run()
    assert summary.triaged == 1 and summary.paused == ""
    assert Incident.objects.get(pk=waiting.pk).status == Status.RESOLVED


def test_a_raised_budget_resumes_claims(monkeypatch):
    monkeypatch.setenv("TRIAGE_STUB_OUTCOME", "resolved")
    spent("10", NOON)
    waiting = make_incident()
    with reachable_folder() as folder:
        assert worker(folder, Clock(NOON), "10").run().triaged == 0
        assert worker(folder, Clock(NOON), "25").run().triaged == 1
    assert Incident.objects.get(pk=waiting.pk).status == Status.RESOLVED


def test_no_budget_claims_whatever_was_spent(monkeypatch):
    monkeypatch.setenv("TRIAGE_STUB_OUTCOME", "resolved")
    spent("1000", NOON)
    make_incident()
    with reachable_folder() as folder:
        assert worker(folder, Clock(NOON), None).run().triaged == 1


def test_a_long_running_worker_logs_the_pause_once_and_resumes_at_midnight(caplog, monkeypatch):
    """The forever loop: it keeps polling while paused, says so once, and claims the next day."""
    monkeypatch.setenv("TRIAGE_STUB_OUTCOME", "resolved")
    spent("3", NOON)
    waiting = make_incident()
    clock = Clock(NOON)
    caplog.set_level(logging.INFO)
    with reachable_folder() as folder:
        loop = worker(folder, clock, "3", mode=Mode.FOREVER)
        polls = []

        def wait(seconds: float) -> bool:  # each poll of the paused queue
            polls.append(seconds)
            if len(polls) == 3:
                clock.now = NOON + timedelta(days=1)  # midnight passes between polls
            if Incident.objects.get(pk=waiting.pk).status == Status.RESOLVED:
                loop.stop()
            return loop.stopping

        monkeypatch.setattr(loop._stop, "wait", wait)
        loop.run()
    assert len(polls) >= 3
    paused = [r for r in caplog.records if getattr(r, "step", "") == "budget reached"]
    resumed = [r for r in caplog.records if getattr(r, "step", "") == "budget resumed"]
    assert len([r for r in paused if r.name == "incidents.worker"]) == 1
    assert len(resumed) == 1
    assert Incident.objects.get(pk=waiting.pk).status == Status.RESOLVED


# -- the dashboard ----------------------------------------------------------------------------
def test_the_dashboard_shows_todays_spend_and_no_banner_under_budget(admin_client, settings):
    settings.TRIAGE_DAILY_BUDGET_USD = Decimal("20")
    spent("1.5", datetime.now(UTC))
    html = admin_client.get("/").content.decode()
    assert 'data-testid="spend-today">$1.50</strong> of $20.00 budget' in html
    assert 'data-testid="budget-banner"' not in html


def test_the_dashboard_says_why_agents_are_paused(admin_client, settings):
    settings.TRIAGE_DAILY_BUDGET_USD = Decimal("1")
    spent("1.5", datetime.now(UTC))
    html = admin_client.get("/").content.decode()
    assert 'data-testid="budget-banner"' in html
    assert "Agents paused:</strong> daily agent budget reached: $1.50 spent of $1.00" in html


@pytest.mark.postgres
def test_the_spend_query_reads_the_spend_index():
    """On PostgreSQL, with enough rows that a sequential scan is a real choice, the budget's
    query is a range scan of agent_executions_spend_idx."""
    incident = make_incident(status=Status.RESOLVED)
    rows = [
        AgentExecution(
            incident=incident,
            started_at=NOON - timedelta(hours=n),
            completed_at=NOON - timedelta(hours=n) + timedelta(minutes=1),
            cost_usd=Decimal("0.01") if n % 3 else None,
        )
        for n in range(20_000)
    ]
    AgentExecution.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE agent_executions")
    start, end = utc_day_bounds(NOON)
    queryset = AgentExecution.objects.filter(
        cost_usd__isnull=False, completed_at__gte=start, completed_at__lt=end
    )
    plan = json.loads(queryset.explain(format="json"))[0]["Plan"]
    text = json.dumps(plan)
    assert "agent_executions_spend_idx" in text, text
    assert '"Seq Scan"' not in text, text


# -- the notification ---------------------------------------------------------------------------
def test_a_budget_pause_notifies_agents_degraded_once_per_day(monkeypatch):
    from incidents.models import Notification
    from incidents.notifications.channels import create_channel
    from incidents.notifications.messages import _system_blocks, webhook_body

    create_channel(name="all", kind="webhook", url="https://hooks.example.com/x", secret="s")
    spent("10", NOON)
    make_incident()
    with reachable_folder() as folder:
        for _ in range(2):  # two workers (or runs) see the same pause
            assert worker(folder, Clock(NOON), "10").run().triaged == 0
        worker(folder, Clock(NOON + timedelta(hours=1)), "10").run()
    (row,) = Notification.objects.filter(event="agents_degraded")
    assert row.incident_id is None
    assert row.detail["reason"] == "budget"
    assert (row.detail["spent_usd"], row.detail["budget_usd"]) == ("10.00", "10.00")
    assert row.detail["day"] == "2026-03-10"
    assert row.detail["resumes_at"].startswith("2026-03-11T00:00:00")
    text = json.dumps(_system_blocks(webhook_body(row, "https://triage.example.com")))
    assert "daily budget reached" in text and "$10.00 of the $10.00" in text

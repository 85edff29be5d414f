"""The agents' circuit breaker, and the per-run `agent_failed` event.

A completion ends a *triage run* when the incident was claimed (it has `started_at`) and an
agent execution of that attempt has finished: the worker's pipeline records the execution's end
and the completion in one transaction, and recovering a twice-lost incident closes its
execution first. Completions by hand in the admin end no run and notify nobody.

A run that ends `failed` (the agent exited non-zero) or `agent_failed` (it could not start,
timed out, was killed, wrote no report, or its worker was lost twice) is an agent failure, as
in nightcrier, where any non-zero exit is one. After `TRIAGE_DEGRADED_AFTER` of them in a row,
one `agents_degraded`; the next `resolved` run, one `agents_recovered` with the downtime (first
failure to recovery) and the failures counted. The state is the `agent_health` row, locked while
a completion updates it, so concurrent workers count every run exactly once.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import router
from django.utils import timezone

from incidents.choices import Status
from incidents.models import AgentExecution, AgentHealth, Incident
from incidents.notifications.kinds import EventKind
from incidents.notifications.outbox import enqueue

FAILED_RUN = frozenset({Status.FAILED, Status.AGENT_FAILED})
BANNER_CACHE_KEY = "incidents:agents-degraded-since"
BANNER_CACHE_SECONDS = 15


def ended_a_run(using: str, incident: Incident) -> bool:
    """Whether this completion ends a triage run (see the module docstring). One query."""
    if incident.started_at is None:
        return False
    return (
        AgentExecution.objects.using(using)
        .filter(
            incident_id=incident.pk,
            started_at__gte=incident.started_at,
            completed_at__isnull=False,
        )
        .exists()
    )


def _locked_health(using: str) -> AgentHealth:
    rows = AgentHealth.objects.using(using).select_for_update()
    health = rows.filter(pk=1).first()
    if health is None:  # a fresh database: make the one row, racing workers make it once
        AgentHealth.objects.using(using).bulk_create([AgentHealth(pk=1)], ignore_conflicts=True)
        health = rows.get(pk=1)
    return health


def run_ended(using: str, incident: Incident, *, now: datetime | None = None) -> int:
    """Count a finished run and write what it announces; returns the notification rows offered.

    Call inside the completion's transaction (the store does).
    """
    if incident.status not in FAILED_RUN | {Status.RESOLVED} or not ended_a_run(using, incident):
        return 0
    now = now or timezone.now()
    health = _locked_health(using)
    written = 0
    if incident.status == Status.RESOLVED:
        if not health.consecutive_failures and health.degraded_since is None:
            return 0
        if health.degraded_since is not None:
            written += enqueue(
                EventKind.AGENTS_RECOVERED,
                using=using,
                dedup_key=f"{EventKind.AGENTS_RECOVERED}:{health.degraded_since.isoformat()}",
                failures=health.consecutive_failures,
                failing_since=health.failing_since,
                degraded_since=health.degraded_since,
                recovered_at=now,
                downtime_seconds=round((now - (health.failing_since or now)).total_seconds()),
                incident_id=incident.pk,
            )
        health.consecutive_failures = 0
        health.failing_since = health.degraded_since = None
        health.last_failure_reason = ""
    else:
        # A completion sets completed_at; `now` only stands in for a row that lost it.
        ended = incident.completed_at or now
        written += enqueue(
            EventKind.AGENT_FAILED,
            incident,
            using=using,
            dedup_key=f"{EventKind.AGENT_FAILED}:{incident.pk}:{ended.isoformat()}",
            status=incident.status,
            exit_code=incident.exit_code,
            failure_reason=(incident.failure_reason or "")[:2000],
        )
        health.consecutive_failures += 1
        health.failing_since = health.failing_since or now
        health.last_failure_reason = (incident.failure_reason or "")[:2000]
        threshold = settings.TRIAGE_DEGRADED_AFTER
        if health.degraded_since is None and health.consecutive_failures >= threshold:
            health.degraded_since = now
            written += enqueue(
                EventKind.AGENTS_DEGRADED,
                using=using,
                dedup_key=f"{EventKind.AGENTS_DEGRADED}:{now.isoformat()}",
                failures=health.consecutive_failures,
                threshold=threshold,
                failing_since=health.failing_since,
                last_failure_reason=health.last_failure_reason,
                incident_id=incident.pk,
            )
    health.updated_at = now
    health.save(using=using)
    return written


def degraded_since(using: str | None = None) -> datetime | None:
    """Since when the agents have been degraded (None: healthy), cached for a few seconds so
    the dashboard pays for the query at most once per BANNER_CACHE_SECONDS."""
    cached = cache.get(BANNER_CACHE_KEY)
    if cached is None:
        using = using or router.db_for_read(AgentHealth)
        since = (
            AgentHealth.objects.using(using)
            .filter(pk=1)
            .values_list("degraded_since", flat=True)
            .first()
        )
        cached = remember_degraded_since(since)
    return cached["since"]


def remember_degraded_since(since: datetime | None) -> dict[str, datetime | None]:
    """Cache the banner's state read by another query (the dashboard's filter choices read it
    in their round trip), so the next degraded_since() needs no query of its own."""
    cached = {"since": since}
    cache.set(BANNER_CACHE_KEY, cached, BANNER_CACHE_SECONDS)
    return cached

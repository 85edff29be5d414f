"""Prometheus metrics: process counters, and gauges read from the database at each scrape.

Process counters (`INGESTED`, `AGENT_RUN_SECONDS`) are prometheus_client metrics. Under gunicorn
with several workers, set PROMETHEUS_MULTIPROC_DIR (an empty directory, the same for every
worker) before the server starts: prometheus_client then keeps each process's values in files
there and `/metrics` adds them up (gunicorn.conf.py marks dead workers' files). The long-running
commands serve their own with `--metrics-port` (`serve_metrics`).

Database gauges are computed per scrape by `DatabaseCollector` in a fixed number of queries
(`DATABASE_QUERIES`), each an index scan: see `bench/metrics.py` for timings at 1 M incidents.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import django
from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from incidents.choices import OPEN_STATUSES, OnCallState, Severity, Status
from incidents.models import Incident
from incidents.notifications.kinds import DeliveryStatus
from incidents.notifications.models import AgentHealth, Notification

# --- process counters ----------------------------------------------------------------------

INGESTED = Counter(
    "triage_ingested_records",
    "Fault records ingested, by source (api, mcp) and outcome.",
    ["source", "outcome"],
)
# Agent runs take seconds to the 15-minute timeout; the buckets span that range.
AGENT_RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, float("inf"))
AGENT_RUN_SECONDS = Histogram(
    "triage_agent_run_duration_seconds",
    "Wall time of one agent run, by outcome (the incident's resulting status).",
    ["outcome"],
    buckets=AGENT_RUN_BUCKETS,
)


def count_ingested(source: str, counts) -> None:
    """Add an IngestCounts' outcomes to the ingestion counter (zeros are skipped)."""
    for outcome, value in vars(counts).items():
        if outcome != "received" and value:
            INGESTED.labels(source=source, outcome=outcome).inc(value)


def observe_agent_run(outcome: str, seconds: float) -> None:
    AGENT_RUN_SECONDS.labels(outcome=outcome).observe(max(seconds, 0.0))


# --- per-scrape gauges ---------------------------------------------------------------------

DATABASE_QUERIES = 7
# Finished incidents are counted over a recent window only: a count of the whole table reads
# every index entry (about 0.5 s at 1 M incidents on PostgreSQL, per scrape), while a window's
# cost follows the ingest rate, not the history kept. Rates over longer spans come from the
# counters (`triage_agent_run_duration_seconds_count`) and PromQL.
RECENT_WINDOW = timedelta(hours=24)


def _age(oldest: datetime | None, now: datetime) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest else 0.0


def _by_status_and_severity(queryset) -> dict[tuple[str, str], int]:
    rows = queryset.order_by().values_list("status", "severity").annotate(n=Count("*"))
    return {(status, severity): n for status, severity, n in rows}


def _gauge(name: str, documentation: str, counts: dict, statuses) -> GaugeMetricFamily:
    """One series per status and severity, 0 when there is none: a series never vanishes."""
    family = GaugeMetricFamily(name, documentation, labels=["status", "severity"])
    for status in statuses:
        for severity in Severity.values:
            family.add_metric([status, severity], counts.get((status, severity), 0))
    return family


class DatabaseCollector(Collector):
    """Open incidents (exact, any age) and the last 24 hours' incidents by status and severity,
    the pending queue's depth and the age of its oldest, the longest-running investigation.

    DATABASE_QUERIES queries, each a range of an index: the open statuses' range of
    `incidents_status_created_idx` (the queue: small), the window's range of the covering
    `incidents_created_idx`, and two MIN()s at the start of the open statuses' ranges.
    """

    def collect(self) -> Iterator:
        now = timezone.now()
        open_counts = _by_status_and_severity(Incident.objects.filter(status__in=OPEN_STATUSES))
        yield _gauge(
            "triage_open_incidents",
            "Open incidents (pending or investigating) by status and severity.",
            open_counts,
            [status for status in Status.values if status in OPEN_STATUSES],
        )
        recent = _by_status_and_severity(
            Incident.objects.filter(created_at__gte=now - RECENT_WINDOW)
        )
        yield _gauge(
            "triage_recent_incidents",
            "Incidents created in the last 24 hours, by current triage status and severity.",
            recent,
            Status.values,
        )
        pending = sum(n for (status, _), n in open_counts.items() if status == Status.PENDING)
        yield GaugeMetricFamily(
            "triage_pending_incidents", "Incidents waiting for an agent (queue depth).", pending
        )
        oldest_pending = Incident.objects.filter(status=Status.PENDING).aggregate(
            oldest=Min("created_at")
        )["oldest"]
        yield GaugeMetricFamily(
            "triage_oldest_pending_age_seconds",
            "Age of the oldest pending incident (0 when none is pending).",
            _age(oldest_pending, now),
        )
        oldest_running = Incident.objects.filter(status=Status.INVESTIGATING).aggregate(
            oldest=Min("started_at")
        )["oldest"]
        yield GaugeMetricFamily(
            "triage_oldest_investigating_age_seconds",
            "How long the longest-running investigation has run (0 when none runs).",
            _age(oldest_running, now),
        )
        yield from _oncall_and_delivery_gauges(now)


# Closed incidents are the whole history (not counted: unbounded); open and acknowledged are
# the range of incidents_oncall_created_idx that people still work on.
_ONCALL_COUNTED = (OnCallState.OPEN, OnCallState.ACKNOWLEDGED)


def _oncall_and_delivery_gauges(now: datetime) -> Iterator:
    """Incidents by on-call state (open, acknowledged), the last 24 hours' notification
    deliveries by outcome, and whether the agents are degraded: three queries."""
    rows = (
        Incident.objects.filter(oncall_state__in=_ONCALL_COUNTED)
        .order_by()
        .values_list("oncall_state")
        .annotate(n=Count("*"))
    )
    by_state = dict(rows)
    family = GaugeMetricFamily(
        "triage_oncall_incidents",
        "Incidents that people still work on, by on-call state (open, acknowledged).",
        labels=["state"],
    )
    for state in _ONCALL_COUNTED:
        family.add_metric([state], by_state.get(state, 0))
    yield family
    # The outbox over the recent window (notifications_created_idx): its size follows the event
    # rate, not the history kept, like triage_recent_incidents.
    deliveries = dict(
        Notification.objects.filter(created_at__gte=now - RECENT_WINDOW)
        .order_by()
        .values_list("status")
        .annotate(n=Count("*"))
    )
    family = GaugeMetricFamily(
        "triage_recent_notifications",
        "Notifications created in the last 24 hours, by delivery outcome "
        "(pending, delivered, failed).",
        labels=["status"],
    )
    for status in DeliveryStatus.values:
        family.add_metric([status], deliveries.get(status, 0))
    yield family
    # One row by its primary key; no row yet means no run has failed.
    degraded = AgentHealth.objects.filter(pk=1, degraded_since__isnull=False).exists()
    yield GaugeMetricFamily(
        "triage_agents_degraded",
        "1 while the agents' circuit breaker is open (TRIAGE_DEGRADED_AFTER failed runs in a "
        "row), else 0.",
        int(degraded),
    )


class BuildInfoCollector(Collector):
    def collect(self) -> Iterator:
        info = InfoMetricFamily("triage_build", "Versions of this deployment.")
        info.add_metric(
            [],
            {
                "revision": settings.TRIAGE_BUILD_REVISION,
                "python": platform.python_version(),
                "django": django.get_version(),
            },
        )
        yield info


class IngestCountsCollector(Collector):
    """The live counts of a running ingester (subscribe_mcp) as the ingestion counter."""

    def __init__(self, source: str, counts: Callable[[], object]) -> None:
        self.source = source
        self.counts = counts

    def collect(self) -> Iterator:
        family = CounterMetricFamily(
            "triage_ingested_records",
            "Fault records ingested, by source (api, mcp) and outcome.",
            labels=["source", "outcome"],
        )
        for outcome, value in vars(self.counts()).items():
            if outcome != "received":
                family.add_metric([self.source, outcome], value)
        yield family


def _process_registry() -> CollectorRegistry:
    """This process's counters, or every process's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


class _Forward(Collector):
    """Another registry's families, but those named in `exclude` (reported by another
    collector: one family per name in an exposition)."""

    def __init__(self, registry: CollectorRegistry, exclude: frozenset[str] = frozenset()) -> None:
        self.registry = registry
        self.exclude = exclude

    def collect(self) -> Iterator:
        for family in self.registry.collect():
            if family.name not in self.exclude:
                yield family


def scrape() -> bytes:
    """The text exposition for `/metrics`: process counters, database gauges, build info."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(_process_registry()))
    registry.register(DatabaseCollector())
    registry.register(BuildInfoCollector())
    return generate_latest(registry)


def serve_metrics(listen: tuple[str, int], *extra: Collector) -> None:
    """An HTTP server in a background thread for a long-running command's own metrics, on
    `listen` (address, port), with `extra` collectors beside the process's counters."""
    registry = CollectorRegistry(auto_describe=False)
    replaced = frozenset(family.name for collector in extra for family in collector.collect())
    registry.register(_Forward(_process_registry(), replaced))
    registry.register(BuildInfoCollector())
    for collector in extra:
        registry.register(collector)
    addr, port = listen
    start_http_server(port, addr=addr, registry=registry)


def listen_address(value: str) -> tuple[str, int]:
    """`--metrics-port`'s argument: PORT (on 127.0.0.1) or ADDRESS:PORT; argparse type."""
    addr, _, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = 0
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"expected PORT or ADDRESS:PORT, not {value!r}")
    return (addr.strip("[]") or "127.0.0.1", number)

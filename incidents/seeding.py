"""Realistic synthetic incident history for demos and benchmarks (`manage.py seed_demo`).

The history obeys every rule the store enforces, so pages and the worker treat it like real data:

- each fault event is a resource in a cluster that faults again and again (a few resources fault
  far more often than the rest); its incidents carry a copy of its fields;
- every older incident of a fault is finished; only a fault's newest incident, and only among the
  newest few incidents overall, is open (pending or investigating), so the one-open-incident-per-
  fault index holds;
- finished incidents have `started_at`, `completed_at` and an exit code that matches the status,
  one agent execution (two when a first attempt crashed), and resolved/failed ones a markdown
  report whose `report_html` is exactly what `rendering.render_markdown` makes of it.

- on call, incidents older than a day are closed (mostly fixed), newer ones open or acknowledged;
  the busiest faults' open incidents have counted repeats.

The rows are written by the store's bulk loader (`DjangoStateStore.load_history`: COPY on
PostgreSQL, indexes rebuilt once, one transaction). The same `seed` and `now` give the same rows.
"""

from __future__ import annotations

import html
import json
import random
import time
import uuid
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate

from django.utils import timezone

from incidents.choices import OnCallState, Resolution, Severity, Status
from incidents.models import AgentExecution, FaultEvent, Incident, TriageReport
from incidents.rendering import render_markdown
from incidents.store import DjangoStateStore
from incidents.store_history import DatabaseNotEmpty, flush_history

__all__ = ["DatabaseNotEmpty", "SeedOptions", "SeedResult", "flush_history", "seed_history"]

Row = tuple
Progress = Callable[[str], None]

# fault type -> (weight, the resource kinds it happens to)
FAULT_TYPES: dict[str, tuple[int, tuple[str, ...]]] = {
    "CrashLoop": (30, ("Pod", "Deployment", "StatefulSet", "DaemonSet")),
    "PodCrash": (18, ("Pod",)),
    "OOMKilled": (16, ("Pod", "StatefulSet")),
    "ImagePullBackOff": (12, ("Pod", "Deployment", "DaemonSet")),
    "DeploymentFailure": (10, ("Deployment",)),
    "JobFailure": (9, ("Job",)),
    "NodeUnhealthy": (5, ("Node",)),
}
API_VERSIONS = {
    "Pod": "v1",
    "Node": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
}
# Most faults are noise; a few page someone.
SEVERITY_WEIGHTS = {Severity.CRITICAL: 4, Severity.HIGH: 16, Severity.MEDIUM: 45, Severity.LOW: 35}
# How finished incidents end.
TERMINAL_WEIGHTS = {Status.RESOLVED: 86, Status.FAILED: 9, Status.AGENT_FAILED: 5}
# Share of resolved incidents whose first agent run crashed and was requeued.
RETRIED_SHARE = 0.04

REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "ap-northeast-1")
ENVIRONMENTS = ("prod", "prod", "prod", "staging", "dev")
TEAMS = (
    "payments", "checkout", "catalog", "search", "identity", "billing", "orders", "shipping",
    "inventory", "ledger", "notifications", "analytics", "ml-serving", "gateway", "observability",
    "data-pipeline", "auth", "cart", "pricing", "recommendations",
)  # fmt: skip
APPS = (
    "api", "web", "worker", "scheduler", "consumer", "cron", "grpc", "frontend", "backend",
    "indexer", "exporter", "redis", "postgres", "kafka-connect", "nginx", "envoy", "sidecar",
)  # fmt: skip
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

CONTEXT_TEXT = {
    "CrashLoop": "Back-off restarting failed container {container} in pod {name}",
    "PodCrash": "Container {container} terminated with exit code 1 (Error)",
    "OOMKilled": "Container {container} was OOMKilled: memory limit 512Mi exceeded",
    "ImagePullBackOff": 'Back-off pulling image "registry.internal/{container}:v2.14.3"',
    "DeploymentFailure": "Deployment {name} exceeded its progress deadline (ReplicaSet stalled)",
    "JobFailure": "Job {name} has reached the specified backoff limit",
    "NodeUnhealthy": "Node {name} status is NotReady: kubelet stopped posting node status",
}
LOG_SAMPLES = {
    "CrashLoop": "panic: dial tcp 10.0.3.17:5432: connect: connection refused",
    "PodCrash": "Error: ENOENT: no such file or directory, open '/etc/app/config.yaml'",
    "OOMKilled": "java.lang.OutOfMemoryError: Java heap space at Cache.load(Cache.java:212)",
    "ImagePullBackOff": "failed to resolve reference: registry.internal: 401 Unauthorized",
    "DeploymentFailure": "Readiness probe failed: HTTP probe failed with statuscode: 503",
    "JobFailure": "psycopg.OperationalError: canceling statement due to statement timeout",
    "NodeUnhealthy": "kubelet: PLEG is not healthy: pleg was last seen active 3m12s ago",
}
# (error message, exit code) of agent runs that crashed instead of finishing their triage.
AGENT_ERRORS = (
    ("agent timed out after 900s", 124),
    ("agent container exited with code 137 (OOMKilled)", 137),
    ("agent could not reach the cluster API: connection reset by peer", 2),
)
LOG_DIR = "/var/lib/triage/workspaces"


@dataclass(frozen=True, kw_only=True)
class SeedOptions:
    """What to generate. `now` anchors the window (default: the current time)."""

    incidents: int
    clusters: int = 20
    namespaces: int = 200
    days: int = 90
    seed: int = 0
    now: datetime | None = None
    batch_size: int = 20_000

    def __post_init__(self) -> None:
        for name in ("incidents", "clusters", "namespaces", "days", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"seed_demo: --{name} must be at least 1, not {getattr(self, name)}"
                )


@dataclass
class SeedResult:
    """Rows written per table, and the wall time of the load (generation, writes, indexes)."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    index_seconds: float = 0.0

    @property
    def incidents_per_second(self) -> float:
        return self.rows.get("incidents", 0) / self.seconds if self.seconds else 0.0


# Column orders for COPY and INSERT (attnames: fault_id, incident_id, execution_id).
FAULT_COLUMNS = (
    "fault_id", "subscription_id", "cluster", "received_at", "resource_api_version",
    "resource_kind", "resource_name", "resource_namespace", "resource_uid", "fault_type",
    "severity", "context", "timestamp",
)  # fmt: skip
INCIDENT_COLUMNS = (
    "incident_id", "fault_id", "status", "created_at", "started_at", "completed_at", "exit_code",
    "cluster", "subscription_id", "resource_api_version", "resource_kind", "resource_name",
    "resource_namespace", "resource_uid", "fault_type", "severity", "failure_reason", "context",
    "timestamp", "last_seen_at", "occurrences", "oncall_state", "acknowledged_at", "closed_at",
    "resolution",
)  # fmt: skip
# How people closed what they closed.
RESOLUTION_WEIGHTS = {
    Resolution.FIXED: 70, Resolution.FALSE_POSITIVE: 15, Resolution.DUPLICATE: 5,
    Resolution.WONT_FIX: 10,
}  # fmt: skip
EXECUTION_COLUMNS = (
    "execution_id", "incident_id", "started_at", "completed_at", "exit_code", "error_message",
    "log_paths",
)  # fmt: skip
REPORT_COLUMNS = (
    "report_id", "incident_id", "execution_id", "generated_at", "report_markdown", "report_html",
)  # fmt: skip


# --- Reports: a few templates rendered once, filled per incident ------------------------------

# Placeholders survive markdown untouched (letters only, never in a heading, whose anchor id
# would be derived from them), so filling them in the rendered HTML with escaped values gives
# exactly what rendering the filled markdown would give.
_PLACEHOLDERS = ("RESOURCEX", "CLUSTERX", "CONTAINERX", "RESTARTSX", "DURATIONX")

REPORT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "likely-config": (
        "The container exits during start-up: it cannot read its configuration.",
        "A ConfigMap or Secret key the process needs is missing after the last rollout.",
        "Restore the missing key and roll the workload.",
    ),
    "likely-dependency": (
        "The process starts, then exits when it cannot reach a dependency.",
        "A downstream service (database or queue) refused connections during the fault window.",
        "Check the dependency's health; add a start-up retry with back-off.",
    ),
    "likely-capacity": (
        "Memory grows steadily until the kernel kills the container.",
        "The memory limit is below the working set after the last traffic increase.",
        "Raise the memory limit or cap the in-process cache.",
    ),
    "likely-image": (
        "The kubelet cannot pull the image the workload references.",
        "The registry credentials in the image pull secret have expired.",
        "Rotate the pull secret and restart the rollout.",
    ),
    "likely-node": (
        "The node stopped reporting and its pods were evicted.",
        "The kubelet hung on a full disk (image garbage collection fell behind).",
        "Cordon and drain the node; prune images; raise the eviction threshold.",
    ),
}
FAULT_REPORT_TEMPLATES = {
    "CrashLoop": ("likely-config", "likely-dependency"),
    "PodCrash": ("likely-config", "likely-dependency"),
    "OOMKilled": ("likely-capacity",),
    "ImagePullBackOff": ("likely-image",),
    "DeploymentFailure": ("likely-config", "likely-image"),
    "JobFailure": ("likely-dependency", "likely-capacity"),
    "NodeUnhealthy": ("likely-node",),
}


def report_markdown_template(fault_type: str, key: str, outcome: str) -> str:
    """A short, real-looking triage report with placeholders for the incident's details."""
    symptom, cause, action = REPORT_TEMPLATES[key]
    confidence = "high" if outcome == Status.RESOLVED else "low"
    return (
        f"# Triage report: {fault_type}\n\n"
        "## Executive triage card\n\n"
        "| field | value |\n|---|---|\n"
        "| resource | `RESOURCEX` |\n"
        "| cluster | `CLUSTERX` |\n"
        f"| confidence | {confidence} |\n"
        "| restarts | RESTARTSX |\n\n"
        "## Findings\n\n"
        f"{symptom} Container `CONTAINERX` was observed for DURATIONX.\n\n"
        "```text\n"
        f"{LOG_SAMPLES[fault_type]}\n"
        "```\n\n"
        "## Likely cause\n\n"
        f"{cause}\n\n"
        "## Next steps\n\n"
        f"1. {action}\n"
        "2. Watch the workload for 30 minutes after the change.\n"
    )


@dataclass(frozen=True)
class _ReportTemplate:
    markdown: str
    html: str

    def fill(self, values: Sequence[str]) -> tuple[str, str]:
        markdown, rendered = self.markdown, self.html
        for placeholder, value in zip(_PLACEHOLDERS, values, strict=True):
            markdown = markdown.replace(placeholder, value)
            rendered = rendered.replace(placeholder, html.escape(value, quote=False))
        return markdown, rendered


def _report_templates() -> dict[tuple[str, str], tuple[_ReportTemplate, ...]]:
    """(fault type, outcome) -> its templates, each rendered exactly once."""
    templates: dict[tuple[str, str], tuple[_ReportTemplate, ...]] = {}
    for fault_type, keys in FAULT_REPORT_TEMPLATES.items():
        for outcome in (Status.RESOLVED, Status.FAILED):
            templates[fault_type, outcome] = tuple(
                _ReportTemplate(md, render_markdown(md))
                for md in (report_markdown_template(fault_type, key, outcome) for key in keys)
            )
    return templates


# --- The generator ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fault:
    row: Row  # in FAULT_COLUMNS order
    denormalized: Row  # cluster .. severity, in INCIDENT_COLUMNS order
    context: str
    container: str


class HistoryGenerator:
    """Plans the history up front (cheap arrays), then yields rows chunk by chunk.

    Memory stays at the faults plus one chunk of incidents, whatever the number of incidents.
    """

    def __init__(self, options: SeedOptions) -> None:
        self.options = options
        self.rng = random.Random(options.seed)  # noqa: S311 - demo data, reproducible
        self.now = (options.now or timezone.now()).replace(microsecond=0)
        self.start = self.now - timedelta(days=options.days)
        self._templates = _report_templates()
        self._terminal = [status.value for status in TERMINAL_WEIGHTS]
        self._terminal_cumulative = list(accumulate(TERMINAL_WEIGHTS.values()))
        self._terminal_total = self._terminal_cumulative[-1]
        self._plan()

    # Planning: when each incident happens and which fault it belongs to.
    def _plan(self) -> None:
        rng, n = self.rng, self.options.incidents
        span = (self.now - self.start).total_seconds()
        # Incidents arrive in time order (the order ingestion writes them).
        offsets = sorted(rng.random() * span for _ in range(n))
        self.created_offsets = array("d", offsets)
        # A resource that faulted once faults again: fault i is picked with a skew toward low i.
        fault_slots = max(1, n // 3)
        picks = array("l", (int(fault_slots * rng.random() ** 2) for _ in range(n)))
        # Number the faults that occur, in order of first pick, and find each one's newest.
        numbering: dict[int, int] = {}
        for pick in picks:
            numbering.setdefault(pick, len(numbering))
        self.fault_of = array("l", (numbering[pick] for pick in picks))
        self.fault_count = len(numbering)
        latest = array("l", [-1]) * self.fault_count
        for index, fault in enumerate(self.fault_of):
            latest[fault] = index  # offsets are sorted: the last seen is the newest
        self.latest_of_fault = latest
        # Open incidents: only among the newest few, and only a fault's newest incident.
        self.open_from = n - max(10, n // 1000)
        self.faults = [self._make_fault(number) for number in range(self.fault_count)]

    def _name(self, length: int) -> str:
        return "".join(self.rng.choices(_ALPHABET, k=length))

    def _make_fault(self, number: int) -> _Fault:
        rng, options = self.rng, self.options
        fault_type = rng.choices(list(FAULT_TYPES), [w for w, _ in FAULT_TYPES.values()])[0]
        kind = rng.choice(FAULT_TYPES[fault_type][1])
        cluster_number = rng.randrange(options.clusters)
        env = ENVIRONMENTS[cluster_number % len(ENVIRONMENTS)]
        region = REGIONS[cluster_number % len(REGIONS)]
        cluster = f"{env}-{region}-{cluster_number // len(REGIONS) + 1}"
        app = rng.choice(APPS)
        if kind == "Node":
            namespace = ""
            name = f"ip-10-{rng.randrange(256)}-{rng.randrange(256)}-{rng.randrange(256)}.internal"
        else:
            namespace_number = rng.randrange(options.namespaces)
            namespace = TEAMS[namespace_number % len(TEAMS)]
            if namespace_number >= len(TEAMS):
                namespace = f"{namespace}-{namespace_number // len(TEAMS) + 1}"
            name = f"{app}-{self._name(6)}"
            if kind == "Pod":
                name = f"{name}-{self._name(5)}"
        container = app if kind != "Node" else "kubelet"
        severity = rng.choices(list(SEVERITY_WEIGHTS), list(SEVERITY_WEIGHTS.values()))[0].value
        fault_id = f"{rng.getrandbits(64):016x}"
        subscription_id = f"sub-{rng.getrandbits(32):08x}"
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        context = json.dumps(
            {
                "context": CONTEXT_TEXT[fault_type].format(container=container, name=name),
                "logs": [
                    {
                        "container": container,
                        "previous": kind != "Node",
                        "hasPanic": LOG_SAMPLES[fault_type].startswith("panic"),
                        "sample": LOG_SAMPLES[fault_type],
                    }
                ],
                "reason": fault_type,
                "node": f"ip-10-{cluster_number}-{rng.randrange(256)}-{rng.randrange(99)}.internal",
                "restartCount": rng.randrange(1, 60),
            },
            separators=(",", ":"),
        )
        timestamp = self._occurred_at(self.latest_of_fault[number])  # its newest occurrence
        api_version = API_VERSIONS[kind]
        denormalized = (
            cluster, subscription_id, api_version, kind, name, namespace, uid, fault_type, severity,
        )  # fmt: skip
        row = (
            fault_id, subscription_id, cluster, timestamp + timedelta(seconds=1), api_version,
            kind, name, namespace, uid, fault_type, severity, context, timestamp,
        )  # fmt: skip
        return _Fault(row=row, denormalized=denormalized, context=context, container=container)

    def _created_at(self, index: int) -> datetime:
        return self.start + timedelta(seconds=self.created_offsets[index])

    def _occurred_at(self, index: int) -> datetime:
        """The fault occurred 0.2 to 5 s before ingestion created the incident."""
        return self._created_at(index) - timedelta(seconds=0.2 + (index * 7919 % 48) / 10)

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    # Rows.
    def fault_rows(self) -> Iterator[Row]:
        for fault in self.faults:
            yield fault.row

    def chunks(self) -> Iterator[tuple[list[Row], list[Row], list[Row]]]:
        """(incidents, executions, reports) rows, `batch_size` incidents at a time."""
        n, size = self.options.incidents, self.options.batch_size
        for chunk_start in range(0, n, size):
            incidents: list[Row] = []
            executions: list[Row] = []
            reports: list[Row] = []
            for index in range(chunk_start, min(chunk_start + size, n)):
                incidents.append(self._incident(index, executions, reports))
            yield incidents, executions, reports

    def _status(self, index: int) -> str:
        """A fault's newest incident among the newest few may be open; the rest are finished."""
        rng = self.rng
        if index >= self.open_from and self.latest_of_fault[self.fault_of[index]] == index:
            roll = rng.random()
            if roll < 0.3:
                return Status.PENDING.value
            if roll < 0.5:
                return Status.INVESTIGATING.value
        pick = rng.random() * self._terminal_total
        return self._terminal[bisect_right(self._terminal_cumulative, pick)]

    def _incident(self, index: int, executions: list[Row], reports: list[Row]) -> Row:
        """The incident row; appends its executions and report rows."""
        rng = self.rng
        fault = self.faults[self.fault_of[index]]
        created_at = self._created_at(index)
        timestamp = self._occurred_at(index)
        incident_id = self._uuid()
        status = self._status(index)
        started_at = completed_at = exit_code = failure_reason = None
        if status != Status.PENDING:
            started_at = created_at + timedelta(seconds=rng.uniform(1, 90))
            retried = status == Status.RESOLVED and rng.random() < RETRIED_SHARE
            run_started = started_at
            if retried:  # the first run crashed; the requeued run resolved it
                crashed = self._crashed_run(incident_id, 1, run_started)
                executions.append(crashed)
                run_started = crashed[3] + timedelta(seconds=rng.uniform(5, 60))
            attempt = 2 if retried else 1
            if status == Status.INVESTIGATING:
                executions.append(self._run(incident_id, attempt, run_started, None, None, ""))
            elif status == Status.AGENT_FAILED:
                crashed = self._crashed_run(incident_id, attempt, run_started)
                executions.append(crashed)
                completed_at, exit_code, failure_reason = crashed[3], crashed[4], crashed[5]
            else:
                completed_at = run_started + timedelta(seconds=rng.uniform(40, 900))
                exit_code = 0 if status == Status.RESOLVED else 1
                if status == Status.FAILED:
                    failure_reason = "agent exited with code 1: no fix verified"
                run = self._run(incident_id, attempt, run_started, completed_at, exit_code, "")
                executions.append(run)
                reports.append(
                    self._report(fault, incident_id, run[0], status, run_started, run[3])
                )
        return (
            incident_id, fault.row[0], status, created_at, started_at, completed_at, exit_code,
            *fault.denormalized, failure_reason, fault.context, timestamp,
            *self._oncall(index, created_at, timestamp, status),
        )  # fmt: skip

    def _oncall(self, index: int, created_at: datetime, timestamp: datetime, status: str) -> Row:
        """(last_seen_at, occurrences, oncall_state, acknowledged_at, closed_at, resolution):
        a day after it opened, a person has closed it; newer ones are open or acknowledged, and
        an incident still open for triage may have seen its fault fire again."""
        rng = self.rng
        repeats = rng.randrange(1, 12) if status in (Status.PENDING, Status.INVESTIGATING) else 0
        last_seen = timestamp + timedelta(seconds=30 * repeats)
        if self.now - created_at > timedelta(days=1):
            resolutions = list(RESOLUTION_WEIGHTS)
            resolution = rng.choices(resolutions, list(RESOLUTION_WEIGHTS.values()))[0]
            closed_at = created_at + timedelta(minutes=rng.uniform(5, 600))
            return (last_seen, 1 + repeats, OnCallState.CLOSED.value, None, closed_at,
                    resolution.value)  # fmt: skip
        if rng.random() < 0.5:
            acknowledged = created_at + timedelta(seconds=rng.uniform(30, 900))
            return (last_seen, 1 + repeats, OnCallState.ACKNOWLEDGED.value, acknowledged, None, "")
        return (last_seen, 1 + repeats, OnCallState.OPEN.value, None, None, "")

    def _run(
        self,
        incident_id: uuid.UUID,
        attempt: int,
        started_at: datetime,
        completed_at: datetime | None,
        exit_code: int | None,
        error: str,
    ) -> Row:
        logs = f"{LOG_DIR}/{incident_id}/{attempt}"
        log_paths = f"{logs}/agent.stdout.log,{logs}/agent.stderr.log"
        return (self._uuid(), incident_id, started_at, completed_at, exit_code, error, log_paths)

    def _crashed_run(self, incident_id: uuid.UUID, attempt: int, started_at: datetime) -> Row:
        error, exit_code = self.rng.choice(AGENT_ERRORS)
        ended = started_at + timedelta(seconds=self.rng.uniform(40, 900))
        return self._run(incident_id, attempt, started_at, ended, exit_code, error)

    def _report(
        self,
        fault: _Fault,
        incident_id: uuid.UUID,
        execution_id: uuid.UUID,
        outcome: str,
        run_started: datetime,
        generated_at: datetime,
    ) -> Row:
        cluster, _, _, kind, name, namespace = fault.denormalized[:6]
        fault_type = fault.denormalized[7]
        template = self.rng.choice(self._templates[fault_type, outcome])
        resource = "/".join(part for part in (namespace, kind, name) if part)
        minutes = max(1, int((generated_at - run_started).total_seconds() // 60))
        values = (resource, cluster, fault.container, str(self.rng.randrange(1, 60)), f"{minutes}m")
        markdown, rendered = template.fill(values)
        return (self._uuid(), incident_id, execution_id, generated_at, markdown, rendered)


# --- Loading ------------------------------------------------------------------------------


def seed_history(
    options: SeedOptions,
    *,
    using: str = "default",
    flush: bool = False,
    progress: Progress | None = None,
) -> SeedResult:
    """Generate and load the history into empty tables, in one transaction, then ANALYZE.

    With `flush`, the four tables are emptied first in the same transaction (a failed load
    leaves the old history in place). Without it, raises DatabaseNotEmpty if any of them has
    rows: seeding never mixes with real data.
    """
    say = progress or (lambda message: None)
    began = time.perf_counter()
    result = SeedResult()
    with DjangoStateStore(using=using).load_history(flush=flush) as loader:
        generator = HistoryGenerator(options)
        say(f"planned {options.incidents} incidents over {generator.fault_count} faults")
        faults = list(generator.fault_rows())
        for start in range(0, len(faults), options.batch_size):
            loader.write(FaultEvent, FAULT_COLUMNS, faults[start : start + options.batch_size])
        for incidents, executions, reports in generator.chunks():
            loader.write(Incident, INCIDENT_COLUMNS, incidents)
            loader.write(AgentExecution, EXECUTION_COLUMNS, executions)
            loader.write(TriageReport, REPORT_COLUMNS, reports)
            say(f"  {loader.rows['incidents']:>9} incidents ({time.perf_counter() - began:.0f} s)")
        say("rebuilding indexes")
    result.rows = dict(loader.rows)
    result.index_seconds = loader.index_seconds
    result.seconds = time.perf_counter() - began
    return result

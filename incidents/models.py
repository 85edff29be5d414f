"""The four tables of the state-persistence design: schema and row-level invariants only.

Rules that span rows or tables (the lifecycle, one open incident per fault, copying a fault's
fields onto its incidents) live in `incidents.store`.
"""

import uuid

from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from incidents.choices import Severity, Status

# Fields copied from a FaultEvent onto each of its incidents (the design's denormalization).
DENORMALIZED_FIELDS = (
    "cluster",
    "subscription_id",
    "resource_api_version",
    "resource_kind",
    "resource_name",
    "resource_namespace",
    "resource_uid",
    "fault_type",
    "severity",
    "context",
    "timestamp",
)

# The numbers of an execution's result.json: never negative (a CHECK constraint each).
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cost_usd", "tool_calls")


def _not_empty(table: str, field: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=~Q(**{field: ""}), name=f"{table}_{field}_not_empty")


def _severity_valid(table: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(severity__in=Severity.values), name=f"{table}_severity_valid"
    )


class FaultEvent(models.Model):
    """A fault reported by kubernetes-mcp-server, keyed by upstream's fault id.

    The row describes the fault as last corrected; each occurrence is an Incident, which carries
    its own copy of these fields and the occurrence's timestamp.
    """

    fault_id = models.CharField(primary_key=True, max_length=255)
    subscription_id = models.CharField(max_length=255, blank=True, default="")
    cluster = models.CharField(max_length=255)
    received_at = models.DateTimeField(default=timezone.now)
    resource_api_version = models.CharField(max_length=255, blank=True, default="")
    resource_kind = models.CharField(max_length=255, blank=True, default="")
    resource_name = models.CharField(max_length=255, blank=True, default="")
    resource_namespace = models.CharField(max_length=255, blank=True, default="")
    resource_uid = models.CharField(max_length=255, blank=True, default="")
    fault_type = models.CharField(max_length=255)
    severity = models.CharField(max_length=16, choices=Severity)
    context = models.TextField(blank=True, default="", help_text="Upstream context as JSON text.")
    timestamp = models.DateTimeField(help_text="When the fault occurred.")

    class Meta:
        db_table = "fault_events"
        ordering = ["-timestamp"]
        constraints = [
            _severity_valid("fault_events"),
            _not_empty("fault_events", "cluster"),
            _not_empty("fault_events", "fault_type"),
        ]
        indexes = [
            # The design marks these columns: filter choices and fault lookups by each.
            models.Index(fields=["cluster"], name="fault_events_cluster_idx"),
            models.Index(fields=["resource_kind"], name="fault_events_kind_idx"),
            models.Index(fields=["resource_namespace"], name="fault_events_namespace_idx"),
            models.Index(fields=["fault_type"], name="fault_events_fault_type_idx"),
            models.Index(fields=["severity"], name="fault_events_severity_idx"),
            # The admin's fault event list: newest first, and its date hierarchy.
            models.Index(fields=["-timestamp"], name="fault_events_timestamp_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.fault_type} on {self.resource_label} in {self.cluster} ({self.fault_id})"

    @property
    def resource_label(self) -> str:
        """`namespace/Kind/name`, leaving out the parts upstream did not send."""
        parts = [self.resource_namespace, self.resource_kind, self.resource_name]
        return "/".join(part for part in parts if part) or "(no resource)"


class Incident(models.Model):
    """One triage attempt for one occurrence of a fault.

    The fault's fields are copied here so the dashboard filters without joins. A terminal status
    always has `completed_at`; at most one incident per fault is open (pending or investigating).
    """

    Status = Status

    incident_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    fault = models.ForeignKey(
        FaultEvent,
        on_delete=models.PROTECT,  # history: a fault with incidents cannot be deleted
        related_name="incidents",
        db_index=False,  # served by incidents_fault_timestamp_idx
    )
    status = models.CharField(max_length=16, choices=Status, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    cluster = models.CharField(max_length=255)
    subscription_id = models.CharField(max_length=255, blank=True, default="")
    resource_api_version = models.CharField(max_length=255, blank=True, default="")
    resource_kind = models.CharField(max_length=255, blank=True, default="")
    resource_name = models.CharField(max_length=255, blank=True, default="")
    resource_namespace = models.CharField(max_length=255, blank=True, default="")
    resource_uid = models.CharField(max_length=255, blank=True, default="")
    fault_type = models.CharField(max_length=255)
    severity = models.CharField(max_length=16, choices=Severity)
    # The design makes these two nullable: NULL means "none recorded", unlike an empty string.
    failure_reason = models.TextField(null=True, blank=True)  # noqa: DJ001
    context = models.TextField(blank=True, default="")
    timestamp = models.DateTimeField(help_text="When the fault occurred.")
    # The agent profile (TRIAGE_AGENT_PROFILES) its runs use; "" is TRIAGE_AGENT_COMMAND. Set by
    # a re-run request and kept through requeues, so a lost re-run is retried with the same agent.
    agent_profile = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        db_table = "incidents"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="incidents_status_valid"
            ),
            _severity_valid("incidents"),
            _not_empty("incidents", "cluster"),
            _not_empty("incidents", "fault_type"),
            models.CheckConstraint(
                condition=~Q(status__in=[Status.RESOLVED, Status.FAILED, Status.AGENT_FAILED])
                | Q(completed_at__isnull=False),
                name="incidents_terminal_has_completed_at",
            ),
            # Ingestion coalesces into the open incident; the database guarantees there is one.
            models.UniqueConstraint(
                fields=["fault"],
                condition=Q(status__in=[Status.PENDING, Status.INVESTIGATING]),
                name="incidents_one_open_per_fault",
            ),
        ]
        # The dashboard's summary groups the rows of a time window by (day, severity, status,
        # cluster); every created_at-ordered index INCLUDEs those columns so the summary, with no
        # filter or one, and the capped counts are index-only scans (PostgreSQL; SQLite ignores
        # INCLUDE). Measured at 1 M rows: a filtered summary 80-90 ms -> 17 ms, a three-filter
        # summary 147 ms -> 8 ms (see bench/dashboard.py).
        indexes = [
            # The unfiltered dashboard: newest first, keyset pages, the last page (read backward).
            models.Index(
                fields=["-created_at"],
                name="incidents_created_idx",
                include=["severity", "status", "cluster"],
            ),
            # FIFO claim (status = pending ORDER BY created_at) and the status filter.
            models.Index(
                fields=["status", "created_at"],
                name="incidents_status_created_idx",
                include=["severity", "cluster"],
            ),
            # "Newest first within a filter", one per filterable column the design marks.
            models.Index(
                fields=["cluster", "created_at"],
                name="incidents_cluster_created_idx",
                include=["severity", "status"],
            ),
            models.Index(
                fields=["severity", "created_at"],
                name="incidents_severity_created_idx",
                include=["status", "cluster"],
            ),
            models.Index(
                fields=["resource_kind", "created_at"],
                name="incidents_kind_created_idx",
                include=["severity", "status", "cluster"],
            ),
            models.Index(
                fields=["resource_namespace", "created_at"],
                name="incidents_ns_created_idx",
                include=["severity", "status", "cluster"],
            ),
            models.Index(
                fields=["fault_type", "created_at"],
                name="incidents_ftype_created_idx",
                include=["severity", "status", "cluster"],
            ),
            # The triage view, severity and status together ("critical and failed"), newest
            # first; any third filter is checked on these few rows instead of ANDing bitmaps of
            # three large indexes (28-50 ms at 1 M rows).
            models.Index(
                fields=["severity", "status", "created_at"],
                name="incidents_sev_status_idx",
                include=["cluster"],
            ),
            # Replay detection (same fault and timestamp) and a fault's recurrence history.
            models.Index(fields=["fault", "timestamp"], name="incidents_fault_timestamp_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.fault_type} on {self.resource_label} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        return reverse("incidents:detail", args=[self.incident_id])

    @property
    def resource_label(self) -> str:
        parts = [self.resource_namespace, self.resource_kind, self.resource_name]
        return "/".join(part for part in parts if part) or "(no resource)"

    @property
    def is_open(self) -> bool:
        return self.status in (Status.PENDING, Status.INVESTIGATING)


class AgentExecution(models.Model):
    """One run of the agent container for an incident; an incident keeps every attempt."""

    execution_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    incident = models.ForeignKey(
        Incident, on_delete=models.PROTECT, related_name="executions", db_index=False
    )
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    error_message = models.TextField(blank=True, default="")
    log_paths = models.TextField(blank=True, default="", help_text="Comma-separated paths.")
    # Which agent profile ran ("": TRIAGE_AGENT_COMMAND), and what the agent said of its run in
    # output/result.json (every field optional: NULL or "" when it did not say).
    agent_profile = models.CharField(max_length=64, blank=True, default="", db_default="")
    agent = models.CharField(max_length=255, blank=True, default="", db_default="")
    model = models.CharField(max_length=255, blank=True, default="", db_default="")
    input_tokens = models.BigIntegerField(null=True, blank=True)
    output_tokens = models.BigIntegerField(null=True, blank=True)
    cache_read_tokens = models.BigIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    tool_calls = models.BigIntegerField(null=True, blank=True)
    result_json = models.TextField(
        blank=True,
        default="",
        db_default="",
        help_text="output/result.json as the agent wrote it (validated).",
    )
    result_error = models.TextField(
        blank=True,
        default="",
        db_default="",
        help_text="Why output/result.json was not used ('' when it was).",
    )

    class Meta:
        db_table = "agent_executions"
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(completed_at__isnull=True)
                | Q(completed_at__gte=models.F("started_at")),
                name="agent_executions_completed_after_started",
            ),
            *(
                models.CheckConstraint(
                    condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__gte": 0}),
                    name=f"agent_executions_{name}_not_negative",
                )
                for name in USAGE_FIELDS
            ),
        ]
        indexes = [
            # An incident page lists its executions, newest first.
            models.Index(fields=["incident", "-started_at"], name="agent_executions_incident_idx"),
            # The admin's execution list: newest first, and its date hierarchy.
            models.Index(fields=["-started_at"], name="agent_executions_started_idx"),
            # Today's spend (the daily budget, checked before every claim, and the dashboard):
            # a range of completed_at over costed runs only, index-only on PostgreSQL.
            models.Index(
                fields=["completed_at"],
                name="agent_executions_spend_idx",
                include=["cost_usd"],
                condition=Q(cost_usd__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Execution {self.execution_id} of incident {self.incident_id}"

    @property
    def log_path_list(self) -> list[str]:
        return [path.strip() for path in self.log_paths.split(",") if path.strip()]

    @log_path_list.setter
    def log_path_list(self, paths: list[str]) -> None:
        self.log_paths = ",".join(str(path) for path in paths)

    @property
    def duration(self):
        if self.completed_at is None:
            return None
        return self.completed_at - self.started_at


class TriageReport(models.Model):
    """The investigation report (markdown) an agent execution produced for an incident.

    `report_html` is a cache of the rendered markdown; pages sanitize it again on the way out.
    """

    report_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    incident = models.ForeignKey(
        Incident, on_delete=models.PROTECT, related_name="reports", db_index=False
    )
    execution = models.ForeignKey(
        AgentExecution, on_delete=models.PROTECT, related_name="reports", db_index=False
    )
    generated_at = models.DateTimeField(default=timezone.now)
    report_markdown = models.TextField()
    report_html = models.TextField(null=True, blank=True)  # noqa: DJ001 - NULL: not rendered yet

    class Meta:
        db_table = "triage_reports"
        ordering = ["-generated_at"]
        indexes = [
            # An incident page shows its newest report first.
            models.Index(fields=["incident", "-generated_at"], name="triage_reports_incident_idx"),
            # PROTECT checks and "reports of this execution".
            models.Index(fields=["execution"], name="triage_reports_execution_idx"),
            # The admin's report list: newest first, and its date hierarchy.
            models.Index(fields=["-generated_at"], name="triage_reports_generated_idx"),
        ]

    def __str__(self) -> str:
        return f"Report {self.report_id} for incident {self.incident_id}"

    def get_absolute_url(self) -> str:
        return reverse("incidents:report", args=[self.report_id])

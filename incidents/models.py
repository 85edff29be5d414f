"""The four tables of the state-persistence design: schema and row-level invariants only.

Rules that span rows or tables (the lifecycle, one open incident per fault, copying a fault's
fields onto its incidents) live in `incidents.store`.
"""

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from incidents.choices import (
    ActivityKind,
    ActorKind,
    OnCallState,
    Resolution,
    Severity,
    Status,
)

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


if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _person(related_name: str) -> "models.ForeignKey[User | None, User | None]":
    """A nullable link to a user: history keeps its rows when the account is deleted."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name=related_name,
        db_index=False,  # nobody lists incidents by who acknowledged them
    )


class Incident(models.Model):
    """One triage attempt for one occurrence of a fault, and the on-call work on it.

    The fault's fields are copied here so the dashboard filters without joins. A terminal status
    always has `completed_at`; at most one incident per fault is open (pending or investigating).
    Two states, two questions: `status` is the triage lifecycle (what the agent did),
    `oncall_state` is the people's (is someone on it, is it over). `occurrences` counts the
    fault's firings while this incident was open for triage; `last_seen_at` is the latest.
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
    # On-call state. Database defaults too: the bulk writers insert rows without naming them.
    oncall_state = models.CharField(
        max_length=16, choices=OnCallState, default=OnCallState.OPEN, db_default=OnCallState.OPEN
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = _person("+")
    assignee = _person("assigned_incidents")
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = _person("+")
    resolution = models.CharField(
        max_length=16, choices=Resolution, blank=True, default="", db_default=""
    )
    resolution_note = models.TextField(blank=True, default="", db_default="")
    occurrences = models.PositiveIntegerField(default=1, db_default=1)
    last_seen_at = models.DateTimeField(help_text="The latest occurrence of the fault.")
    # The agent profile (TRIAGE_AGENT_PROFILES) its runs use; "" is TRIAGE_AGENT_COMMAND. Set by
    # a re-run request and kept through requeues, so a lost re-run is retried with the same agent.
    agent_profile = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        db_table = "incidents"
        ordering = ["-created_at"]
        # The responder group's right: acknowledge, assign, note, close, reopen and silence.
        permissions = [("respond_incident", "Can act on incidents as a responder")]
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
            models.CheckConstraint(
                condition=Q(oncall_state__in=OnCallState.values), name="incidents_oncall_valid"
            ),
            models.CheckConstraint(
                condition=Q(resolution__in=["", *Resolution.values]),
                name="incidents_resolution_valid",
            ),
            # Closed exactly when a person closed it, with a resolution.
            models.CheckConstraint(
                condition=(
                    Q(oncall_state=OnCallState.CLOSED, closed_at__isnull=False) & ~Q(resolution="")
                )
                | (
                    ~Q(oncall_state=OnCallState.CLOSED)
                    & Q(closed_at__isnull=True, closed_by__isnull=True, resolution="")
                ),
                name="incidents_closed_has_resolution",
            ),
            # Acknowledged has its time; open (new or reopened) has none.
            models.CheckConstraint(
                condition=~Q(oncall_state=OnCallState.ACKNOWLEDGED)
                | Q(acknowledged_at__isnull=False),
                name="incidents_acknowledged_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(oncall_state=OnCallState.OPEN)
                | Q(acknowledged_at__isnull=True, acknowledged_by__isnull=True),
                name="incidents_open_not_acknowledged",
            ),
            models.CheckConstraint(
                condition=Q(occurrences__gte=1), name="incidents_occurrences_positive"
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
            # The default list (what needs a human: open and acknowledged), newest first.
            models.Index(
                fields=["oncall_state", "created_at"],
                name="incidents_oncall_created_idx",
                include=["severity", "status", "cluster"],
            ),
            # Fault time (`occurred_*`, quick ranges, the chart on fault time): the range and the
            # summary's GROUP BY from the index alone, unfiltered and in the default view.
            models.Index(
                fields=["-timestamp"],
                name="incidents_timestamp_idx",
                include=["severity", "status", "cluster"],
            ),
            models.Index(
                fields=["oncall_state", "timestamp"],
                name="incidents_oncall_ts_idx",
                include=["severity", "status", "cluster"],
            ),
            # The list sorted by last seen and by occurrences (keyset pages).
            models.Index(fields=["last_seen_at", "incident_id"], name="incidents_last_seen_idx"),
            models.Index(
                fields=["occurrences", "created_at", "incident_id"],
                name="incidents_occurrences_idx",
            ),
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
        """Open for triage (pending or investigating); see `oncall_state` for the people's."""
        return self.status in (Status.PENDING, Status.INVESTIGATING)

    @property
    def is_closed(self) -> bool:
        return self.oncall_state == OnCallState.CLOSED


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
    # The report's conclusion, read once when it is recorded (incidents.quality.compare): what
    # "same conclusion as last time" compares. NULL: the report states none we can read.
    headline_cause = models.TextField(null=True, blank=True)  # noqa: DJ001
    headline_confidence = models.CharField(  # noqa: DJ001
        max_length=64, null=True, blank=True
    )

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


class Silence(models.Model):
    """Faults matching every given field, from `starts_at` until `ends_at`, open no incident.

    A field left empty matches anything; a value ending in `*` matches by prefix. The fault is
    still stored, and counted here (`matched`, `last_matched_at`).
    """

    MATCH_FIELDS = ("cluster", "namespace", "resource_kind", "fault_type", "resource_name")

    created_by = _person("silences")
    created_at = models.DateTimeField(default=timezone.now)
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    expired_at = models.DateTimeField(null=True, blank=True, help_text="Ended early by hand.")
    expired_by = _person("+")
    comment = models.TextField()
    cluster = models.CharField(max_length=255, blank=True, default="")
    namespace = models.CharField(max_length=255, blank=True, default="")
    resource_kind = models.CharField(max_length=255, blank=True, default="")
    fault_type = models.CharField(max_length=255, blank=True, default="")
    resource_name = models.CharField(max_length=255, blank=True, default="")
    matched = models.PositiveIntegerField(default=0, db_default=0)
    last_matched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "silences"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="silences_ends_after_start"
            ),
            models.CheckConstraint(condition=~Q(comment=""), name="silences_comment_not_empty"),
            # A silence that matches everything would hide every fault: at least one field.
            models.CheckConstraint(
                condition=~Q(
                    cluster="", namespace="", resource_kind="", fault_type="", resource_name=""
                ),
                name="silences_match_something",
            ),
        ]
        indexes = [
            # Ingestion loads the active silences once per batch.
            models.Index(fields=["ends_at"], name="silences_ends_idx"),
        ]

    def __str__(self) -> str:
        return f"Silence {self.pk}: {self.matcher_text}"

    @property
    def matcher_text(self) -> str:
        parts = [
            f"{name}={getattr(self, name)}" for name in self.MATCH_FIELDS if getattr(self, name)
        ]
        return ", ".join(parts)

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.expired_at is None and self.starts_at <= now < self.ends_at


class IncidentActivity(models.Model):
    """One event of an incident's timeline (or of a silence), written only by the store.

    Every triage status change, correction, repeat of the fault, on-call action and silence
    leaves one row: the timeline on the incident page, and the event a notifier can read.
    `actor` is the person; `actor_kind` says when it was the worker or ingestion instead.
    """

    incident = models.ForeignKey(
        Incident, on_delete=models.CASCADE, related_name="activity", null=True, db_index=False
    )
    silence = models.ForeignKey(
        Silence, on_delete=models.CASCADE, related_name="activity", null=True, blank=True
    )
    kind = models.CharField(max_length=24, choices=ActivityKind)
    actor = _person("+")
    actor_kind = models.CharField(max_length=16, choices=ActorKind, default=ActorKind.PERSON)
    at = models.DateTimeField(default=timezone.now)
    from_value = models.CharField(max_length=255, blank=True, default="")
    to_value = models.CharField(max_length=255, blank=True, default="")
    text = models.TextField(blank=True, default="")

    class Meta:
        db_table = "incident_activity"
        ordering = ["-at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ActivityKind.values), name="incident_activity_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(actor_kind__in=ActorKind.values),
                name="incident_activity_actor_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(incident__isnull=False) | Q(silence__isnull=False),
                name="incident_activity_has_subject",
            ),
        ]
        indexes = [
            # An incident page shows its timeline, newest first.
            models.Index(fields=["incident", "-at"], name="incident_activity_incident_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M:%S}"

    @property
    def actor_label(self) -> str:
        """The person's name, or "triage worker" / "subscriber"."""
        if self.actor_kind != ActorKind.PERSON:
            return ActorKind(self.actor_kind).label
        if self.actor is None:
            return "(deleted user)"
        return self.actor.get_full_name() or self.actor.get_username()


class SavedView(models.Model):
    """A user's named list view ("my clusters"): the list URL's query string, kept server-side.

    A saved view is nothing but the list's query, so opening it is following a link, and the link
    can be shared: whoever opens it sees the same filters (with their own permissions).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=2000, blank=True)  # without the leading "?"
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "saved_views"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="saved_views_user_name_unique"),
            models.CheckConstraint(condition=~Q(name=""), name="saved_views_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        url = reverse("incidents:list")
        return f"{url}?{self.query}" if self.query else url


# Tables of the app whose code lives in a package of its own (imported last: they refer to the
# models above). Django files them under this app by their module's package.
# The API's tokens (incidents/api/models.py).
from incidents.api.models import ApiToken  # noqa: E402, F401
from incidents.notifications.models import (  # noqa: E402, F401
    AgentHealth,
    Notification,
    NotificationBatch,
    NotificationChannel,
)

# Verdicts on reports and the scoreboard's day counters (incidents/quality/models.py).
from incidents.quality.models import QualityDay, ReportVerdict  # noqa: E402, F401

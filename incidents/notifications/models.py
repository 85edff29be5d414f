"""The notification tables: channels, the outbox and its batches, the agents' health.

They belong to the `incidents` app (Django finds them through the import at the end of
`incidents/models.py`); the code that writes and sends them is the rest of this package.
"""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.choices import Severity
from incidents.models import Incident, _not_empty
from incidents.notifications.kinds import ChannelKind, DeliveryStatus, EventKind


def _empty_list() -> list[str]:
    return []


class NotificationChannel(models.Model):
    """Where notifications go: a Slack incoming webhook or a signed JSON webhook.

    `url` and `secret` are credentials (a Slack webhook URL is one): pages, the command line and
    logs show them masked (`incidents.notifications.channels.mask_url`). Empty `events` means
    every event; empty `clusters` means every cluster. Routing happens when an event is written.
    """

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind)
    url = models.CharField(max_length=2000, help_text="The endpoint (a secret).")
    secret = models.CharField(
        max_length=500, blank=True, default="", help_text="HMAC key of a webhook (a secret)."
    )
    min_severity = models.CharField(
        max_length=16, choices=Severity, default=Severity.LOW, help_text="This severity or worse."
    )
    clusters = models.JSONField(default=_empty_list, blank=True, help_text="Empty: every cluster.")
    events = models.JSONField(default=_empty_list, blank=True, help_text="Empty: every event.")
    enabled = models.BooleanField(default=True)
    # report_ready for a report whose headline is the previous report's (the fault's): sent
    # marked "unchanged", or not at all when this is on.
    skip_unchanged_reports = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "notification_channels"
        ordering = ["name"]
        constraints = [
            _not_empty("notification_channels", "name"),
            models.CheckConstraint(
                condition=Q(kind__in=ChannelKind.values), name="notification_channels_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(min_severity__in=Severity.values),
                name="notification_channels_min_severity_valid",
            ),
            models.CheckConstraint(
                condition=Q(url__startswith="https://") | Q(url__startswith="http://"),
                name="notification_channels_url_http",
            ),
            # A webhook's receiver can only trust what it can verify.
            models.CheckConstraint(
                condition=~Q(kind=ChannelKind.WEBHOOK) | ~Q(secret=""),
                name="notification_channels_webhook_has_secret",
            ),
        ]

    def __str__(self) -> str:  # never the URL: it is a credential
        return f"{self.name} ({self.get_kind_display()})"


class Notification(models.Model):
    """One event for one channel: the outbox row, and its delivery state.

    `notification_id` is the idempotency key sent with every attempt. `dedup_key` makes writing
    the same event twice a no-op (one per channel). A deliverer holds a row while
    `locked_until` is in the future; a killed deliverer's row is taken again after that.
    """

    notification_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=32, choices=EventKind)
    incident = models.ForeignKey(
        Incident,
        on_delete=models.CASCADE,  # derived data: it goes with its incident
        null=True,
        blank=True,
        related_name="notifications",
    )
    detail = models.JSONField(default=dict, blank=True)
    dedup_key = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    locked_by = models.CharField(max_length=64, blank=True, default="")
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notifications"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(event__in=EventKind.values), name="notifications_event_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="notifications_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=DeliveryStatus.DELIVERED) | Q(delivered_at__isnull=False),
                name="notifications_delivered_has_time",
            ),
            models.UniqueConstraint(
                fields=["channel", "dedup_key"], name="notifications_once_per_channel"
            ),
        ]
        indexes = [
            # The deliverers' claim: due pending rows, oldest due first.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status=DeliveryStatus.PENDING),
                name="notifications_due_idx",
            ),
            # The admin's list, newest first; an incident's notifications.
            models.Index(fields=["-created_at"], name="notifications_created_idx"),
            models.Index(fields=["incident"], name="notifications_incident_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} to {self.channel_id} ({self.status})"


class NotificationBatch(models.Model):
    """Incidents a batch opened, written by ingestion in its transaction: one small row for a
    thousand incidents. The deliverers route them to channels (`outbox.fan_out`), writing one
    Notification per channel and incident and deleting this row in one transaction."""

    created_at = models.DateTimeField(default=timezone.now)
    incident_ids = models.JSONField(help_text="UUIDs of the incidents opened, as text.")

    class Meta:
        db_table = "notification_batches"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{len(self.incident_ids)} incidents opened at {self.created_at:%Y-%m-%d %H:%M:%S}"


class AgentHealth(models.Model):
    """The agents' circuit breaker: one row (id 1), updated when a triage run ends.

    `degraded_since` is set when `TRIAGE_DEGRADED_AFTER` runs in a row failed, and cleared by
    the next successful run.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    degraded_since = models.DateTimeField(null=True, blank=True)
    last_failure_reason = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "agent_health"
        verbose_name_plural = "agent health"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="agent_health_one_row")]

    def __str__(self) -> str:
        return "degraded" if self.degraded_since else "healthy"

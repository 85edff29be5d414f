"""The notification vocabulary: event kinds, channel kinds and delivery statuses (no models)."""

from django.db import models


class EventKind(models.TextChoices):
    INCIDENT_OPENED = "incident_opened", "Incident opened"
    REPORT_READY = "report_ready", "Report ready"
    AGENT_FAILED = "agent_failed", "Triage run failed"
    AGENTS_DEGRADED = "agents_degraded", "Agent system degraded"
    AGENTS_RECOVERED = "agents_recovered", "Agent system recovered"
    ACKNOWLEDGED = "acknowledged", "Incident acknowledged"
    CLOSED = "closed", "Incident closed"


# Events about the agent system as a whole: no incident, so no severity or cluster to route by.
SYSTEM_EVENTS = frozenset({EventKind.AGENTS_DEGRADED, EventKind.AGENTS_RECOVERED})


class ChannelKind(models.TextChoices):
    SLACK = "slack", "Slack incoming webhook"
    WEBHOOK = "webhook", "Signed JSON webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its first or next attempt
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"  # refused, or out of attempts: retryable from the admin

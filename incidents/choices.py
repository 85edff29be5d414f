"""Status and severity vocabularies, the incident lifecycle, and how each is drawn.

The transition table is the one place the lifecycle is written down; the store enforces it.
"""

from django.db import models


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    INVESTIGATING = "investigating", "Investigating"
    RESOLVED = "resolved", "Resolved"
    FAILED = "failed", "Failed"
    AGENT_FAILED = "agent_failed", "Agent failed"


OPEN_STATUSES = frozenset({Status.PENDING, Status.INVESTIGATING})
TERMINAL_STATUSES = frozenset({Status.RESOLVED, Status.FAILED, Status.AGENT_FAILED})

# status -> the statuses it may move to. Moving back to pending is a requeue.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.INVESTIGATING, Status.FAILED, Status.AGENT_FAILED}),
    Status.INVESTIGATING: frozenset(
        {Status.RESOLVED, Status.FAILED, Status.AGENT_FAILED, Status.PENDING}
    ),
    Status.RESOLVED: frozenset({Status.PENDING}),
    Status.FAILED: frozenset({Status.PENDING}),
    Status.AGENT_FAILED: frozenset({Status.PENDING}),
}


def can_transition(current: str, target: str) -> bool:
    """Whether the lifecycle allows `current` -> `target` (a no-op move is not a transition)."""
    return target in TRANSITIONS.get(current, frozenset())


# Most urgent first; used to sort by severity.
SEVERITY_RANK: dict[str, int] = {
    Severity.CRITICAL: 0,
    Severity.HIGH: 1,
    Severity.MEDIUM: 2,
    Severity.LOW: 3,
}

# Badge colour per value: templates and the chart read these, nothing else picks colours.
SEVERITY_COLOURS: dict[str, str] = {
    Severity.CRITICAL: "red",
    Severity.HIGH: "orange",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "blue",
}
STATUS_COLOURS: dict[str, str] = {
    Status.PENDING: "grey",
    Status.INVESTIGATING: "blue",
    Status.RESOLVED: "green",
    Status.FAILED: "red",
    Status.AGENT_FAILED: "purple",
}

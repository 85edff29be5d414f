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
    """The triage lifecycle: what the agent did, never whether the fault is fixed (that is
    `OnCallState`). The labels say so: "resolved" means the agent's report is ready."""

    PENDING = "pending", "Awaiting triage"
    INVESTIGATING = "investigating", "Agent investigating"
    RESOLVED = "resolved", "Report ready"
    FAILED = "failed", "Triage failed"
    AGENT_FAILED = "agent_failed", "Agent crashed"


class OnCallState(models.TextChoices):
    """Is someone on it, is it over: open -> acknowledged -> closed, back to open on reopen."""

    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    CLOSED = "closed", "Closed"


class Resolution(models.TextChoices):
    """How a person closed an incident."""

    FIXED = "fixed", "Fixed"
    FALSE_POSITIVE = "false_positive", "False positive"
    DUPLICATE = "duplicate", "Duplicate"
    WONT_FIX = "wont_fix", "Won't fix"


class ActivityKind(models.TextChoices):
    """One row of an incident's timeline (`incident_activity`)."""

    STATUS = "status", "Triage status changed"
    OUTCOME_CORRECTED = "outcome_corrected", "Outcome corrected"
    FAULT_CORRECTED = "fault_corrected", "Fault corrected"
    REPEAT = "repeat", "Fault fired again"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    ASSIGNED = "assigned", "Assigned"
    NOTE = "note", "Note"
    CLOSED = "closed", "Closed"
    REOPENED = "reopened", "Reopened"
    SILENCE_CREATED = "silence_created", "Silence created"
    SILENCE_EXPIRED = "silence_expired", "Silence expired"
    RERUN = "rerun", "Re-run requested"  # with an agent profile (the run-cost issue)
    VERDICT = "verdict", "Report judged"


class Verdict(models.TextChoices):
    """A person's judgement of a triage report's conclusion (`ReportVerdict`)."""

    CORRECT = "correct", "Correct"
    PARTLY_CORRECT = "partly_correct", "Partly correct"
    WRONG = "wrong", "Wrong"
    NOT_USEFUL = "not_useful", "Not useful"


# The verdicts that say the report missed the cause: the person writes what the cause was.
VERDICTS_NEEDING_CAUSE = frozenset({Verdict.PARTLY_CORRECT, Verdict.WRONG})


class ActorKind(models.TextChoices):
    """Who wrote a timeline row: a person (the row's actor), the triage worker, or ingestion."""

    PERSON = "person", "person"
    WORKER = "worker", "triage worker"
    INGESTION = "ingestion", "subscriber"


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
ONCALL_COLOURS = {
    OnCallState.OPEN: "red",
    OnCallState.ACKNOWLEDGED: "yellow",
    OnCallState.CLOSED: "grey",
}
NEEDS_A_HUMAN = (OnCallState.OPEN.value, OnCallState.ACKNOWLEDGED.value)
VERDICT_COLOURS: dict[str, str] = {
    Verdict.CORRECT: "green",
    Verdict.PARTLY_CORRECT: "yellow",
    Verdict.WRONG: "red",
    Verdict.NOT_USEFUL: "grey",
}
STATUS_COLOURS: dict[str, str] = {
    Status.PENDING: "grey",
    Status.INVESTIGATING: "blue",
    Status.RESOLVED: "green",
    Status.FAILED: "red",
    Status.AGENT_FAILED: "purple",
}

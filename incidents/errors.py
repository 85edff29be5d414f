"""The store's typed errors. Each names the record and the field or status involved.

`InvalidTransition.reason` is a machine-readable code (one of `Refusal`): callers group and
branch on it, and never parse the message text.
"""

from __future__ import annotations

from enum import StrEnum


class StoreError(Exception):
    """Base class of the store's domain errors."""


class IncidentNotFound(StoreError, LookupError):
    def __init__(self, incident_id: object) -> None:
        self.incident_id = incident_id
        super().__init__(f"incident {incident_id} does not exist")


class FaultEventNotFound(StoreError, LookupError):
    def __init__(self, fault_id: str) -> None:
        self.fault_id = fault_id
        super().__init__(f"fault event {fault_id!r} does not exist")


class SilenceNotFound(StoreError, LookupError):
    def __init__(self, silence_id: object) -> None:
        self.silence_id = silence_id
        super().__init__(f"silence {silence_id} does not exist")


class ReportNotFound(StoreError, LookupError):
    def __init__(self, report_id: object) -> None:
        self.report_id = report_id
        super().__init__(f"triage report {report_id} does not exist")


class Refusal(StrEnum):
    """Why the store refused a move: `InvalidTransition.reason`."""

    LIFECYCLE = "lifecycle"  # the triage lifecycle has no such move
    UNKNOWN_STATUS = "unknown_status"
    NOT_TERMINAL = "not_terminal"  # completion needs a finished status
    ALREADY = "already"  # the incident already is where the move would take it
    ONE_OPEN_PER_FAULT = "one_open_per_fault"  # the fault has another open incident
    NO_OUTCOME = "no_outcome"  # only a finished incident has an outcome to correct
    DUPLICATE = "duplicate"  # creation: a replay of an incident that exists
    SILENCED = "silenced"  # creation: an active silence matches the fault
    CLOSED = "closed"  # on-call: the incident is closed
    NOT_CLOSED = "not_closed"  # on-call: only a closed incident can be reopened
    EXPIRED = "expired"  # a silence that has already ended


class InvalidTransition(StoreError, ValueError):
    """The store forbids moving the incident from `current` to `requested`; `reason` says why."""

    def __init__(
        self,
        incident_id: object,
        current: str,
        requested: str,
        why: str = "",
        *,
        reason: Refusal = Refusal.LIFECYCLE,
        **details: object,
    ) -> None:
        self.incident_id = incident_id
        self.current = current
        self.requested = requested
        self.reason = reason
        self.why = why or "the lifecycle does not allow it"
        self.details = details
        super().__init__(
            f"incident {incident_id} cannot move from {current} to {requested}: {self.why}"
        )


class InvalidRecord(StoreError, ValueError):
    """A record the database would refuse; the message names the record and the fields."""

    def __init__(self, record: str, errors: dict[str, list[str]]) -> None:
        self.record = record
        self.errors = errors
        detail = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items())
        super().__init__(f"{record} is invalid: {detail}")


class SilenceNotActive(StoreError, ValueError):
    """The silence has already ended (expired early, or reached its end)."""

    def __init__(self, silence_id: object, ended_at: object) -> None:
        self.silence_id = silence_id
        self.ended_at = ended_at
        super().__init__(f"silence {silence_id} is not active: it ended at {ended_at}")

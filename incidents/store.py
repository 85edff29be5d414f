"""The StateStore: the one writer of incident state.

`StateStore` is the design's interface; `DjangoStateStore` implements it on the Django ORM for
SQLite and PostgreSQL. Every public method is one transaction. Domain errors name the incident and
the statuses involved; a database IntegrityError never leaves this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, connections, router, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from incidents.choices import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    ActivityKind,
    ActorKind,
    OnCallState,
    Status,
    can_transition,
)
from incidents.errors import (
    FaultEventNotFound,
    IncidentNotFound,
    InvalidRecord,
    InvalidTransition,
    Refusal,
    ReportNotFound,
    SilenceNotActive,
    SilenceNotFound,
    StoreError,
)
from incidents.models import (
    DENORMALIZED_FIELDS,
    AgentExecution,
    FaultEvent,
    Incident,
    IncidentActivity,
    TriageReport,
)
from incidents.notifications import outbox as notifications
from incidents.notifications.models import Notification
from incidents.oncall import OnCallMixin
from incidents.quality import rollup
from incidents.quality.compare import headline
from incidents.quality.verdicts import VerdictMixin
from incidents.rendering import render_markdown
from incidents.store_batch import NewIncident, Outcome, write_batch
from incidents.store_history import load_history

__all__ = [
    "WORKER_LOST",
    "WORKER_LOST_TWICE",
    "DjangoStateStore",
    "FaultEventNotFound",
    "IncidentFilters",
    "IncidentNotFound",
    "InvalidRecord",
    "InvalidTransition",
    "Outcome",
    "Refusal",
    "ReportNotFound",
    "SilenceNotActive",
    "SilenceNotFound",
    "StateStore",
    "StoreError",
    "copy_fault_fields",
]

# What a run said of itself (output/result.json) and which profile ran: recorded with the run.
EXECUTION_RESULT_FIELDS = (
    "agent_profile",
    "agent",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cost_usd",
    "tool_calls",
    "result_json",
    "result_error",
)

# How the timeline names the default agent (TRIAGE_AGENT_COMMAND, no profile).
DEFAULT_AGENT = "default agent"

# How recover_lost_incidents marks (and counts) the executions of workers that died mid-run.
WORKER_LOST = "worker lost"
WORKER_LOST_TWICE = "worker lost twice"


@dataclass(frozen=True, kw_only=True)
class IncidentFilters:
    """What `list_incidents` narrows by; an empty field does not filter."""

    status: Sequence[str] = field(default_factory=tuple)
    cluster: str | None = None
    namespace: str | None = None
    resource_kind: str | None = None
    fault_type: str | None = None
    severity: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int | None = None
    offset: int = 0


@runtime_checkable
class StateStore(Protocol):
    """The design's eight operations on incident state."""

    def create_incident(
        self, event: FaultEvent, incident_id: uuid.UUID | str | None = None
    ) -> Incident: ...

    def update_incident_status(
        self, incident_id: uuid.UUID | str, status: str, started_at: datetime | None = None
    ) -> Incident: ...

    def complete_incident(
        self,
        incident_id: uuid.UUID | str,
        exit_code: int | None,
        failure_reason: str = "",
        status: str | None = None,
    ) -> Incident: ...

    def record_agent_execution(self, execution: AgentExecution) -> AgentExecution: ...

    def record_triage_report(self, report: TriageReport) -> TriageReport: ...

    def get_incident(self, incident_id: uuid.UUID | str) -> Incident | None: ...

    def list_incidents(self, filters: IncidentFilters | None = None) -> list[Incident]: ...

    def close(self) -> None: ...


def copy_fault_fields(event: FaultEvent, incident: Incident) -> None:
    """Copy the design's denormalized fields from a fault event onto an incident."""
    for name in DENORMALIZED_FIELDS:
        setattr(incident, name, getattr(event, name))


def _validate(instance, *, record: str, exclude: Iterable[str] = ()) -> None:
    """Field validation (choices, blanks, lengths) as an InvalidRecord naming record and fields.

    The database's constraints are not re-run here (Django would issue a query per constraint);
    the field rules mirror them, and the database has the last word.
    """
    try:
        instance.full_clean(
            exclude=list(exclude), validate_unique=False, validate_constraints=False
        )
    except ValidationError as error:
        raise InvalidRecord(record, error.message_dict) from None


def _short(value: object, limit: int = 255) -> str:
    """A timeline from/to value: text, cut to the column's length."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_id(incident_id: uuid.UUID | str) -> uuid.UUID | None:
    if isinstance(incident_id, uuid.UUID):
        return incident_id
    try:
        return uuid.UUID(str(incident_id))
    except ValueError:
        return None


class DjangoStateStore(OnCallMixin, VerdictMixin):
    """StateStore on the Django ORM (SQLite or PostgreSQL, per `using`)."""

    def __init__(self, using: str | None = None) -> None:
        self.using = using or router.db_for_write(Incident)

    # -- internals ------------------------------------------------------------------------
    def _incidents(self) -> QuerySet[Incident]:
        return Incident.objects.using(self.using)

    def _locked_incident(self, incident_id: uuid.UUID | str) -> Incident:
        """The incident row, locked until the caller's transaction ends."""
        parsed = _parse_id(incident_id)
        incident = (
            self._incidents().select_for_update().filter(pk=parsed).first() if parsed else None
        )
        if incident is None:
            raise IncidentNotFound(incident_id)
        return incident

    # -- the design's operations ------------------------------------------------------------
    def create_incident(
        self, event: FaultEvent, incident_id: uuid.UUID | str | None = None
    ) -> Incident:
        """Store the fault event if its fault_id is new, and a pending incident for it.

        A batch of one through `create_incidents`, so it behaves exactly as ingestion does: an
        existing fault event row is kept as it is; the incident copies the fields of `event`.
        When no incident is opened, what ingestion would write is written all the same (the
        repeat counted on the open incident, the match counted on the silence) and
        InvalidTransition says why, its `reason` one of Refusal.ONE_OPEN_PER_FAULT (the fault
        has an open incident: `details["open_incident_id"]`), Refusal.DUPLICATE (an incident for
        this fault and timestamp exists) or Refusal.SILENCED.

        Raises InvalidRecord for an event the schema refuses, InvalidTransition as above.
        """
        _validate(event, record=f"fault event {event.fault_id!r}")
        parsed = uuid.uuid4() if incident_id is None else _parse_id(incident_id)
        if parsed is None:
            raise InvalidRecord(f"incident {incident_id}", {"incident_id": ["is not a UUID"]})
        probe = Incident(incident_id=parsed, fault_id=event.fault_id, status=Status.PENDING)
        copy_fault_fields(event, probe)
        probe.last_seen_at = event.timestamp
        _validate(probe, record=f"incident {parsed}", exclude=["fault"])
        (outcome,) = self.create_incidents([event], incident_ids=[parsed])
        if outcome is Outcome.CREATED:
            event._state.adding = False
            return self._incidents().get(pk=parsed)
        if outcome is Outcome.SILENCED:
            raise InvalidTransition(
                parsed, "(new)", Status.PENDING, f"an active silence matches fault "
                f"{event.fault_id}", reason=Refusal.SILENCED,
            )  # fmt: skip
        existing = (
            self._incidents()
            .filter(fault_id=event.fault_id)
            .filter(Q(status__in=OPEN_STATUSES) | Q(timestamp=event.timestamp))
            .order_by("-created_at")
            .first()
        )
        existing_text = f"{existing.incident_id} ({existing.status})" if existing else "(gone)"
        if outcome is Outcome.DUPLICATE:
            raise InvalidTransition(
                parsed, "(new)", Status.PENDING, f"fault {event.fault_id} at "
                f"{event.timestamp.isoformat()} already has incident {existing_text}",
                reason=Refusal.DUPLICATE,
            )  # fmt: skip
        raise InvalidTransition(
            parsed,
            "(new)",
            Status.PENDING,
            f"fault {event.fault_id} already has open incident {existing_text}; the repeat was "
            "counted on it",
            reason=Refusal.ONE_OPEN_PER_FAULT,
            open_incident_id=existing.incident_id if existing else None,
        )

    def create_incidents(
        self,
        events: Sequence[FaultEvent],
        *,
        incident_ids: Sequence[uuid.UUID] | None = None,
        dry_run: bool = False,
    ) -> list[Outcome]:
        """Classify and write a batch of fault events, one outcome each, in one transaction.

        The one writer of new incidents (ingestion calls it per batch): see
        `incidents.store_batch` for the outcomes and what each writes, and for the bounded
        number of statements per batch. Events are not validated here (ingestion parsed them;
        `create_incident` validates its one). With `dry_run`, classifies and writes nothing.

        Raises InvalidRecord when the database refuses a row (the whole batch is rolled back;
        the caller may retry event by event); a lost connection propagates as DatabaseError.
        """
        ids = list(incident_ids) if incident_ids is not None else [uuid.uuid4() for _ in events]
        batch = [
            NewIncident(event, incident_id) for event, incident_id in zip(events, ids, strict=True)
        ]
        if not batch:
            return []
        try:
            with transaction.atomic(using=self.using):
                return write_batch(
                    self.using, batch, dry_run=dry_run, record=self._record_activities
                )
        except (IntegrityError, DataError) as error:
            text = str(error).strip().splitlines()[0] if str(error).strip() else "refused"
            raise InvalidRecord(
                f"batch of {len(batch)} fault events", {"__all__": [text]}
            ) from error

    # -- the timeline ---------------------------------------------------------------------------
    def _record_activity(
        self,
        kind: str,
        *,
        incident: Incident | None = None,
        silence=None,
        by=None,
        actor_kind: str | None = None,
        from_value: object = "",
        to_value: object = "",
        text: str = "",
    ) -> IncidentActivity:
        """Write one timeline row, inside the caller's transaction (it commits with the change
        or not at all). The one place a single row is written: a notifier hooks in here."""
        row = IncidentActivity(
            incident=incident,
            silence=silence,
            kind=kind,
            actor=by,
            actor_kind=actor_kind or (ActorKind.PERSON if by is not None else ActorKind.WORKER),
            at=timezone.now(),
            from_value=_short(from_value),
            to_value=_short(to_value),
            text=text,
        )
        self._record_activities([row])
        return row

    def _record_activities(self, rows: list[IncidentActivity]) -> None:
        """Write timeline rows in one INSERT, inside the caller's transaction."""
        if rows:
            IncidentActivity.objects.using(self.using).bulk_create(rows)

    def check_transition(self, incident: Incident, target: str) -> None:
        """Raise the InvalidTransition that moving `incident` to `target` would raise now.

        Its `reason`: Refusal.UNKNOWN_STATUS, ALREADY, LIFECYCLE, or ONE_OPEN_PER_FAULT (a move
        back to an open status while the fault has another open incident, named in the message
        and in `details["open_incident_id"]`). Reads without locking: a caller that acts on the
        answer holds the row's lock, or lets the store refuse the move itself.
        """
        pk, current = incident.incident_id, incident.status
        if target not in Status.values:
            raise InvalidTransition(
                pk, current, target, "unknown status", reason=Refusal.UNKNOWN_STATUS
            )
        if current == target:
            raise InvalidTransition(
                pk, current, target, f"it already is {target}", reason=Refusal.ALREADY
            )
        if not can_transition(current, target):
            raise InvalidTransition(pk, current, target, reason=Refusal.LIFECYCLE)
        if target in OPEN_STATUSES and current not in OPEN_STATUSES:
            other = (
                self._incidents()
                .filter(fault_id=incident.fault_id, status__in=OPEN_STATUSES)
                .exclude(pk=pk)
                .values_list("pk", "status")
                .first()
            )
            if other is not None:
                raise InvalidTransition(
                    pk, current, target,
                    f"fault {incident.fault_id} already has open incident {other[0]} ({other[1]})",
                    reason=Refusal.ONE_OPEN_PER_FAULT, open_incident_id=other[0],
                )  # fmt: skip

    def allowed_transitions(self, incident: Incident) -> list[str]:
        """The triage statuses `incident` may move to now, in lifecycle order: the lifecycle's
        moves less those `check_transition` refuses (at most one query)."""
        allowed = []
        for target in Status.values:
            try:
                self.check_transition(incident, target)
            except InvalidTransition:
                continue
            allowed.append(target)
        return allowed

    def update_incident_status(
        self,
        incident_id: uuid.UUID | str,
        status: str,
        started_at: datetime | None = None,
        *,
        by=None,
    ) -> Incident:
        """Move an incident to `status` if the lifecycle allows it; same status is a no-op.

        `by` is the person making the move (the admin); None is the triage worker. The move is
        a timeline row.

        Locks the row (select_for_update) between reading the current status and writing the new
        one, so two workers cannot both claim it and a requeue cannot overwrite a completion.
        Moving to investigating sets started_at (given, or now); to a terminal status sets
        completed_at; a requeue to pending clears the attempt's started_at, completed_at,
        exit_code and failure_reason (the executions keep the history).

        Raises IncidentNotFound, InvalidTransition.
        """
        with transaction.atomic(using=self.using):
            incident = self._locked_incident(incident_id)
            if status not in Status.values:
                raise InvalidTransition(
                    incident_id,
                    incident.status,
                    status,
                    "unknown status",
                    reason=Refusal.UNKNOWN_STATUS,
                )
            if incident.status == status:
                return incident
            if not can_transition(incident.status, status):
                raise InvalidTransition(incident_id, incident.status, status)
            previous = incident.status
            if status == Status.INVESTIGATING:
                incident.started_at = started_at or timezone.now()
            elif status in TERMINAL_STATUSES:
                incident.completed_at = timezone.now()
            elif status == Status.PENDING:
                incident.started_at = None
                incident.completed_at = None
                incident.exit_code = None
                incident.failure_reason = None
            incident.status = status
            self._save_status(incident)
            self._record_activity(
                ActivityKind.STATUS, incident=incident, by=by, from_value=previous, to_value=status
            )
        return incident

    def complete_incident(
        self,
        incident_id: uuid.UUID | str,
        exit_code: int | None,
        failure_reason: str = "",
        status: str | None = None,
        *,
        by=None,
    ) -> Incident:
        """Finish an incident: completed_at = now, the exit code, the failure reason, the status.

        `by` is the person (the admin); None is the triage worker. A timeline row.

        `status` defaults to resolved for exit code 0 and failed otherwise; a given status must be
        terminal. Locks the row like update_incident_status. Raises IncidentNotFound,
        InvalidTransition (also for an incident that is already finished).
        """
        target = status or (Status.RESOLVED if exit_code == 0 else Status.FAILED)
        with transaction.atomic(using=self.using):
            incident = self._locked_incident(incident_id)
            if target not in TERMINAL_STATUSES:
                raise InvalidTransition(
                    incident_id,
                    incident.status,
                    target,
                    "completion needs a terminal status",
                    reason=Refusal.NOT_TERMINAL,
                )
            if not can_transition(incident.status, target):
                reason = Refusal.ALREADY if incident.status == target else Refusal.LIFECYCLE
                raise InvalidTransition(incident_id, incident.status, target, reason=reason)
            previous = incident.status
            incident.status = target
            incident.completed_at = timezone.now()
            incident.exit_code = exit_code
            incident.failure_reason = failure_reason or None
            self._save_status(incident)
            text = f"exit code {exit_code}" if exit_code is not None else ""
            if failure_reason:
                text = f"{text}: {failure_reason}" if text else failure_reason
            self._record_activity(
                ActivityKind.STATUS,
                incident=incident,
                by=by,
                from_value=previous,
                to_value=target,
                text=text,
            )
            notifications.incident_completed(self.using, incident)
        return incident

    def _save_status(self, incident: Incident) -> None:
        try:
            incident.save(
                using=self.using,
                update_fields=[
                    "status",
                    "started_at",
                    "completed_at",
                    "exit_code",
                    "failure_reason",
                ],
            )
        except IntegrityError:
            # Only the one-open-incident rule can refuse a valid transition (a requeue while the
            # fault has another open incident). Roll back, then report it.
            raise InvalidTransition(
                incident.incident_id,
                "(stored)",
                incident.status,
                f"fault {incident.fault_id} already has an open incident",
                reason=Refusal.ONE_OPEN_PER_FAULT,
            ) from None

    def record_agent_execution(self, execution: AgentExecution) -> AgentExecution:
        """Insert or update (by execution_id) one agent execution. Idempotent.

        Raises IncidentNotFound for an unknown incident, InvalidRecord for invalid fields or an
        execution_id that belongs to another incident.
        """
        record = f"agent execution {execution.execution_id}"
        _validate(execution, record=record, exclude=["incident"])
        with transaction.atomic(using=self.using):
            if not self._incidents().filter(pk=execution.incident_id).exists():
                raise IncidentNotFound(execution.incident_id)
            owner = (
                AgentExecution.objects.using(self.using)
                .filter(pk=execution.execution_id)
                .values_list("incident_id", flat=True)
                .first()
            )
            if owner is not None and owner != execution.incident_id:
                # An execution's history stays with its incident (and its reports' incident).
                raise InvalidRecord(
                    record, {"incident": [f"the execution belongs to incident {owner}"]}
                )
            values = {
                name: getattr(execution, name)
                for name in (
                    "incident_id",
                    "started_at",
                    "completed_at",
                    "exit_code",
                    "error_message",
                    "log_paths",
                    *EXECUTION_RESULT_FIELDS,
                )
            }
            try:
                with transaction.atomic(using=self.using):
                    stored, _ = AgentExecution.objects.using(self.using).update_or_create(
                        execution_id=execution.execution_id, defaults=values
                    )
            except IntegrityError as error:
                raise InvalidRecord(record, {"__all__": [str(error)]}) from None
        return stored

    def record_triage_report(self, report: TriageReport) -> TriageReport:
        """Store a report (insert, or update by report_id), rendering report_html if missing.
        Its headline (root cause, confidence) is read and stored with it; a new report counts
        in the scoreboard's day counters, in the same transaction.

        The report's execution must belong to the report's incident. Raises IncidentNotFound,
        InvalidRecord.
        """
        record = f"triage report {report.report_id}"
        if not report.report_html:
            report.report_html = render_markdown(report.report_markdown)
        # What "same conclusion as last time" and report_ready's "unchanged" compare.
        report.headline_cause, report.headline_confidence = headline(report.report_markdown)
        _validate(report, record=record, exclude=["incident", "execution"])
        with transaction.atomic(using=self.using):
            incident = (
                self._incidents()
                .filter(pk=report.incident_id)
                .values_list("cluster", "fault_type")
                .first()
            )
            if incident is None:
                raise IncidentNotFound(report.incident_id)
            execution_incident = (
                AgentExecution.objects.using(self.using)
                .filter(pk=report.execution_id)
                .values_list("incident_id", flat=True)
                .first()
            )
            if execution_incident != report.incident_id:
                raise InvalidRecord(
                    record,
                    {
                        "execution": [
                            f"execution {report.execution_id} is not an execution of incident "
                            f"{report.incident_id}"
                        ]
                    },
                )
            is_new = not TriageReport.objects.using(self.using).filter(pk=report.pk).exists()
            try:
                with transaction.atomic(using=self.using):
                    report.save(using=self.using)
            except IntegrityError as error:
                raise InvalidRecord(record, {"__all__": [str(error)]}) from None
            if is_new:  # the scoreboard's count of the day's reports
                rollup.bump(
                    self.using, day=rollup.day_of(report.generated_at), cluster=incident[0],
                    fault_type=incident[1], reports=1,
                )  # fmt: skip
            notifications.report_recorded(self.using, report)
        return report

    def get_incident(self, incident_id: uuid.UUID | str) -> Incident | None:
        """The incident, or None for an unknown or malformed id."""
        parsed = _parse_id(incident_id)
        if parsed is None:
            return None
        return self._incidents().filter(pk=parsed).first()

    def list_incidents(self, filters: IncidentFilters | None = None) -> list[Incident]:
        """Incidents matching `filters`, newest first."""
        filters = filters or IncidentFilters()
        queryset = self._incidents().order_by("-created_at", "-incident_id")
        if filters.status:
            queryset = queryset.filter(status__in=list(filters.status))
        exact = {
            "cluster": filters.cluster,
            "resource_namespace": filters.namespace,
            "resource_kind": filters.resource_kind,
            "fault_type": filters.fault_type,
            "severity": filters.severity,
        }
        queryset = queryset.filter(**{name: value for name, value in exact.items() if value})
        if filters.created_after:
            queryset = queryset.filter(created_at__gte=filters.created_after)
        if filters.created_before:
            queryset = queryset.filter(created_at__lt=filters.created_before)
        end = filters.offset + filters.limit if filters.limit is not None else None
        return list(queryset[filters.offset : end])

    def close(self) -> None:
        connections[self.using].close()

    def load_history(self, *, flush: bool = False):
        """The bulk loader of whole histories into empty tables (demo and benchmark data): a
        context manager yielding a `store_history.HistoryLoader`, one transaction. Rows must
        already obey every rule; the database's constraints still check them.

        Raises store_history.DatabaseNotEmpty when a table has rows (unless `flush`).
        """
        return load_history(self.using, flush=flush)

    # -- operations beyond the design's eight, used by the worker and the admin -----------------
    def claim_next_incident(self, started_at: datetime | None = None) -> Incident | None:
        """Take the oldest pending incident (FIFO on created_at) and move it to investigating.

        One transaction. On PostgreSQL the row is locked with SKIP LOCKED, so concurrent workers
        on any number of machines each take a different incident and never wait on each other.
        SQLite has no row locks; its IMMEDIATE transactions serialize writers instead.
        Returns None when nothing is pending.
        """
        with transaction.atomic(using=self.using):
            incident = (
                self._incidents()
                .select_for_update(skip_locked=True)
                .filter(status=Status.PENDING)
                .order_by("created_at", "incident_id")
                .first()
            )
            if incident is None:
                return None
            return self.update_incident_status(
                incident.incident_id, Status.INVESTIGATING, started_at=started_at
            )

    def holds_claim(self, incident_id: uuid.UUID | str, started_at: datetime | None) -> bool:
        """Whether the incident is still investigating since `started_at`: the caller's claim.

        Locks the row until the caller's transaction ends, so no requeue, recovery or second
        claim can slip between this check and the writes that depend on it. Call it inside
        `transaction.atomic(using=store.using)`; outside one the lock ends with the check.
        """
        parsed = _parse_id(incident_id)
        if parsed is None or started_at is None:
            return False
        with transaction.atomic(using=self.using):
            held = (
                self._incidents()
                .select_for_update()
                .filter(pk=parsed, status=Status.INVESTIGATING, started_at=started_at)
                .values_list("pk", flat=True)
                .first()
            )
        return held is not None

    def correct_fault_event(
        self, fault_id: str, /, *, by=None, **changes: object
    ) -> tuple[FaultEvent, int]:
        """Correct a fault event's fields and copy them onto all its incidents, atomically.

        Only the denormalized fields (and received_at) may change; the fault id never does.
        Locks the fault event row so two corrections apply one after the other. Returns the event
        and the number of incidents updated. Raises InvalidRecord, FaultEventNotFound.
        """
        allowed = set(DENORMALIZED_FIELDS) | {"received_at"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidRecord(
                f"fault event {fault_id!r}",
                {name: ["cannot be corrected"] for name in unknown},
            )
        with transaction.atomic(using=self.using):
            event = (
                FaultEvent.objects.using(self.using).select_for_update().filter(pk=fault_id).first()
            )
            if event is None:
                raise FaultEventNotFound(fault_id)
            for name, value in changes.items():
                setattr(event, name, value)
            _validate(event, record=f"fault event {fault_id!r}")
            event.save(using=self.using)
            # Only what was corrected: the other copies may rightly differ per occurrence.
            copied = {name: getattr(event, name) for name in changes if name in DENORMALIZED_FIELDS}
            updated = self._incidents().filter(fault_id=fault_id).update(**copied) if copied else 0
            if copied:
                text = "; ".join(f"{name} = {_short(value, 80)}" for name, value in copied.items())
                now = timezone.now()
                self._record_activities(
                    [
                        IncidentActivity(
                            incident_id=pk,
                            kind=ActivityKind.FAULT_CORRECTED,
                            actor=by,
                            actor_kind=ActorKind.PERSON if by is not None else ActorKind.WORKER,
                            at=now,
                            text=text,
                        )
                        for pk in self._incidents()
                        .filter(fault_id=fault_id)
                        .values_list("pk", flat=True)
                    ]
                )
        return event, updated

    def recover_lost_incidents(
        self, started_before: datetime, *, now: datetime | None = None
    ) -> list[Incident]:
        """Return incidents a dead worker left investigating to the queue, once.

        An incident still `investigating` with `started_at` before `started_before` has outlived
        any agent run (the caller passes now - timeout - grace), so its worker is gone. Each one
        gets its open execution closed (or, if the worker died before starting the agent, a new
        one) with an error message starting with WORKER_LOST, which is how losses are counted:
        the first loss requeues the incident to pending, the second finishes it as agent_failed,
        "worker lost twice", so an incident that kills its workers cannot loop forever.

        One transaction per incident; the row is locked with SKIP LOCKED so two workers
        recovering at once never handle the same incident twice. Returns the incidents handled,
        with their new status.
        """
        now = now or timezone.now()
        candidates = list(
            self._incidents()
            .filter(status=Status.INVESTIGATING, started_at__lt=started_before)
            .order_by("started_at")
            .values_list("pk", flat=True)
        )
        handled = []
        for pk in candidates:
            with transaction.atomic(using=self.using):
                incident = (
                    self._incidents()
                    .select_for_update(skip_locked=True)
                    .filter(pk=pk, status=Status.INVESTIGATING, started_at__lt=started_before)
                    .first()
                )
                # None: finished meanwhile, or another worker is recovering it (the filter
                # excludes a missing started_at, which the type checker cannot see).
                if incident is None or incident.started_at is None:
                    continue
                executions = AgentExecution.objects.using(self.using).filter(incident_id=pk)
                losses = executions.filter(error_message__startswith=WORKER_LOST).count() + 1
                message = (
                    f"{WORKER_LOST}: investigating since {incident.started_at.isoformat()} "
                    f"with no result by {started_before.isoformat()} (loss {losses})"
                )
                closed = executions.filter(
                    completed_at__isnull=True, started_at__gte=incident.started_at
                ).update(completed_at=now, error_message=message)
                if not closed:
                    AgentExecution.objects.using(self.using).create(
                        incident_id=pk,
                        started_at=incident.started_at,
                        completed_at=max(now, incident.started_at),
                        error_message=message,
                    )
                if losses == 1:
                    handled.append(self.update_incident_status(pk, Status.PENDING))
                else:
                    handled.append(
                        self.complete_incident(
                            pk, None, failure_reason=WORKER_LOST_TWICE, status=Status.AGENT_FAILED
                        )
                    )
        return handled

    def correct_incident_outcome(
        self,
        incident_id: uuid.UUID | str,
        *,
        exit_code: int | None,
        failure_reason: str | None,
        by=None,
    ) -> Incident:
        """Correct the recorded exit code and failure reason of a finished incident (the admin).

        Status and timestamps stay as they are. Locks the row like update_incident_status, so a
        requeue cannot slip in between the check and the write. Raises IncidentNotFound, and
        InvalidTransition for an open incident: it has no outcome to correct yet.
        """
        with transaction.atomic(using=self.using):
            incident = self._locked_incident(incident_id)
            if incident.status not in TERMINAL_STATUSES:
                raise InvalidTransition(
                    incident_id,
                    incident.status,
                    incident.status,
                    "only a finished incident has an outcome to correct",
                    reason=Refusal.NO_OUTCOME,
                )
            before = f"exit code {incident.exit_code}, reason {incident.failure_reason or '—'}"
            incident.exit_code = exit_code
            incident.failure_reason = failure_reason or None
            self._save_status(incident)
            self._record_activity(
                ActivityKind.OUTCOME_CORRECTED,
                incident=incident,
                by=by,
                from_value=before,
                to_value=f"exit code {exit_code}, reason {failure_reason or '—'}",
            )
        return incident

    # -- re-runs with an agent profile (the run-cost issue) -----------------------------------
    def request_rerun(
        self, incident_id: uuid.UUID | str, *, by: object, profile: str = ""
    ) -> Incident:
        """Queue the incident for another triage run with agent profile `profile` ("" is the
        default agent), recorded on the incident; the worker runs that profile's command and
        records it on the execution. Earlier executions and reports stay.

        A finished incident is requeued to pending; a pending one just gets the profile. One
        being investigated is refused (its run is not over). Locks the row between the status
        check and the write. `by` (the user asking) is on the timeline's rows: the requeue's, and
        the re-run's (from the previous profile to this one).
        Raises IncidentNotFound, InvalidTransition, InvalidRecord (an unknown profile).
        """
        from incidents.profiles import agent_profiles

        known = agent_profiles()
        if profile and profile not in known:
            names = ", ".join(sorted(known)) or "none configured"
            raise InvalidRecord(
                f"re-run of incident {incident_id}",
                {"agent_profile": [f"unknown profile {profile!r} (known: {names})"]},
            )
        with transaction.atomic(using=self.using):
            incident = self._locked_incident(incident_id)
            if incident.status == Status.INVESTIGATING:
                raise InvalidTransition(
                    incident_id, incident.status, Status.PENDING, "an agent is running it now"
                )
            previous = incident.agent_profile
            if incident.status != Status.PENDING:
                incident = self.update_incident_status(incident.incident_id, Status.PENDING, by=by)
            incident.agent_profile = profile
            incident.save(using=self.using, update_fields=["agent_profile"])
            self._record_activity(
                ActivityKind.RERUN,
                incident=incident,
                by=by,
                from_value=previous or DEFAULT_AGENT,
                to_value=profile or DEFAULT_AGENT,
            )
        return incident

    # --- retention (purge_history) ---------------------------------------------------------
    def purge_incidents(self, *, older_than: datetime, limit: int = 1000) -> PurgedBatch:
        """Delete at most `limit` finished incidents that were created and completed before
        `older_than`, oldest first, with their reports and executions, and the fault events
        this leaves without any incident. One transaction: a batch is deleted whole or not at all.

        Never an open incident: the rows are chosen by `purgeable_incidents()` and locked
        (`FOR UPDATE SKIP LOCKED`), so one that an admin is requeueing right now is skipped, and
        none can be requeued between the choice and the delete. The locks last one batch, so a
        caller that loops over batches never holds them long. Workspace folders are files, not
        rows: the caller removes `PurgedBatch.incident_ids`' folders after this returns.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        with transaction.atomic(using=self.using):
            chosen = list(
                purgeable_incidents(older_than, using=self.using)
                .select_for_update(skip_locked=True)
                .order_by("created_at")
                .values_list("incident_id", "fault_id")[:limit]
            )
            if not chosen:
                return PurgedBatch()
            incident_ids = [incident_id for incident_id, _ in chosen]
            fault_ids = {fault_id for _, fault_id in chosen}
            # Children first, then the incidents, then the faults left without any: each one
            # DELETE (the foreign keys are PROTECT, so nothing cascades and the database checks
            # every reference). _raw_delete skips the ORM's collector, which would first load
            # every row of the batch (context included) to look for cascades there are none of.
            reports = TriageReport.objects.filter(incident_id__in=incident_ids)._raw_delete(
                self.using
            )
            executions = AgentExecution.objects.filter(incident_id__in=incident_ids)._raw_delete(
                self.using
            )
            # The timeline and the outbox are CASCADE in Django only (not in the database), so
            # a raw delete of their incidents would break the foreign key: they go first.
            IncidentActivity.objects.filter(incident_id__in=incident_ids)._raw_delete(self.using)
            Notification.objects.filter(incident_id__in=incident_ids)._raw_delete(self.using)
            incidents = Incident.objects.filter(incident_id__in=incident_ids)._raw_delete(
                self.using
            )
            orphans = FaultEvent.objects.filter(fault_id__in=fault_ids).exclude(
                Exists(Incident.objects.filter(fault_id=OuterRef("fault_id")))
            )
            faults = orphans._raw_delete(self.using)
        return PurgedBatch(
            incident_ids=incident_ids,
            incidents=incidents,
            executions=executions,
            reports=reports,
            fault_events=faults,
        )


@dataclass
class PurgedBatch:
    """What one `purge_incidents` call deleted (all zero: nothing was left to purge)."""

    incident_ids: list[uuid.UUID] = field(default_factory=list)
    incidents: int = 0
    executions: int = 0
    reports: int = 0
    fault_events: int = 0


def purgeable_incidents(older_than: datetime, *, using: str | None = None) -> QuerySet[Incident]:
    """Incidents that retention may delete: finished (a terminal triage status), created and
    completed before `older_than`. Served by incidents_status_created_idx, one status at a time.

    Only incidents closed on call: a finished incident that nobody has closed yet (open or
    acknowledged) is still someone's work and is kept, however old.
    """
    return Incident.objects.using(using).filter(
        status__in=sorted(TERMINAL_STATUSES),
        oncall_state=OnCallState.CLOSED,
        created_at__lt=older_than,
        completed_at__lt=older_than,
    )

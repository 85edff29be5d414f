"""The on-call half of the store: acknowledge, assign, note, close, reopen; silences.

`OnCallMixin` is part of `incidents.store.DjangoStateStore` (use it from there). Every method is
one transaction that locks the row it reads before writing it, writes one timeline row through
`_record_activity` (the seam notifications hook into), and raises the store's typed errors.
None of them touches the triage status: a person may close an incident in any triage status.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from incidents.choices import ActivityKind, OnCallState, Resolution
from incidents.errors import (
    InvalidRecord,
    InvalidTransition,
    Refusal,
    SilenceNotActive,
    SilenceNotFound,
)
from incidents.models import Incident, Silence
from incidents.notifications import outbox as notifications
from incidents.notifications.kinds import EventKind

NOTE_MAX = 10_000  # characters: a note is a paragraph or a pasted log excerpt, not a file

_ONCALL_FIELDS = (
    "oncall_state",
    "acknowledged_at",
    "acknowledged_by",
    "assignee",
    "closed_at",
    "closed_by",
    "resolution",
    "resolution_note",
)


def _who(user: Any) -> str:
    if user is None:
        return "(nobody)"
    return user.get_full_name() or user.get_username()


def _require_person(record: str, user: Any, field: str = "by") -> None:
    if user is None or getattr(user, "pk", None) is None:
        raise InvalidRecord(record, {field: ["a saved user is required"]})


class OnCallMixin:
    """Methods of DjangoStateStore; they use its `using`, `_locked_incident`, `_record_activity`."""

    using: str

    def _save_oncall(self, incident: Incident) -> None:
        try:
            with transaction.atomic(using=self.using):
                incident.save(using=self.using, update_fields=_ONCALL_FIELDS)
        except IntegrityError as error:  # a rule the checks above missed: never a raw error
            raise InvalidRecord(f"incident {incident.pk}", {"__all__": [str(error)]}) from None

    def acknowledge_incident(self, incident_id: uuid.UUID | str, *, by: Any) -> Incident:
        """Open -> acknowledged, by `by`, now. Locks the row: of two responders acknowledging at
        once, one wins and the other gets InvalidTransition (Refusal.ALREADY) naming the winner.

        Raises IncidentNotFound, InvalidRecord (no user), InvalidTransition (Refusal.CLOSED for
        a closed incident: reopen it first; Refusal.ALREADY when already acknowledged).
        """
        _require_person(f"acknowledgement of incident {incident_id}", by)
        with transaction.atomic(using=self.using):
            incident = self._locked_incident(incident_id)  # type: ignore[attr-defined]
            state = incident.oncall_state
            if state == OnCallState.CLOSED:
                raise InvalidTransition(
                    incident_id, state, OnCallState.ACKNOWLEDGED,
                    "it is closed; reopen it first", reason=Refusal.CLOSED,
                )  # fmt: skip
            if state == OnCallState.ACKNOWLEDGED:
                raise InvalidTransition(
                    incident_id, state, OnCallState.ACKNOWLEDGED,
                    f"already acknowledged by {_who(incident.acknowledged_by)} at "
                    f"{incident.acknowledged_at:%Y-%m-%d %H:%M:%S} UTC", reason=Refusal.ALREADY,
                )  # fmt: skip
            incident.oncall_state = OnCallState.ACKNOWLEDGED
            incident.acknowledged_at = timezone.now()
            incident.acknowledged_by = by
            self._save_oncall(incident)
            self._record_activity(  # type: ignore[attr-defined]
                ActivityKind.ACKNOWLEDGED, incident=incident, by=by,
                from_value=state, to_value=OnCallState.ACKNOWLEDGED,
            )  # fmt: skip
            notifications.enqueue(EventKind.ACKNOWLEDGED, incident, using=self.using, by=_who(by))
        return incident

    def assign_incident(self, incident_id: uuid.UUID | str, *, assignee: Any, by: Any) -> Incident:
        """Give the incident to `assignee` (a user; None unassigns). Locks the row.

        Raises IncidentNotFound, InvalidRecord (no acting user, or an unsaved assignee),
        InvalidTransition (Refusal.CLOSED; Refusal.ALREADY when it already is theirs).
        """
        record = f"assignment of incident {incident_id}"
        _require_person(record, by)
        if assignee is not None:
            _require_person(record, assignee, "assignee")
        with transaction.atomic(using=self.using):
            incident = self._locked_incident(incident_id)  # type: ignore[attr-defined]
            if incident.oncall_state == OnCallState.CLOSED:
                raise InvalidTransition(
                    incident_id, OnCallState.CLOSED, "assigned",
                    "it is closed; reopen it first", reason=Refusal.CLOSED,
                )  # fmt: skip
            previous = incident.assignee
            if (previous.pk if previous else None) == (assignee.pk if assignee else None):
                raise InvalidTransition(
                    incident_id, "assigned", "assigned",
                    f"it is already assigned to {_who(assignee)}", reason=Refusal.ALREADY,
                )  # fmt: skip
            incident.assignee = assignee
            self._save_oncall(incident)
            self._record_activity(  # type: ignore[attr-defined]
                ActivityKind.ASSIGNED, incident=incident, by=by,
                from_value=_who(previous) if previous else "",
                to_value=_who(assignee) if assignee else "",
            )  # fmt: skip
        return incident

    def add_incident_note(self, incident_id: uuid.UUID | str, *, text: str, by: Any) -> Incident:
        """A note on the incident's timeline, in any state. Locks the row (notes and state
        changes of one incident are recorded in the order they happened).

        Raises IncidentNotFound, InvalidRecord (no user; empty or longer than NOTE_MAX).
        """
        record = f"note on incident {incident_id}"
        _require_person(record, by)
        text = (text or "").strip()
        if not text:
            raise InvalidRecord(record, {"text": ["a note needs some text"]})
        if len(text) > NOTE_MAX:
            raise InvalidRecord(record, {"text": [f"at most {NOTE_MAX} characters"]})
        with transaction.atomic(using=self.using):
            incident = self._locked_incident(incident_id)  # type: ignore[attr-defined]
            self._record_activity(ActivityKind.NOTE, incident=incident, by=by, text=text)  # type: ignore[attr-defined]
        return incident

    def close_incident(
        self, incident_id: uuid.UUID | str, *, by: Any, resolution: str, note: str = ""
    ) -> Incident:
        """Open or acknowledged -> closed, with a resolution (Resolution) and an optional note.
        The triage status is left as it is, whatever it is. Locks the row.

        Raises IncidentNotFound, InvalidRecord (no user; an unknown resolution),
        InvalidTransition (Refusal.ALREADY when it is closed).
        """
        record = f"closing of incident {incident_id}"
        _require_person(record, by)
        if resolution not in Resolution.values:
            choices = ", ".join(Resolution.values)
            raise InvalidRecord(record, {"resolution": [f"{resolution!r} is not one of {choices}"]})
        note = (note or "").strip()
        if len(note) > NOTE_MAX:
            raise InvalidRecord(record, {"note": [f"at most {NOTE_MAX} characters"]})
        with transaction.atomic(using=self.using):
            incident = self._locked_incident(incident_id)  # type: ignore[attr-defined]
            state = incident.oncall_state
            if state == OnCallState.CLOSED:
                raise InvalidTransition(
                    incident_id, state, OnCallState.CLOSED,
                    f"already closed by {_who(incident.closed_by)} as "
                    f"{Resolution(incident.resolution).label}", reason=Refusal.ALREADY,
                )  # fmt: skip
            incident.oncall_state = OnCallState.CLOSED
            incident.closed_at = timezone.now()
            incident.closed_by = by
            incident.resolution = resolution
            incident.resolution_note = note
            self._save_oncall(incident)
            label = Resolution(resolution).label
            self._record_activity(  # type: ignore[attr-defined]
                ActivityKind.CLOSED, incident=incident, by=by, from_value=state,
                to_value=OnCallState.CLOSED, text=f"{label}: {note}" if note else label,
            )  # fmt: skip
            notifications.enqueue(
                EventKind.CLOSED, incident, using=self.using,
                by=_who(by), resolution=label, note=note,
            )  # fmt: skip
        return incident

    def reopen_incident(self, incident_id: uuid.UUID | str, *, by: Any, note: str = "") -> Incident:
        """Closed -> open: the closing and the acknowledgement are cleared (the timeline keeps
        them); the assignee stays. Locks the row.

        Raises IncidentNotFound, InvalidRecord (no user), InvalidTransition (Refusal.NOT_CLOSED).
        """
        _require_person(f"reopening of incident {incident_id}", by)
        note = (note or "").strip()[:NOTE_MAX]
        with transaction.atomic(using=self.using):
            incident = self._locked_incident(incident_id)  # type: ignore[attr-defined]
            state = incident.oncall_state
            if state != OnCallState.CLOSED:
                raise InvalidTransition(
                    incident_id, state, OnCallState.OPEN,
                    "only a closed incident can be reopened", reason=Refusal.NOT_CLOSED,
                )  # fmt: skip
            was = Resolution(incident.resolution).label
            incident.oncall_state = OnCallState.OPEN
            incident.closed_at = incident.closed_by = incident.acknowledged_at = None
            incident.acknowledged_by = None
            incident.resolution = incident.resolution_note = ""
            self._save_oncall(incident)
            self._record_activity(  # type: ignore[attr-defined]
                ActivityKind.REOPENED, incident=incident, by=by, from_value=f"closed ({was})",
                to_value=OnCallState.OPEN, text=note,
            )  # fmt: skip
        return incident

    # -- silences ---------------------------------------------------------------------------
    def create_silence(
        self,
        *,
        by: Any,
        ends_at: datetime,
        comment: str,
        cluster: str | None = None,
        namespace: str | None = None,
        resource_kind: str | None = None,
        fault_type: str | None = None,
        resource_name: str | None = None,
    ) -> Silence:
        """A silence from now until `ends_at` matching every field given (exact, or a prefix
        with a trailing `*`); at least one field. Returns the saved silence.

        Raises InvalidRecord naming the field (no user, an end not in the future, no comment,
        no field, a `*` anywhere but at the end).
        """
        record = "silence"
        _require_person(record, by)
        now = timezone.now()
        silence = Silence(
            created_by=by, created_at=now, starts_at=now, ends_at=ends_at,
            comment=(comment or "").strip(), cluster=(cluster or "").strip(),
            namespace=(namespace or "").strip(), resource_kind=(resource_kind or "").strip(),
            fault_type=(fault_type or "").strip(), resource_name=(resource_name or "").strip(),
        )  # fmt: skip
        errors = _silence_errors(silence, now)
        if errors:
            raise InvalidRecord(record, errors)
        with transaction.atomic(using=self.using):
            try:
                with transaction.atomic(using=self.using):
                    silence.save(using=self.using, force_insert=True)
            except IntegrityError as error:
                raise InvalidRecord(record, {"__all__": [str(error)]}) from None
            self._record_activity(  # type: ignore[attr-defined]
                ActivityKind.SILENCE_CREATED, silence=silence, by=by,
                to_value=f"until {ends_at:%Y-%m-%d %H:%M} UTC",
                text=f"{silence.matcher_text}: {silence.comment}",
            )  # fmt: skip
        return silence

    def expire_silence(self, silence_id: int | str, *, by: Any) -> Silence:
        """End an active silence now. Locks the row.

        Raises SilenceNotFound, InvalidRecord (no user), SilenceNotActive (already ended).
        """
        _require_person(f"silence {silence_id}", by)
        with transaction.atomic(using=self.using):
            try:
                silence = (
                    Silence.objects.using(self.using)
                    .select_for_update()
                    .filter(pk=int(silence_id))
                    .first()
                )
            except (TypeError, ValueError):
                silence = None
            if silence is None:
                raise SilenceNotFound(silence_id)
            now = timezone.now()
            if not silence.is_active(now):
                raise SilenceNotActive(silence.pk, silence.expired_at or silence.ends_at)
            silence.expired_at = now
            silence.expired_by = by
            silence.save(using=self.using, update_fields=["expired_at", "expired_by"])
            self._record_activity(  # type: ignore[attr-defined]
                ActivityKind.SILENCE_EXPIRED, silence=silence, by=by,
                from_value=f"until {silence.ends_at:%Y-%m-%d %H:%M} UTC",
                to_value=f"ended {now:%Y-%m-%d %H:%M} UTC", text=silence.matcher_text,
            )  # fmt: skip
        return silence


def _silence_errors(silence: Silence, now: datetime) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    try:
        silence.full_clean(
            exclude=["created_by", "expired_by"], validate_unique=False, validate_constraints=False
        )
    except ValidationError as error:
        errors.update(error.message_dict)
    ends_at = silence.ends_at
    if isinstance(ends_at, datetime) and timezone.is_naive(ends_at):
        errors.setdefault("ends_at", []).append("must be an aware datetime (UTC)")
    elif isinstance(ends_at, datetime) and ends_at <= now:
        errors.setdefault("ends_at", []).append("must be in the future")
    if not any(getattr(silence, name) for name in Silence.MATCH_FIELDS):
        errors.setdefault("__all__", []).append(
            "give at least one of cluster, namespace, kind, fault type or resource name"
        )
    for name in Silence.MATCH_FIELDS:
        value = getattr(silence, name)
        if "*" in value[:-1]:
            errors.setdefault(name, []).append("`*` may only end a value (a prefix match)")
    return errors

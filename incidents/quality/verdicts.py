"""The store's verdict method: a person's judgement of a triage report.

`VerdictMixin` is part of `incidents.store.DjangoStateStore` (use it from there).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from incidents.choices import VERDICTS_NEEDING_CAUSE, ActivityKind, Verdict
from incidents.errors import InvalidRecord, ReportNotFound
from incidents.models import ReportVerdict, TriageReport
from incidents.oncall import _require_person
from incidents.quality.rollup import bump, day_of

CAUSE_MAX = 2_000  # characters: "the actual root cause in a sentence", with room to spare
NOTE_MAX = 10_000


def _parse(report_id: uuid.UUID | str) -> uuid.UUID | None:
    if isinstance(report_id, uuid.UUID):
        return report_id
    try:
        return uuid.UUID(str(report_id))
    except ValueError:
        return None


def verdict_errors(verdict: str, actual_cause: str, note: str) -> dict[str, list[str]]:
    """What is wrong with a verdict's fields, by field name (empty: nothing)."""
    errors: dict[str, list[str]] = {}
    if verdict not in Verdict.values:
        errors["verdict"] = [f"{verdict!r} is not one of {', '.join(Verdict.values)}"]
    elif verdict in VERDICTS_NEEDING_CAUSE and not actual_cause:
        label = Verdict(verdict).label.lower()
        errors["actual_cause"] = [f"say what the actual root cause was when it is {label}"]
    if len(actual_cause) > CAUSE_MAX:
        errors.setdefault("actual_cause", []).append(f"at most {CAUSE_MAX} characters")
    if len(note) > NOTE_MAX:
        errors["note"] = [f"at most {NOTE_MAX} characters"]
    return errors


def _history_text(row: ReportVerdict) -> str:
    parts = [f"report {row.report_id}"]
    if row.actual_cause:
        parts.append(f"actual cause: {row.actual_cause}")
    if row.note:
        parts.append(f"note: {row.note}")
    return "; ".join(parts)


class VerdictMixin:
    """Methods of DjangoStateStore; they use its `using`, `_locked_incident`, `_record_activity`."""

    using: str

    def record_report_verdict(
        self,
        report_id: uuid.UUID | str,
        *,
        by: Any,
        verdict: str,
        actual_cause: str = "",
        note: str = "",
    ) -> ReportVerdict:
        """Record (or change) `by`'s verdict on a report, in one transaction.

        One verdict per person per report: a second call changes it in place. Each change is a
        timeline row of the report's incident (the history: what it was, what it became, the
        cause and the note); a call that changes nothing writes nothing. Locks the incident's
        row first, so two verdicts on one incident (or two tabs of one person) are written and
        timed one after the other, never as a lost update or a unique-constraint race.

        Raises ReportNotFound, InvalidRecord naming the field (no user; `verdict` not one of
        Verdict; `actual_cause` missing for partly_correct or wrong; a text too long).
        """
        record = f"verdict on report {report_id}"
        _require_person(record, by)
        actual_cause = (actual_cause or "").strip()
        note = (note or "").strip()
        errors = verdict_errors(verdict, actual_cause, note)
        if errors:
            raise InvalidRecord(record, errors)
        parsed = _parse(report_id)
        with transaction.atomic(using=self.using):
            report = (
                TriageReport.objects.using(self.using)
                .filter(pk=parsed)
                .only("report_id", "incident_id", "generated_at")
                .first()
                if parsed
                else None
            )
            if report is None:
                raise ReportNotFound(report_id)
            incident = self._locked_incident(report.incident_id)  # type: ignore[attr-defined]
            verdicts = ReportVerdict.objects.using(self.using).filter(report_id=report.pk)
            row = verdicts.filter(user_id=by.pk).first()
            before = row.verdict if row else ""
            if row and (row.verdict, row.actual_cause, row.note) == (verdict, actual_cause, note):
                return row
            now = timezone.now()
            deltas = {verdict: 1}
            if row is None:
                # The scoreboard's copies, taken once: the counters of quality_daily were added
                # under them, and a change of verdict moves counts within the same row.
                row = ReportVerdict(
                    report_id=report.pk, user=by, created_at=now, cluster=incident.cluster,
                    fault_type=incident.fault_type, generated_at=report.generated_at,
                )  # fmt: skip
                deltas["judged"] = 0 if verdicts.exists() else 1
            else:
                deltas[before] = deltas.get(before, 0) - 1
            row.verdict, row.actual_cause, row.note, row.updated_at = (
                verdict, actual_cause, note, now,
            )  # fmt: skip
            try:
                with transaction.atomic(using=self.using):
                    row.save(using=self.using)
            except IntegrityError as error:  # a rule the checks above missed: never a raw error
                raise InvalidRecord(record, {"__all__": [str(error)]}) from None
            bump(
                self.using, day=day_of(row.generated_at), cluster=row.cluster,
                fault_type=row.fault_type, **deltas,
            )  # fmt: skip
            self._record_activity(  # type: ignore[attr-defined]
                ActivityKind.VERDICT, incident=incident, by=by,
                from_value=Verdict(before).label if before else "",
                to_value=Verdict(verdict).label, text=_history_text(row),
            )  # fmt: skip
        return row

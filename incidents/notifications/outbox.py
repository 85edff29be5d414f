"""The outbox: rows written beside the state change they announce, claimed and settled by the
deliverers.

Writing (`enqueue` and the store's hooks `incidents_opened`, `report_recorded`,
`incident_completed`) must happen inside the transaction that makes the change: the rows commit
or roll back with it. Each call reads the enabled channels once and routes there (event,
severity, cluster), then inserts one row per routed channel with `ON CONFLICT DO NOTHING` on
(channel, dedup_key), so writing the same event twice sends it once. With no channel, a call is
one small query; with no incident opened, none. Opened incidents, which ingestion writes by the
thousand, are the exception: their batch is one `NotificationBatch` row, routed a moment later
by a deliverer (`fan_out`), in one transaction that writes the rows and deletes the batch.

Claiming takes one due row with `SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite's
IMMEDIATE transactions serialize instead) and leases it to one deliverer until `locked_until`.
A result is written only while the lease is still that deliverer's; a deliverer killed mid-send
leaves the row to be taken again once the lease ends, so nothing is lost (at least once).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import router, transaction
from django.db.models import Min, Q
from django.utils import timezone

from incidents.choices import OnCallState
from incidents.models import (
    Incident,
    Notification,
    NotificationBatch,
    NotificationChannel,
    TriageReport,
)
from incidents.notifications.channels import routes
from incidents.notifications.kinds import DeliveryStatus, EventKind


class OutsideTransaction(RuntimeError):
    """An outbox write outside a transaction could commit without the change it announces."""


def _using(using: str | None) -> str:
    using = using or router.db_for_write(Notification)
    if not transaction.get_connection(using).in_atomic_block:
        raise OutsideTransaction("notifications are written inside the change's transaction")
    return using


def _channels(using: str, event: str) -> list[NotificationChannel]:
    """The enabled channels (one query); those whose event list leaves `event` out are dropped."""
    channels = NotificationChannel.objects.using(using).filter(enabled=True)
    return [channel for channel in channels if not channel.events or event in channel.events]


def _closed(incident: Incident) -> bool:
    return incident.oncall_state == OnCallState.CLOSED


def _jsonable(detail: dict) -> dict:
    return json.loads(json.dumps(detail, cls=DjangoJSONEncoder))


def _insert(using: str, rows: list[Notification]) -> int:
    if rows:
        Notification.objects.using(using).bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def enqueue(
    event: str,
    incident: Incident | None = None,
    *,
    using: str | None = None,
    dedup_key: str | None = None,
    skip: Callable[[NotificationChannel], bool] | None = None,
    **detail: object,
) -> int:
    """Write `event`'s outbox rows for every channel it routes to; call inside the transaction
    that makes the change (raises OutsideTransaction otherwise).

    `detail` (JSON-able: datetimes and UUIDs become text) travels with the row into the message,
    e.g. `enqueue("acknowledged", incident, by="alice")`. Rows with the same `dedup_key` for a
    channel are written once; by default the key is the event, the incident and the time.
    Returns the number of rows offered (0 when no channel wants the event).
    """
    using = _using(using)
    event = EventKind(event)
    if incident is not None and event != EventKind.CLOSED and _closed(incident):
        return 0  # a closed incident is over for the people it would notify
    channels = _channels(using, event)
    severity = incident.severity if incident is not None else None
    cluster = incident.cluster if incident is not None else None
    channels = [c for c in channels if routes(c, event, severity=severity, cluster=cluster)]
    if skip is not None:  # a channel's own switch for this event (skip_unchanged_reports)
        channels = [c for c in channels if not skip(c)]
    if not channels:
        return 0
    incident_id = incident.pk if incident is not None else None
    key = dedup_key or f"{event}:{incident_id or '-'}:{timezone.now().isoformat()}"
    payload = _jsonable(detail)
    rows = [
        Notification(
            channel=channel, event=event, incident_id=incident_id, detail=payload, dedup_key=key
        )
        for channel in channels
    ]
    return _insert(using, rows)


def incidents_opened(using: str | None, incident_ids: Sequence[uuid.UUID]) -> int:
    """`incident_opened` for a batch of new incidents, as cheaply as ingestion needs it.

    One query for the channels; with none, nothing else. With some, one small insert: a
    NotificationBatch row listing the incidents, which a deliverer routes to channels shortly
    after (`fan_out`). Writing a Notification per incident and channel here instead took a
    quarter of ingestion's time when every incident went to a channel (bench/outbox.py).
    Returns the number of incidents queued.
    """
    if not incident_ids:
        return 0
    using = _using(using)
    if not _channels(using, EventKind.INCIDENT_OPENED):
        return 0
    NotificationBatch.objects.using(using).create(incident_ids=[str(i) for i in incident_ids])
    return len(incident_ids)


def fan_out(*, using: str) -> int:
    """Route the oldest waiting batch of opened incidents: one Notification per routed channel
    and incident, and the batch row deleted, in one transaction (SKIP LOCKED: deliverers share
    the work). Incidents deleted meanwhile are skipped. Returns the notifications written; 0
    also when no batch waits (see `batches_waiting`)."""
    with transaction.atomic(using=using):
        batch = (
            NotificationBatch.objects.using(using)
            .select_for_update(skip_locked=True)
            .order_by("id")
            .first()
        )
        if batch is None:
            return 0
        channels = _channels(using, EventKind.INCIDENT_OPENED)
        pairs = []
        ids = batch.incident_ids
        for start in range(0, len(ids), _IDS_PER_QUERY):
            incidents = Incident.objects.using(using).filter(
                pk__in=ids[start : start + _IDS_PER_QUERY]
            )
            for incident_id, severity, cluster in incidents.values_list(
                "incident_id", "severity", "cluster"
            ):
                pairs += [
                    (channel.pk, incident_id)
                    for channel in channels
                    if routes(
                        channel, EventKind.INCIDENT_OPENED, severity=severity, cluster=cluster
                    )
                ]
        written = _insert_opened(using, pairs)
        batch.delete(using=using)
    return written


def batches_waiting(*, using: str) -> bool:
    return NotificationBatch.objects.using(using).exists()


_IDS_PER_QUERY = 900  # under SQLite's oldest limit on a statement's parameters


def _insert_opened(using: str, pairs: list[tuple[int, uuid.UUID]]) -> int:
    """Insert `incident_opened` rows for (channel id, incident id) pairs; ON CONFLICT DO NOTHING
    on (channel, dedup_key) makes a repeated fan-out harmless."""
    if not pairs:
        return 0
    connection = transaction.get_connection(using)
    if connection.vendor == "postgresql":
        # Model instances cost more than the rows here: one statement from two arrays.
        channel_ids, incident_ids = zip(*pairs, strict=True)
        now = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(
                _OPENED_SQL,
                [EventKind.INCIDENT_OPENED.value, f"{EventKind.INCIDENT_OPENED}:",
                 DeliveryStatus.PENDING.value, now, now, list(channel_ids), list(incident_ids)],
            )  # fmt: skip
        return len(pairs)
    rows = [
        Notification(
            channel_id=channel_id,
            event=EventKind.INCIDENT_OPENED,
            incident_id=incident_id,
            dedup_key=f"{EventKind.INCIDENT_OPENED}:{incident_id}",
        )
        for channel_id, incident_id in pairs
    ]
    return _insert(using, rows)


# PostgreSQL (13+ for gen_random_uuid): one statement for a batch's rows, from two arrays
# (channel, incident). The values are the model's defaults for a new row; no input in the SQL.
_OPENED_SQL = (
    "INSERT INTO notifications (notification_id, channel_id, event, incident_id, detail, "
    "dedup_key, status, attempts, created_at, next_attempt_at, locked_by, last_error) "
    "SELECT gen_random_uuid(), c, %s, i, '{}'::jsonb, %s || i::text, %s, 0, "
    "%s, %s, '', '' FROM unnest(%s::bigint[], %s::uuid[]) AS pairs (c, i) "
    "ON CONFLICT (channel_id, dedup_key) DO NOTHING"
)


def report_recorded(using: str | None, report: TriageReport) -> int:
    """`report_ready` for a stored report, once per report (a corrected report is not news)."""
    using = _using(using)
    if not _channels(using, EventKind.REPORT_READY):
        return 0
    incident = (
        Incident.objects.using(using)
        .only("severity", "cluster", "oncall_state", "fault_id")
        .get(pk=report.incident_id)
    )
    unchanged = _same_headline_as_before(using, report, incident.fault_id)
    return enqueue(
        EventKind.REPORT_READY,
        incident,
        using=using,
        dedup_key=f"{EventKind.REPORT_READY}:{report.report_id}",
        skip=(lambda channel: channel.skip_unchanged_reports) if unchanged else None,
        report_id=report.report_id,
        # Said only when true: the message reads "unchanged" (detail as before otherwise).
        **({"unchanged": True} if unchanged else {}),
    )


def _same_headline_as_before(using: str, report: TriageReport, fault_id: str) -> bool:
    """Whether the report concludes what the fault's previous report did (stored headlines)."""
    from incidents.quality.compare import same_conclusion

    previous = (
        TriageReport.objects.using(using)
        .filter(incident__fault_id=fault_id, generated_at__lt=report.generated_at)
        .exclude(pk=report.pk)
        .order_by("-generated_at", "-report_id")
        .values_list("headline_cause", flat=True)
        .first()
    )
    return bool(same_conclusion(previous, report.headline_cause))


def incident_completed(using: str | None, incident: Incident) -> int:
    """The store calls this when an incident reaches a terminal status: `agent_failed` and the
    circuit breaker, for completions that end a triage run (see `breaker`)."""
    from incidents.notifications import breaker  # breaker enqueues through this module

    return breaker.run_ended(_using(using), incident)


# -- the deliverers' side ----------------------------------------------------------------------
def claim(*, using: str, token: str, lease: timedelta, now: datetime | None = None):
    """Lease the most overdue pending notification to `token` until now + lease; None if none
    is due. One short transaction; concurrent deliverers skip each other's rows."""
    now = now or timezone.now()
    with transaction.atomic(using=using):
        row = (
            Notification.objects.using(using)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("channel")
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
            .order_by("next_attempt_at")
            .first()
        )
        if row is None:
            return None
        row.locked_until, row.locked_by = now + lease, token
        Notification.objects.using(using).filter(pk=row.pk).update(
            locked_until=row.locked_until, locked_by=token
        )
    return row


def settle(*, using: str, notification: Notification, token: str, **fields: object) -> bool:
    """Write an attempt's result if `token` still holds the lease; whether it did.

    A deliverer whose lease ran out (it was too slow, or paused) writes nothing: the row belongs
    to whoever took it next, and the receiver sees the idempotency key again.
    """
    fields.setdefault("locked_until", None)
    fields.setdefault("locked_by", "")
    return bool(
        Notification.objects.using(using)
        .filter(pk=notification.pk, locked_by=token, status=DeliveryStatus.PENDING)
        .update(**fields)
    )


def seconds_until_due(*, using: str, now: datetime | None = None) -> float | None:
    """Seconds until some pending notification can be claimed (0: now), None if none is pending."""
    now = now or timezone.now()
    if batches_waiting(using=using):
        return 0.0
    pending = Notification.objects.using(using).filter(status=DeliveryStatus.PENDING)
    times = pending.aggregate(
        due=Min("next_attempt_at", filter=Q(locked_until__isnull=True) | Q(locked_until__lte=now)),
        leased=Min("locked_until", filter=Q(locked_until__gt=now)),
    )
    candidates = [t for t in times.values() if t is not None]
    if not candidates:
        return None
    return max(0.0, (min(candidates) - now).total_seconds())


def retry_now(ids: Iterable[uuid.UUID], *, using: str | None = None) -> int:
    """Make failed (or waiting) notifications due now with a fresh set of attempts.

    Delivered ones and those a deliverer holds right now are left alone. Returns how many.
    """
    using = using or router.db_for_write(Notification)
    now = timezone.now()
    return (
        Notification.objects.using(using)
        .filter(pk__in=list(ids))
        .exclude(status=DeliveryStatus.DELIVERED)
        .exclude(locked_until__gt=now)
        .update(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            locked_until=None,
            locked_by="",
        )
    )

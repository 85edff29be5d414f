"""The store's batch writer: a batch of fault events -> one outcome each, in one transaction.

`DjangoStateStore.create_incidents` (and `create_incident`, a batch of one) run `write_batch`;
nothing else inserts incidents. Per event, in this order of precedence:

- `duplicate`: an incident with the same fault_id and timestamp exists (a replay): nothing written;
- `silenced`: an active silence matches the fault: the fault row is stored (kept if present) and
  the match counted on the silence; no incident;
- `coalesced`: the fault already has an open (pending or investigating) incident: the repeat is
  counted on it (`occurrences`, `last_seen_at`) with a timeline row;
- `created`: a new pending incident (and the fault event row, if the fault is new).

A fixed number of statements per batch whatever its size: one query finds the batch's replays and
open incidents, one loads the active silences, then bulk writes (COPY into a staging table and two
INSERT … SELECT on PostgreSQL, executemany elsewhere), one UPDATE for the repeats and one INSERT
for their timeline rows, one for the silences' counts.

Incidents are inserted with `ON CONFLICT (fault_id) WHERE status IN ('pending', 'investigating')
DO NOTHING`, backed by the partial unique index `incidents_one_open_per_fault`: two writers at
once on the same input still make one incident per event; the loser's event is reclassified as a
duplicate of, or a repeat of, the winner's incident. Rows are inserted in fault_id order so two
writers take the unique-index locks in the same order and cannot deadlock.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.db import connections
from django.db.models import Q
from django.utils import timezone

from incidents.choices import ActivityKind, ActorKind, Status
from incidents.models import DENORMALIZED_FIELDS, FaultEvent, Incident, IncidentActivity, Silence
from incidents.notifications import outbox as notifications


class Outcome(StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"
    COALESCED = "coalesced"
    SILENCED = "silenced"
    REJECTED = "rejected"
    IGNORED = "ignored"


@dataclass(slots=True)
class NewIncident:
    """An event to open an incident for, and the id that incident gets if it is created."""

    event: FaultEvent
    incident_id: uuid.UUID = field(default_factory=uuid.uuid4)


RecordActivities = Callable[[list[IncidentActivity]], None]


def write_batch(
    using: str, batch: Sequence[NewIncident], *, dry_run: bool, record: RecordActivities
) -> list[Outcome]:
    """Classify `batch` and (unless `dry_run`) write it; the caller holds the transaction."""
    connection = connections[using]
    replays, open_faults = _known(connection, batch)
    silences = _active_silences(using)
    outcomes: list[Outcome] = []
    to_create: list[NewIncident] = []
    repeats: dict[str, list[datetime]] = {}
    silenced: list[tuple[FaultEvent, int]] = []
    for item in batch:
        event = item.event
        key = (event.fault_id, event.timestamp)
        silence = _matching(silences, event)
        if key in replays:
            outcomes.append(Outcome.DUPLICATE)
        elif silence is not None:
            outcomes.append(Outcome.SILENCED)
            silenced.append((event, silence.pk))
        elif event.fault_id in open_faults:
            outcomes.append(Outcome.COALESCED)
            repeats.setdefault(event.fault_id, []).append(event.timestamp)
        else:
            outcomes.append(Outcome.CREATED)
            to_create.append(item)
            replays.add(key)
            open_faults.add(event.fault_id)
    if dry_run:
        return outcomes
    if to_create:
        writer = _copy_insert if connection.vendor == "postgresql" else _executemany_insert
        lost = writer(connection, to_create)
        opened = [item.incident_id for item in to_create if item.event.fault_id not in lost]
        notifications.incidents_opened(using, opened)  # in the caller's transaction
        if lost:
            outcomes = _reclassify_lost(connection, batch, outcomes, lost, repeats)
    if repeats:
        _count_repeats(connection, repeats, record)
    if silenced:
        _count_silenced(connection, silenced)
    return outcomes


# -- classification -------------------------------------------------------------------------
def _known(connection, batch: Sequence[NewIncident]) -> tuple[set[tuple[str, datetime]], set[str]]:
    """One query: the batch's (fault_id, timestamp) pairs that already have an incident, and
    which of its faults have an open incident. Served by incidents_fault_timestamp_idx."""
    pairs = {(p.event.fault_id, p.event.timestamp) for p in batch}
    if connection.vendor == "postgresql":
        fault_ids, timestamps = zip(*pairs, strict=True)
        # wrap_database_errors: psycopg's errors become Django's (DatabaseError…), which the
        # callers' retry and lost-connection handling catch.
        with connection.cursor() as wrapper, connection.wrap_database_errors:
            # psycopg's cursor directly: two array parameters, not thousands of literals, and
            # no copy of the statement in DEBUG's query log per batch.
            cursor = wrapper.cursor
            # A bulk load grows the table faster than autovacuum re-analyzes it; on a stale
            # estimate PostgreSQL hash-joins against a scan of the whole table, once per batch.
            # Index probes are right at any size. Reset right after: it is for this query only.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(_KNOWN_SQL, [list(fault_ids), list(timestamps)])
            rows = cursor.fetchall()
            cursor.execute("RESET enable_seqscan")
    else:
        rows = (
            Incident.objects.using(connection.alias)
            .filter(fault_id__in={fault_id for fault_id, _ in pairs})
            .filter(Q(status__in=_OPEN) | Q(timestamp__in={timestamp for _, timestamp in pairs}))
            .values_list("fault_id", "timestamp", "status")
        )
    replays: set[tuple[str, datetime]] = set()
    open_faults: set[str] = set()
    for fault_id, timestamp, status in rows:
        if (fault_id, timestamp) in pairs:
            replays.add((fault_id, timestamp))
        if status in _OPEN:
            open_faults.add(fault_id)
    return replays, open_faults


def _active_silences(using: str) -> list[Silence]:
    """The silences in force now, oldest first (the first that matches counts the fault)."""
    now = timezone.now()
    return list(
        Silence.objects.using(using)
        .filter(expired_at__isnull=True, starts_at__lte=now, ends_at__gt=now)
        .only("pk", *Silence.MATCH_FIELDS)
        .order_by("created_at", "pk")
    )


# Silence field -> the event's field it matches.
_SILENCE_FIELDS = {
    "cluster": "cluster",
    "namespace": "resource_namespace",
    "resource_kind": "resource_kind",
    "fault_type": "fault_type",
    "resource_name": "resource_name",
}


def matches(pattern: str, value: str) -> bool:
    """A silence's field against an event's: empty matches anything, `prefix*` a prefix."""
    if not pattern:
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def _matching(silences: list[Silence], event: FaultEvent) -> Silence | None:
    for silence in silences:
        if all(
            matches(getattr(silence, name), getattr(event, attr) or "")
            for name, attr in _SILENCE_FIELDS.items()
        ):
            return silence
    return None


def _reclassify_lost(
    connection,
    batch: Sequence[NewIncident],
    outcomes: list[Outcome],
    lost: set[str],
    repeats: dict[str, list[datetime]],
) -> list[Outcome]:
    """A concurrent writer opened an incident for these faults first: ours became a duplicate
    (same timestamp as that open incident) or a repeat of it (added to `repeats`)."""
    open_at = dict(
        Incident.objects.using(connection.alias)
        .filter(fault_id__in=lost, status__in=_OPEN)
        .values_list("fault_id", "timestamp")
    )
    result = list(outcomes)
    for index, (item, outcome) in enumerate(zip(batch, outcomes, strict=True)):
        fault_id = item.event.fault_id
        if outcome is Outcome.CREATED and fault_id in lost:
            if open_at.get(fault_id) == item.event.timestamp:
                result[index] = Outcome.DUPLICATE
            else:
                result[index] = Outcome.COALESCED
                repeats.setdefault(fault_id, []).append(item.event.timestamp)
    return result


# -- repeats and silences ---------------------------------------------------------------------
def _count_repeats(connection, repeats: dict[str, list[datetime]], record: RecordActivities):
    """One UPDATE adds each fault's repeats to its open incident (and moves last_seen_at), one
    INSERT writes a timeline row per incident: "seen N more times". A fault whose incident was
    finished meanwhile has no open incident left to count on; its repeats count nowhere."""
    fault_ids = sorted(repeats)  # lock order, as the inserts
    counts = [len(repeats[fault_id]) for fault_id in fault_ids]
    latest = [max(repeats[fault_id]) for fault_id in fault_ids]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_REPEATS_SQL, [fault_ids, counts, latest])
            rows = cursor.fetchall()
        else:
            cursor.executemany(
                _REPEAT_ONE_SQL,
                [(n, connection.ops.adapt_datetimefield_value(at), f) for f, n, at in zip(
                    fault_ids, counts, latest, strict=True)],
            )  # fmt: skip
            rows = list(
                Incident.objects.using(connection.alias)
                .filter(fault_id__in=fault_ids, status__in=_OPEN)
                .values_list("incident_id", "fault_id", "occurrences")
            )
    now = timezone.now()
    activity = []
    for incident_id, fault_id, occurrences in rows:
        n = len(repeats[fault_id])
        activity.append(
            IncidentActivity(
                incident_id=incident_id,
                kind=ActivityKind.REPEAT,
                actor_kind=ActorKind.INGESTION,
                at=now,
                from_value=str(occurrences - n),
                to_value=str(occurrences),
                text=f"fault fired again {n} time{'s' if n != 1 else ''}, last at "
                f"{max(repeats[fault_id]).isoformat()}",
            )
        )
    record(activity)


def _count_silenced(connection, silenced: list[tuple[FaultEvent, int]]) -> None:
    """Store the silenced faults' rows (kept if present) and count each on its silence."""
    events = sorted({event.fault_id: event for event, _ in silenced}.values(), key=_fault_key)
    fault_fields = FaultEvent._meta.concrete_fields
    rows = [[f.get_db_prep_save(getattr(e, f.attname), connection) for f in fault_fields]
            for e in events]  # fmt: skip
    per_silence = Counter(silence_id for _, silence_id in silenced)
    now = connections[connection.alias].ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.executemany(_INSERT_FAULTS, rows)
        cursor.executemany(
            _COUNT_SILENCE_SQL, [(n, now, pk) for pk, n in sorted(per_silence.items())]
        )


def _fault_key(event: FaultEvent) -> str:
    return event.fault_id


# -- writers: each inserts the fault rows (kept if present) and the pending incidents, and
# returns the fault ids whose incident was not inserted because one is already open ----------
_FAULT_COLUMNS = tuple(f.column for f in FaultEvent._meta.concrete_fields)
_INCIDENT_COLUMNS = (
    "incident_id", "fault_id", "status", "created_at", *DENORMALIZED_FIELDS, "last_seen_at",
)  # fmt: skip
# Word for word the predicate of incidents_one_open_per_fault: SQLite matches it textually.
_OPEN_PREDICATE = f"\"status\" IN ('{Status.PENDING}', '{Status.INVESTIGATING}')"
_OPEN = [Status.PENDING.value, Status.INVESTIGATING.value]
_KNOWN_SQL = (
    'SELECT i.fault_id, i."timestamp", i.status '  # noqa: S608 - no input in the SQL
    "FROM unnest(%s::text[], %s::timestamptz[]) AS batch (fault_id, ts) "
    "JOIN incidents i ON i.fault_id = batch.fault_id "
    f'AND (i."timestamp" = batch.ts OR i.{_OPEN_PREDICATE})'
)
_REPEATS_SQL = (
    "UPDATE incidents i SET occurrences = i.occurrences + b.n, "  # noqa: S608
    "last_seen_at = GREATEST(i.last_seen_at, b.ts) "
    "FROM unnest(%s::text[], %s::int[], %s::timestamptz[]) AS b (fault_id, n, ts) "
    f"WHERE i.fault_id = b.fault_id AND i.{_OPEN_PREDICATE} "
    "RETURNING i.incident_id, i.fault_id, i.occurrences"
)
_REPEAT_ONE_SQL = (
    "UPDATE incidents SET occurrences = occurrences + %s, "  # noqa: S608
    "last_seen_at = MAX(last_seen_at, %s) "
    f"WHERE fault_id = %s AND {_OPEN_PREDICATE}"
)
_COUNT_SILENCE_SQL = (
    "UPDATE silences SET matched = matched + %s, last_matched_at = %s WHERE id = %s"
)


def _q(names) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _fault_row(event: FaultEvent) -> tuple:
    return tuple(getattr(event, name) for name in _FAULT_COLUMNS)


_STAGE_COLUMNS = ("incident_id", "created_at", *_FAULT_COLUMNS)
_STAGE_DDL = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS ingest_stage (
    incident_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    {
    ", ".join(
        f'"{c}" timestamptz' if c in ("received_at", "timestamp") else f'"{c}" text'
        for c in _FAULT_COLUMNS
    )
}
)
"""

# The SQL below is built from the models' column names, never from input (hence the noqa).
_FAULTS_FROM_STAGE = (
    f"INSERT INTO fault_events ({_q(_FAULT_COLUMNS)}) "  # noqa: S608
    f"SELECT {_q(_FAULT_COLUMNS)} FROM ingest_stage ORDER BY fault_id "
    "ON CONFLICT (fault_id) DO NOTHING"
)
_INCIDENTS_FROM_STAGE = (
    f"INSERT INTO incidents ({_q(_INCIDENT_COLUMNS)}) "  # noqa: S608
    f'SELECT incident_id, fault_id, %s, created_at, {_q(DENORMALIZED_FIELDS)}, "timestamp" '
    "FROM ingest_stage ORDER BY fault_id "
    f"ON CONFLICT (fault_id) WHERE {_OPEN_PREDICATE} DO NOTHING RETURNING fault_id"
)
_INSERT_FAULTS = (
    f"INSERT INTO fault_events ({_q(_FAULT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_FAULT_COLUMNS))}) ON CONFLICT (fault_id) DO NOTHING"
)
_INSERT_INCIDENTS = (
    f"INSERT INTO incidents ({_q(_INCIDENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_INCIDENT_COLUMNS))}) "
    f"ON CONFLICT (fault_id) WHERE {_OPEN_PREDICATE} DO NOTHING"
)


def _copy_insert(connection, to_create: list[NewIncident]) -> set[str]:
    """PostgreSQL: COPY the batch into a session-private staging table, then two INSERT …
    SELECT … ON CONFLICT DO NOTHING, in fault_id order."""
    created_at = timezone.now()
    with connection.cursor() as wrapper, connection.wrap_database_errors:  # Django's errors
        cursor = wrapper.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        cursor.execute(_STAGE_DDL)
        cursor.execute("TRUNCATE ingest_stage")
        with cursor.copy(f"COPY ingest_stage ({_q(_STAGE_COLUMNS)}) FROM STDIN") as copy:
            for item in to_create:
                copy.write_row((item.incident_id, created_at, *_fault_row(item.event)))
        cursor.execute(_FAULTS_FROM_STAGE)
        cursor.execute(_INCIDENTS_FROM_STAGE, [Status.PENDING.value])
        inserted = {row[0] for row in cursor.fetchall()}
    return {p.event.fault_id for p in to_create} - inserted


def _executemany_insert(connection, to_create: list[NewIncident]) -> set[str]:
    """Any other backend (SQLite): two executemany, values adapted by the model fields."""
    fault_fields = FaultEvent._meta.concrete_fields
    # By name or column name (fault_id), as get_field finds them, but only columns.
    columns = {key: f for f in Incident._meta.concrete_fields for key in (f.name, f.attname)}
    incident_fields = [columns[name] for name in _INCIDENT_COLUMNS]
    created_at = timezone.now()
    to_create = sorted(to_create, key=lambda p: p.event.fault_id)
    fault_rows = [
        [f.get_db_prep_save(getattr(p.event, f.attname), connection) for f in fault_fields]
        for p in to_create
    ]
    incident_rows = []
    for p in to_create:
        values = {
            "incident_id": p.incident_id,
            "fault_id": p.event.fault_id,
            "status": Status.PENDING.value,
            "created_at": created_at,
            "last_seen_at": p.event.timestamp,
        }
        values.update((name, getattr(p.event, name)) for name in DENORMALIZED_FIELDS)
        incident_rows.append(
            [
                f.get_db_prep_save(values[f.name if f.name != "fault" else "fault_id"], connection)
                for f in incident_fields
            ]  # fmt: skip
        )
    with connection.cursor() as cursor:
        cursor.executemany(_INSERT_FAULTS, fault_rows)
        cursor.executemany(_INSERT_INCIDENTS, incident_rows)
        if cursor.rowcount == len(incident_rows):
            return set()
    # Some incident was not inserted (possible only without SQLite's IMMEDIATE transactions).
    stored = set(
        Incident.objects.using(connection.alias)
        .filter(incident_id__in=[p.incident_id for p in to_create])
        .values_list("fault_id", flat=True)
    )
    return {p.event.fault_id for p in to_create} - stored

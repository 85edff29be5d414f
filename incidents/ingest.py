"""Batches of fault records -> outcomes (created, duplicate, coalesced, rejected, ignored).

`IngestionService` is the one batch writer of fault events and their incidents; the
`ingest_events` command and the live `subscribe_mcp` subscriber both feed it. Per record:

- `created`: a new pending incident (and the fault event row, if the fault is new);
- `duplicate`: an incident with the same fault_id and timestamp exists (a replay): nothing written;
- `coalesced`: the fault already has an open (pending or investigating) incident: nothing written;
- `rejected`: invalid (see `incidents.events`), or refused by the database;
- `ignored`: a notification that is no fault.

Guarantees:

- One transaction per batch, and a fixed number of statements per batch whatever its size: one
  query finds the batch's replays and open incidents, then bulk inserts (COPY into a staging
  table and two INSERT … SELECT on PostgreSQL, executemany on SQLite).
- Incidents are inserted with `ON CONFLICT (fault_id) WHERE status IN ('pending',
  'investigating') DO NOTHING`, backed by the partial unique index
  `incidents_one_open_per_fault`: two ingesters running at once on the same input still make one
  incident per event; the loser counts the record as duplicate or coalesced. Fault event rows use
  `ON CONFLICT (fault_id) DO NOTHING`: an existing row is kept as it is, like the store does.
- A batch that fails on a database error is retried record by record, so one bad row is rejected
  and its neighbours are kept. An error that is no row's fault (a lost connection) propagates,
  and the records not yet written stay buffered for the next `flush()`.
- created/duplicate/coalesced are counted only once their batch has committed.
- Memory is one batch, whatever the input's size; only a dry run remembers what its earlier
  batches would have created (one entry per new fault).

Reading records out of files and pipes is `incidents.streams`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.db import DatabaseError, DataError, IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q
from django.utils import timezone

from incidents.choices import Status
from incidents.events import IgnoredRecord, RejectedRecord, parse_record
from incidents.models import DENORMALIZED_FIELDS, FaultEvent, Incident

logger = logging.getLogger("incidents.ingest")


class Outcome(StrEnum):
    CREATED = "created"
    DUPLICATE = "duplicate"
    COALESCED = "coalesced"
    REJECTED = "rejected"
    IGNORED = "ignored"


@dataclass
class IngestCounts:
    """How many records were received and how each ended."""

    received: int = 0
    created: int = 0
    duplicate: int = 0
    coalesced: int = 0
    rejected: int = 0
    ignored: int = 0

    def add(self, outcome: Outcome, n: int = 1) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + n)

    def summary(self) -> str:
        """The contract's summary line."""
        return (
            f"received {self.received}: created {self.created}, duplicate {self.duplicate}, "
            f"coalesced {self.coalesced}, rejected {self.rejected}, ignored {self.ignored}"
        )


@dataclass(frozen=True)
class Rejection:
    """A rejected record: where it came from, why, and the record unchanged, as text."""

    source: str
    line: int | None
    reason: str
    raw: str


def raw_text(raw: Mapping | str | bytes) -> str:
    """The record as text, unchanged. Bytes that are not UTF-8 survive as surrogate escapes, so
    writing the text back with errors="surrogateescape" gives the original bytes."""
    if isinstance(raw, bytes | bytearray):
        return bytes(raw).decode("utf-8", "surrogateescape")
    if isinstance(raw, str):
        return raw
    try:
        return json.dumps(raw, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        # Too deep (or a number too long) to write back: a JSON string that says so instead.
        return json.dumps(f"unwritable record: {type(raw).__name__} nested too deeply or too long")


@dataclass(slots=True)
class _Pending:
    event: FaultEvent
    raw: Mapping | str | bytes
    source: str
    line: int | None
    incident_id: uuid.UUID = field(default_factory=uuid.uuid4)


class IngestionService:
    """Parse records, buffer them, and write each full batch in one transaction.

    Not thread-safe: one service per thread (each thread has its own database connection).
    Call `flush()` when the input ends; `add` flushes by itself whenever `batch_size` records
    are buffered. With `dry_run`, records are validated and classified against the database and
    the records before them, but nothing is written.
    """

    def __init__(
        self,
        *,
        batch_size: int = 1000,
        dry_run: bool = False,
        on_reject: Callable[[Rejection], None] | None = None,
        using: str | None = None,
        cluster: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.batch_size = batch_size
        self.dry_run = dry_run
        self.on_reject = on_reject
        self.using = using or router.db_for_write(Incident)
        self.cluster = cluster  # --cluster: the cluster every record is stored under
        self.counts = IngestCounts()
        self._buffer: list[_Pending] = []
        # Dry runs write nothing, so what earlier batches "created" is remembered here instead.
        self._dry_open: set[str] = set()
        self._dry_seen: set[tuple[str, datetime]] = set()

    # -- input ------------------------------------------------------------------------------
    def add(
        self, raw: Mapping | str | bytes, *, source: str = "-", line: int | None = None
    ) -> None:
        """Take one record: count it, parse it, and buffer it (or reject or ignore it now)."""
        self.counts.received += 1
        try:
            event = parse_record(raw, cluster=self.cluster)
        except RejectedRecord as error:
            self._reject(raw, source, line, error.reason)
            return
        except IgnoredRecord as error:
            self.counts.ignored += 1
            logger.warning(
                "%s:%s: ignored a notification from logger %s: %s",
                source,
                line if line is not None else "-",
                error.logger,
                json.dumps(error.data, ensure_ascii=False, default=str),
            )
            return
        self._buffer.append(_Pending(event, raw, source, line))
        if len(self._buffer) >= self.batch_size:
            self.flush()

    def reject(
        self, raw: Mapping | str | bytes, reason: str, *, source: str = "-", line: int | None = None
    ) -> None:
        """Count a record the caller could not even read as a record (broken framing)."""
        self.counts.received += 1
        self._reject(raw, source, line, reason)

    def pending(self) -> int:
        """Records buffered and not yet written."""
        return len(self._buffer)

    # -- output -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the buffered batch now, in one transaction; on a database error, retry the
        batch record by record and reject only the records the database refuses."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            outcomes = self._write(batch)
        except DatabaseError as error:
            if _is_connection_failure(error, connections[self.using]):
                self._buffer = batch + self._buffer  # nothing was written: keep them
                raise
            logger.info("batch of %d failed (%s); retrying record by record", len(batch), error)
            self._write_one_by_one(batch)
            return
        for outcome in outcomes:
            self.counts.add(outcome)

    def _write_one_by_one(self, batch: list[_Pending]) -> None:
        for index, pending in enumerate(batch):
            try:
                (outcome,) = self._write([pending])
            except (IntegrityError, DataError) as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else "error"
                self._reject(pending.raw, pending.source, pending.line, f"database: {reason}")
            except DatabaseError:
                # Not this row's fault (connection lost, a bug): keep what is left unwritten.
                self._buffer = batch[index:] + self._buffer
                raise
            else:
                self.counts.add(outcome)

    def _reject(self, raw: Mapping | str | bytes, source: str, line: int | None, reason: str):
        self.counts.rejected += 1
        if self.on_reject is not None:
            self.on_reject(Rejection(source=source, line=line, reason=reason, raw=raw_text(raw)))

    # -- the batch transaction --------------------------------------------------------------
    def _write(self, batch: list[_Pending]) -> list[Outcome]:
        """Classify and write one batch in one transaction; the outcome of each record."""
        connection = connections[self.using]
        with transaction.atomic(using=self.using):
            replays, open_faults = _known(connection, batch)
            # What earlier batches of a dry run would have written (empty sets otherwise).
            seen_before, open_before = self._dry_seen, self._dry_open
            outcomes: list[Outcome] = []
            to_create: list[_Pending] = []
            for pending in batch:
                key = (pending.event.fault_id, pending.event.timestamp)
                if key in replays or key in seen_before:
                    outcomes.append(Outcome.DUPLICATE)
                elif key[0] in open_faults or key[0] in open_before:
                    outcomes.append(Outcome.COALESCED)
                else:
                    outcomes.append(Outcome.CREATED)
                    to_create.append(pending)
                    replays.add(key)
                    open_faults.add(key[0])
            if self.dry_run:
                self._dry_seen.update((p.event.fault_id, p.event.timestamp) for p in to_create)
                self._dry_open.update(p.event.fault_id for p in to_create)
                return outcomes
            if to_create:
                writer = _copy_insert if connection.vendor == "postgresql" else _executemany_insert
                lost = writer(connection, to_create)
                if lost:
                    outcomes = _reclassify_lost(connection, batch, outcomes, lost)
        return outcomes


def _is_connection_failure(error: Exception, connection: BaseDatabaseWrapper) -> bool:
    """A lost or unusable connection (nothing to retry per record), unlike a refused row."""
    if isinstance(error, IntegrityError | DataError):
        return False
    return connection.connection is None or not connection.is_usable()


# -- queries --------------------------------------------------------------------------------
def _known(connection, batch: list[_Pending]) -> tuple[set[tuple[str, datetime]], set[str]]:
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


def _reclassify_lost(
    connection, batch: list[_Pending], outcomes: list[Outcome], lost: set[str]
) -> list[Outcome]:
    """A concurrent ingester opened an incident for these faults first: ours became a duplicate
    (same timestamp as that open incident) or coalesced into it."""
    open_at = dict(
        Incident.objects.using(connection.alias)
        .filter(fault_id__in=lost, status__in=_OPEN)
        .values_list("fault_id", "timestamp")
    )
    result = list(outcomes)
    for index, (pending, outcome) in enumerate(zip(batch, outcomes, strict=True)):
        fault_id = pending.event.fault_id
        if outcome is Outcome.CREATED and fault_id in lost:
            same = open_at.get(fault_id) == pending.event.timestamp
            result[index] = Outcome.DUPLICATE if same else Outcome.COALESCED
    return result


# -- writers: each inserts the fault rows (kept if present) and the pending incidents, and
# returns the fault ids whose incident was not inserted because one is already open ----------
_FAULT_COLUMNS = tuple(f.column for f in FaultEvent._meta.concrete_fields)
_INCIDENT_COLUMNS = ("incident_id", "fault_id", "status", "created_at", *DENORMALIZED_FIELDS)
# Word for word the predicate of incidents_one_open_per_fault: SQLite matches it textually.
_OPEN_PREDICATE = f"\"status\" IN ('{Status.PENDING}', '{Status.INVESTIGATING}')"
_OPEN = [Status.PENDING.value, Status.INVESTIGATING.value]
_KNOWN_SQL = (
    'SELECT i.fault_id, i."timestamp", i.status '  # noqa: S608 - no input in the SQL
    "FROM unnest(%s::text[], %s::timestamptz[]) AS batch (fault_id, ts) "
    "JOIN incidents i ON i.fault_id = batch.fault_id "
    f'AND (i."timestamp" = batch.ts OR i.{_OPEN_PREDICATE})'
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
    f"SELECT incident_id, fault_id, %s, created_at, {_q(DENORMALIZED_FIELDS)} "
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


def _copy_insert(connection, to_create: list[_Pending]) -> set[str]:
    """PostgreSQL: COPY the batch into a session-private staging table, then two INSERT …
    SELECT … ON CONFLICT DO NOTHING. Rows are inserted in fault_id order so that two ingesters
    take the unique-index locks in the same order and cannot deadlock each other."""
    created_at = timezone.now()
    with connection.cursor() as wrapper, connection.wrap_database_errors:  # Django's errors
        cursor = wrapper.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        cursor.execute(_STAGE_DDL)
        cursor.execute("TRUNCATE ingest_stage")
        with cursor.copy(f"COPY ingest_stage ({_q(_STAGE_COLUMNS)}) FROM STDIN") as copy:
            for pending in to_create:
                copy.write_row((pending.incident_id, created_at, *_fault_row(pending.event)))
        cursor.execute(_FAULTS_FROM_STAGE)
        cursor.execute(_INCIDENTS_FROM_STAGE, [Status.PENDING.value])
        inserted = {row[0] for row in cursor.fetchall()}
    return {p.event.fault_id for p in to_create} - inserted


def _executemany_insert(connection, to_create: list[_Pending]) -> set[str]:
    """Any other backend (SQLite): two executemany, values adapted by the model fields."""
    fault_fields = FaultEvent._meta.concrete_fields
    incident_fields = [Incident._meta.get_field(name) for name in _INCIDENT_COLUMNS]
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

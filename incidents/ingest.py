"""Batches of fault records -> outcomes (created, duplicate, coalesced, silenced, rejected,
ignored).

`IngestionService` parses and buffers records and hands each batch to the store's one batch
writer, `DjangoStateStore.create_incidents` (see `incidents.store_batch` for what each outcome
writes); the `ingest_events` command and the live `subscribe_mcp` subscriber both feed it. Per
record: `created`, `duplicate`, `coalesced` (counted on the open incident), `silenced` (an active
silence matched: no incident), `rejected` (invalid, see `incidents.events`, or refused by the
database), `ignored` (a notification that is no fault).

Guarantees:

- One transaction per batch, and a fixed number of statements per batch whatever its size.
- Two ingesters running at once on the same input still make one incident per event; the loser
  counts the record as duplicate or coalesced.
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

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper

from incidents.events import IgnoredRecord, RejectedRecord, parse_record
from incidents.models import FaultEvent, Incident
from incidents.store import DjangoStateStore, InvalidRecord
from incidents.store_batch import Outcome

__all__ = ["IngestCounts", "IngestionService", "Outcome", "Rejection", "raw_text"]

logger = logging.getLogger("incidents.ingest")


@dataclass
class IngestCounts:
    """How many records were received and how each ended."""

    received: int = 0
    created: int = 0
    duplicate: int = 0
    coalesced: int = 0
    silenced: int = 0
    rejected: int = 0
    ignored: int = 0

    def add(self, outcome: Outcome, n: int = 1) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + n)

    def summary(self) -> str:
        """The contract's summary line."""
        return (
            f"received {self.received}: created {self.created}, duplicate {self.duplicate}, "
            f"coalesced {self.coalesced}, silenced {self.silenced}, rejected {self.rejected}, "
            f"ignored {self.ignored}"
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
        batch_size: int | None = None,  # None: TRIAGE_INGEST_BATCH_SIZE
        dry_run: bool = False,
        on_reject: Callable[[Rejection], None] | None = None,
        using: str | None = None,
        cluster: str | None = None,
    ) -> None:
        if batch_size is None:
            batch_size = settings.TRIAGE_INGEST_BATCH_SIZE
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.batch_size = batch_size
        self.dry_run = dry_run
        self.on_reject = on_reject
        self.using = using or router.db_for_write(Incident)
        self.cluster = cluster  # --cluster: the cluster every record is stored under
        self.store = DjangoStateStore(using=self.using)
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
        except (InvalidRecord, DatabaseError) as error:
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
            except (InvalidRecord, IntegrityError, DataError) as error:
                cause = error.__cause__ if isinstance(error, InvalidRecord) else error
                text = str(cause or error).strip()
                reason = text.splitlines()[0] if text else "error"
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
        """One store call per batch; a dry run also accounts for its earlier batches."""
        outcomes = self.store.create_incidents(
            [p.event for p in batch],
            incident_ids=[p.incident_id for p in batch],
            dry_run=self.dry_run,
        )
        if not self.dry_run:
            return outcomes
        # What earlier batches of the dry run would have written (nothing was).
        for index, (pending, outcome) in enumerate(zip(batch, outcomes, strict=True)):
            key = (pending.event.fault_id, pending.event.timestamp)
            if outcome is not Outcome.CREATED:
                continue
            if key in self._dry_seen:
                outcomes[index] = Outcome.DUPLICATE
            elif key[0] in self._dry_open:
                outcomes[index] = Outcome.COALESCED
        for pending, outcome in zip(batch, outcomes, strict=True):
            if outcome is Outcome.CREATED:
                self._dry_seen.add((pending.event.fault_id, pending.event.timestamp))
                self._dry_open.add(pending.event.fault_id)
        return outcomes


def _is_connection_failure(error: Exception, connection: BaseDatabaseWrapper) -> bool:
    """A lost or unusable connection (nothing to retry per record), unlike a refused row."""
    if isinstance(error, InvalidRecord | IntegrityError | DataError):
        return False
    return connection.connection is None or not connection.is_usable()

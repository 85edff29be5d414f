"""The store's bulk loader of whole histories (`DjangoStateStore.load_history`), for demo and
benchmark data (`incidents.seeding`): rows that already obey every rule, written fast.

Loading is fast on PostgreSQL: rows stream through COPY on Django's own psycopg connection, with
the tables' secondary indexes dropped while the tables are empty and rebuilt once at the end (one
sorted build is much cheaper than a million index insertions). Other databases (SQLite) get
batched `executemany` INSERTs. Everything runs in one transaction: a failed load leaves nothing
behind. It only fills empty tables; ingestion's incidents go through `create_incidents`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connections, transaction
from django.db.models import Field, Model

from incidents.models import (
    AgentExecution,
    FaultEvent,
    Incident,
    IncidentActivity,
    QualityDay,
    ReportVerdict,
    TriageReport,
)
from incidents.quality import rollup

Row = tuple

# The tables a history fills, parents first; flushing empties them children first.
HISTORY_MODELS: tuple[type[Model], ...] = (
    FaultEvent,
    Incident,
    AgentExecution,
    TriageReport,
    IncidentActivity,
    ReportVerdict,
    QualityDay,
)


class DatabaseNotEmpty(Exception):
    """A history load appends to nothing: the tables already hold rows."""


@dataclass
class HistoryLoader:
    """Writes rows into one of the history's tables; counts them per table."""

    cursor: object
    postgres: bool
    rows: dict[str, int] = field(default_factory=dict)
    index_seconds: float = 0.0

    def write(self, model: type[Model], columns: Sequence[str], rows: Sequence[Row]) -> None:
        if rows:
            if self.postgres:
                _copy(self.cursor, model._meta.db_table, columns, rows)
            else:
                _insert_many(self.cursor, model, columns, rows)
        table = model._meta.db_table
        self.rows[table] = self.rows.get(table, 0) + len(rows)


@contextmanager
def load_history(using: str, *, flush: bool = False) -> Iterator[HistoryLoader]:
    """A loader for empty history tables, inside one transaction; indexes rebuilt at the end.

    With `flush`, the tables are emptied first in the same transaction (a failed load leaves the
    old history in place). Without it, raises DatabaseNotEmpty if any of them has rows.
    """
    connection = connections[using]
    postgres = connection.vendor == "postgresql"
    with transaction.atomic(using=using):
        if flush:
            flush_history(using=using)
        for model in HISTORY_MODELS:
            if model._default_manager.using(using).exists():
                raise DatabaseNotEmpty(
                    f"table {model._meta.db_table} already has rows; seed_demo only fills an "
                    "empty database (run it with --flush to delete the existing history first)"
                )
        with connection.cursor() as cursor:
            indexes: list[tuple[str, str]] = []
            if postgres:
                # Check foreign keys row by row as COPY goes (rows arrive parents first), not at
                # commit: an index cannot be built on a table with pending deferred checks.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                indexes = _secondary_indexes(cursor, [m._meta.db_table for m in HISTORY_MODELS])
                for name, _ in indexes:
                    cursor.execute(f'DROP INDEX "{name}"')
            loader = HistoryLoader(cursor=cursor, postgres=postgres)
            yield loader
            if indexes:
                began = time.perf_counter()
                cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
                for _, definition in indexes:
                    cursor.execute(definition)
                loader.index_seconds = time.perf_counter() - began
            # The scoreboard's day counters, counted from what was loaded.
            rollup.rebuild(using)
    # Fresh statistics for the planner. Outside a transaction PostgreSQL also VACUUMs: COPY leaves
    # the visibility map unset, and index-only scans (the capped counts) need it.
    command = "VACUUM ANALYZE" if postgres and not connection.in_atomic_block else "ANALYZE"
    with connection.cursor() as cursor:
        for model in HISTORY_MODELS:
            cursor.execute(f"{command} {model._meta.db_table}")


def flush_history(*, using: str = "default") -> None:
    """Delete every timeline row, report, execution, incident and fault event."""
    connection = connections[using]
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            tables = ", ".join(model._meta.db_table for model in HISTORY_MODELS)
            with connection.cursor() as cursor:
                # Run checks still deferred in this transaction: TRUNCATE refuses to start with
                # pending ones.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                # CASCADE: rows that point at incidents (notifications) go with them, as the
                # ORM's cascade does on SQLite.
                cursor.execute(f"TRUNCATE {tables} CASCADE")
        else:
            for model in reversed(HISTORY_MODELS):
                model._default_manager.using(using).all().delete()


def _copy(cursor, table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """Stream rows into `table` with COPY on the psycopg cursor behind Django's cursor."""
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"  # noqa: S608 - our own names
    with cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def _column_field(model: type[Model], name: str) -> Field:
    """The concrete field behind a column we load (not a relation's reverse side)."""
    found = model._meta.get_field(name)
    if not isinstance(found, Field):
        raise TypeError(f"{model._meta.db_table}.{name} is not a column")
    return found


def _insert_many(cursor, model: type[Model], columns: Sequence[str], rows: Sequence[Row]) -> None:
    """INSERT rows with executemany (SQLite and other databases without COPY).

    Each value goes through its field's `get_db_prep_save`, as `bulk_create` would do, without
    building a model instance per row.
    """
    connection = cursor.db
    fields = [_column_field(model, column) for column in columns]
    quote = connection.ops.quote_name
    names = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(columns))
    # Names come from the model, values go as parameters.
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({names}) VALUES ({placeholders})"  # noqa: S608
    prepared = [
        tuple(
            field.get_db_prep_save(value, connection)
            for field, value in zip(fields, row, strict=True)
        )
        for row in rows
    ]
    cursor.executemany(sql, prepared)


def _secondary_indexes(cursor, tables: Sequence[str]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of each index on `tables` that no constraint owns (not the
    primary keys); the partial unique index on open incidents is among them and is re-checked
    when rebuilt."""
    cursor.execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        WHERE t.relname = ANY(%s) AND t.relnamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY i.relname
        """,
        [list(tables)],
    )
    return list(cursor.fetchall())

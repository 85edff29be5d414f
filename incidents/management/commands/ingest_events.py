"""`manage.py ingest_events [PATH ...]`: load fault events from files or standard input.

A thin wrapper over `incidents.ingest`: reads each input as a stream, reports each rejection on
stderr as `PATH:LINE: reason` (and an input without a record as a warning), and ends its output
with the contract's summary line. Exit status 0 when nothing was rejected, 1 when something was,
2 for a usage error, 3 when the database failed mid-way (every batch before the failure is
stored whole, none after it). Memory stays near TRIAGE_MAX_RECORD_BYTES whatever the input: a
line over the limit is streamed, never held, and `--rejects` gets it copied in chunks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.db import DatabaseError, connection

from incidents.ingest import IngestCounts, IngestionService, Rejection
from incidents.management.base import TriageCommand
from incidents.streams import iter_records

STDIN = "-"
DATABASE_FAILURE = 3  # exit status when the database fails mid-way (1: rejections, 2: usage)
PROGRESS_INTERVAL = 0.25  # seconds between progress bar redraws


class Command(TriageCommand):
    help = (
        "Ingest kubernetes-mcp-server fault events (JSON Lines, a JSON array or one object; "
        "bare payloads or MCP notifications/message envelopes) from files or standard input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "paths", nargs="*", metavar="PATH", help="Files to read; '-' or none: standard input."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=settings.TRIAGE_INGEST_BATCH_SIZE,
            help="Records written per transaction (default TRIAGE_INGEST_BATCH_SIZE, %(default)s).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate and count; write nothing."
        )
        parser.add_argument(
            "--rejects",
            metavar="FILE",
            help="Write each rejected record, unchanged, to FILE (one per line).",
        )
        parser.add_argument(
            "--cluster",
            metavar="NAME",
            type=cluster_name,
            help="The cluster these records come from, as nightcrier names it: fills an empty "
            "`cluster` (an in-cluster server sends none) and replaces the server's name; the "
            "server's own value is kept in the stored context. Without it, a record with an "
            "empty cluster is rejected.",
        )
        parser.add_argument(
            "--quiet",
            action="store_true",
            help="No per-record messages or progress on stderr; only the summary on stdout.",
        )

    def handle(self, *args, **options) -> None:
        paths: list[str] = options["paths"] or [STDIN]
        batch_size: int = options["batch_size"]
        quiet: bool = options["quiet"]
        if batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1, not {batch_size}", returncode=2)
        for path in paths:
            if path == STDIN:
                continue
            if not Path(path).is_file():
                reason = "is a directory" if Path(path).is_dir() else "no such file"
                raise CommandError(f"{path}: {reason}", returncode=2)
            if not os.access(path, os.R_OK):
                raise CommandError(f"{path}: permission denied", returncode=2)
        if options["dry_run"] and options["rejects"]:
            # A dry run writes nothing, not even the rejects file; stderr lists every rejection.
            raise CommandError("--dry-run writes nothing: leave out --rejects", returncode=2)
        if paths.count(STDIN) > 1:
            raise CommandError("standard input ('-') can be read only once", returncode=2)

        with ExitStack() as stack:
            if quiet:
                # Logs share stdout with the summary (JSON lines in production): only errors.
                ingest_logger = logging.getLogger("incidents.ingest")
                stack.callback(ingest_logger.setLevel, ingest_logger.level)
                ingest_logger.setLevel(logging.ERROR)
            rejects: IO[str] | None = None
            if options["rejects"]:
                try:
                    rejects = stack.enter_context(
                        open(  # closed by the ExitStack
                            options["rejects"],
                            "w",
                            encoding="utf-8",
                            errors="surrogateescape",  # gives back non-UTF-8 bytes unchanged
                            newline="\n",
                        )
                    )
                except OSError as error:
                    raise CommandError(
                        f"--rejects {options['rejects']}: {error.strerror}", returncode=2
                    ) from None
            progress = _Progress(self.stderr) if not quiet and self.stderr.isatty() else None
            # Set while rejecting a line over the limit that the reader already streamed into
            # the rejects file (it was never held whole, so it cannot be written here).
            already_copied = [False]

            def on_reject(rejection: Rejection) -> None:
                if progress:
                    progress.clear()
                if not quiet:
                    line = rejection.line if rejection.line is not None else "-"
                    self.stderr.write(f"{rejection.source}:{line}: {rejection.reason}")
                if rejects is not None and not already_copied[0]:
                    raw = rejection.raw
                    if "\n" in raw:
                        # One per line: a record that spans lines (in a JSON array) is joined.
                        # Outside strings a newline is whitespace; inside one JSON forbids it.
                        raw = raw.replace("\r\n", " ").replace("\n", " ")
                    rejects.write(raw + "\n")

            service = IngestionService(
                batch_size=batch_size,
                dry_run=options["dry_run"],
                on_reject=on_reject,
                cluster=options["cluster"],
            )
            sink = _BinarySink(rejects) if rejects is not None else None
            try:
                for path in paths:
                    received = service.counts.received
                    self._ingest(path, service, progress, sink, already_copied)
                    if service.counts.received == received and not quiet:
                        name = "standard input" if path == STDIN else path
                        self.stderr.write(
                            f"warning: {name} holds no record (empty or blank lines only)",
                            style_func=self.style.WARNING,
                        )
                service.flush()
            # `Database` is the backend's DB-API module, which django-stubs does not declare.
            except (DatabaseError, connection.Database.Error) as error:  # type: ignore[attr-defined]
                # The driver's own errors too: the PostgreSQL writer uses psycopg's cursor
                # directly, outside Django's error wrapping.
                # Batches commit whole: every record up to the last committed batch is stored
                # and none after it, so a rerun of the same input stores exactly the rest.
                if progress:
                    progress.clear()
                reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
                raise CommandError(
                    f"database error, stopped: {reason}. So far (committed batches only): "
                    f"{service.counts.summary()}. Rerun the same input to store the rest; "
                    "what was stored counts as duplicate.",
                    returncode=DATABASE_FAILURE,
                ) from None
            if progress:
                progress.clear()

        if options["dry_run"] and not quiet:
            self.stdout.write(f"dry run, nothing was written: {_would(service.counts)}")
        self.stdout.write(service.counts.summary())
        if service.counts.rejected:
            # Not CommandError: its message would follow the summary, which must come last.
            self.stdout.flush()
            raise SystemExit(1)

    def _ingest(
        self,
        path: str,
        service: IngestionService,
        progress: _Progress | None,
        sink: _BinarySink | None,
        already_copied: list[bool],
    ) -> None:
        with ExitStack() as stack:
            if path == STDIN:
                stream: IO[bytes] = sys.stdin.buffer
            else:
                try:
                    stream = stack.enter_context(open(path, "rb"))
                except OSError as error:
                    raise CommandError(f"{path}: {error.strerror}", returncode=2) from None
            for record in iter_records(stream, oversized_sink=sink):
                if record.error is not None:
                    already_copied[0] = record.copied
                    try:
                        service.reject(record.raw, record.error, source=path, line=record.line)
                    finally:
                        already_copied[0] = False
                else:
                    service.add(record.raw, source=path, line=record.line)
                if progress:
                    progress.tick(service)


def cluster_name(value: str) -> str:
    """--cluster: a non-empty name that fits the column (255 characters, no NUL)."""
    # ArgumentTypeError: argparse names the option, prints the usage and exits 2.
    if not value.strip():
        raise argparse.ArgumentTypeError("the name is empty")
    if len(value) > 255 or "\x00" in value:
        raise argparse.ArgumentTypeError("at most 255 characters, no NUL")
    return value


def _would(counts: IngestCounts) -> str:
    """The dry run's outcomes in words: nothing was created, so say what would have been."""
    return (
        f"would create {counts.created}, would skip {counts.duplicate} as duplicate, "
        f"would coalesce {counts.coalesced}, would reject {counts.rejected}, "
        f"would ignore {counts.ignored}"
    )


class _BinarySink:
    """Bytes into the rejects file, after whatever its text layer still buffers."""

    def __init__(self, text: IO[str]) -> None:
        self.text = text

    def write(self, data: bytes) -> int:
        self.text.flush()
        return self.text.buffer.write(data)  # type: ignore[attr-defined]


def _plain(text: str) -> str:
    return text  # stderr's default style on a terminal is ERROR red: not for progress


class _Progress:
    """One self-rewriting line on a terminal: records so far, records/s, outcome counts."""

    def __init__(self, out: OutputWrapper) -> None:
        self.out = out
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.drawn = False

    def tick(self, service: IngestionService) -> None:
        now = time.monotonic()
        if now - self.last_draw < PROGRESS_INTERVAL:
            return
        self.last_draw = now
        counts = service.counts
        rate = counts.received / max(now - self.started, 1e-9)
        self.out.write(
            f"\r\x1b[K{counts.received:,} records  {rate:,.0f}/s  "
            f"created {counts.created:,}  duplicate {counts.duplicate:,}  "
            f"coalesced {counts.coalesced:,}  silenced {counts.silenced:,}  "
            f"rejected {counts.rejected:,}  "
            f"ignored {counts.ignored:,}",
            ending="",
            style_func=_plain,
        )
        self.out.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.out.write("\r\x1b[K", ending="", style_func=_plain)
            self.out.flush()
            self.drawn = False

"""The subscriber's writing thread: a queue of notification envelopes -> IngestionService.

Split out of `incidents.subscriber` (which re-exports it): the event loop there never touches
the database; this thread, with its own connection, does all the writing.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from incidents.ingest import IngestCounts, IngestionService, Outcome, Rejection
from incidents.mcp_client import EVENTS_LOGGER

logger = logging.getLogger("incidents.subscriber")

# A batch is written at the latest this long after its first record arrived.
FLUSH_AFTER = 0.5
# After a failed database write, wait this long before trying the same batch again.
WRITE_RETRY_DELAY = 2.0
# Notifications waiting for the database at most (each up to TRIAGE_MAX_RECORD_BYTES).
MAX_BACKLOG = 50_000


class IngestWorker(threading.Thread):
    """The one thread that writes: queue of envelopes -> IngestionService, flushed in time.

    Guarantees: records are added in the order they were submitted; a record submitted before
    `stop()` is flushed before `join()` returns (unless the database stays down: then the loss is
    logged as an error); the thread's database connection is closed when it ends. If the thread
    dies of anything else, `failure` holds the error and `on_failure` is called, so the caller
    can stop instead of queueing notifications nobody will store.
    """

    _STOP = object()

    def __init__(
        self,
        *,
        source: str,
        batch_size: int | None = None,  # None: TRIAGE_INGEST_BATCH_SIZE
        rejects_path: Path | None = None,
        max_backlog: int = MAX_BACKLOG,
        cluster: str | None = None,
    ) -> None:
        super().__init__(name="mcp-ingest", daemon=True)
        self.source = source
        self.cluster = cluster
        self.batch_size = settings.TRIAGE_INGEST_BATCH_SIZE if batch_size is None else batch_size
        self.rejects_path = rejects_path
        self._rejects: TextIO | None = None
        self.counts = IngestCounts()
        self.write_failures = 0
        self.failure: BaseException | None = None
        # Notifications still unwritten when a stop gave up on an unreachable database.
        self.unsaved = 0
        self.on_failure: Callable[[], None] | None = None
        # Bounded: while the database is down, memory must not grow until the process dies.
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_backlog)
        self.dropped = 0
        self._ready = threading.Event()
        self._stopping = threading.Event()

    def submit(self, envelope: dict[str, Any], *, sequence: int) -> None:
        """Queue one notification envelope; never blocks. A full queue (the database has been
        unreachable for a long time) drops it, counted and logged."""
        try:
            self._queue.put_nowait((envelope, sequence))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.error(
                    "ingest queue full (%d notifications waiting): dropped %d so far",
                    self._queue.qsize(),
                    self.dropped,
                )

    def stop(self) -> None:
        """Ask the thread to write everything queued so far and end."""
        self._stopping.set()
        while True:  # a full queue has room again as soon as the writer takes one
            try:
                self._queue.put(self._STOP, timeout=1.0)
                return
            except queue.Full:
                if not self.is_alive():
                    return

    def backlog(self) -> int:
        return self._queue.qsize()

    def run(self) -> None:
        try:
            with contextlib.ExitStack() as stack:
                if self.rejects_path is not None:
                    self._rejects = stack.enter_context(
                        self.rejects_path.open("a", encoding="utf-8", errors="surrogateescape")
                    )
                service = IngestionService(
                    batch_size=self.batch_size, on_reject=self._on_reject, cluster=self.cluster
                )
                self.counts = service.counts
                self._ready.set()
                self._loop(service)
        except Exception as error:
            self.failure = error
            self._ready.set()
            logger.exception("the ingest worker stopped: nothing more will be stored")
            if self.on_failure is not None:
                self.on_failure()
        finally:
            self._ready.set()
            connections.close_all()

    def wait_ready(self, timeout: float = 10.0) -> None:
        self._ready.wait(timeout)

    def _loop(self, service: IngestionService) -> None:
        first_pending_at: float | None = None
        while True:
            timeout = None
            if first_pending_at is not None:
                timeout = max(0.0, first_pending_at + FLUSH_AFTER - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is self._STOP:
                self._flush(service)
                return
            if item is not None:
                envelope, sequence = item
                self._add(service, envelope, sequence)
                if service.pending() == 0:
                    first_pending_at = None  # the service flushed a full batch itself
                elif first_pending_at is None:
                    first_pending_at = time.monotonic()
            if first_pending_at is not None and time.monotonic() >= first_pending_at + FLUSH_AFTER:
                self._flush(service)
                first_pending_at = None

    def _add(self, service: IngestionService, envelope: dict[str, Any], sequence: int) -> None:
        if envelope.get("params", {}).get("logger") == EVENTS_LOGGER:
            # Events mode sends every Kubernetes event: no fault, and too many to log each.
            service.counts.received += 1
            service.counts.add(Outcome.IGNORED)
            logger.debug("notification #%d: a kubernetes/events event, ignored", sequence)
            return
        try:
            service.add(envelope, source=self.source, line=sequence)
        except DatabaseError:
            self.write_failures += 1
            # add() writes when its batch is full, and keeps the batch when the write fails
            # (the record included): only the write is retried, never the add.
            self._after_write_failure(f"writing the batch ending at notification #{sequence}")
            self._flush(service)

    def _flush(self, service: IngestionService) -> None:
        """Write the buffered batch; retry while the database is away, a few times once stopping."""
        attempts = 0
        while service.pending():
            try:
                service.flush()
            except DatabaseError:
                attempts += 1
                self.write_failures += 1
                if self._stopping.is_set() and attempts >= 3:
                    self.unsaved = service.pending()
                    logger.error(
                        "giving up: %d received notifications could not be stored", self.unsaved
                    )
                    return
                self._after_write_failure("writing a batch")

    def _after_write_failure(self, what: str) -> None:
        logger.exception("database error while %s; retrying in %.0f s", what, WRITE_RETRY_DELAY)
        # Drop the broken connection so the next attempt opens a fresh one.
        close_old_connections()
        time.sleep(WRITE_RETRY_DELAY)

    def _on_reject(self, rejection: Rejection) -> None:
        logger.warning(
            "rejected notification #%s from %s: %s",
            rejection.line,
            rejection.source,
            rejection.reason,
        )
        if self._rejects is not None:
            self._rejects.write(rejection.raw.rstrip("\n") + "\n")
            self._rejects.flush()

"""The worker loop: recover lost incidents, claim the oldest pending one, triage it, repeat.

Modes: `forever` (poll an empty queue every poll_interval seconds until stopped), `once` (at
most one incident, then return) and `until_empty` (stop when no pending incident is left).
With concurrency N, N slots run in threads, each with its own database connection, closed when
the slot ends; with 1, the slot runs in the calling thread (tests rely on that to share their
transaction). `stop()` (wired to SIGTERM/SIGINT by the command) stops claiming; agents already
running finish, up to their timeout, and their incidents are recorded.

The worker stops early, and says why in `Summary.failure`, when it cannot go on without
harming the queue: the database failed in `once`/`until_empty` mode (a long-running worker
waits and retries instead), or the workspace root is unusable and cannot be repaired (every
incident would fail). It then claims nothing more: an incident whose run the database failed
stays investigating until recovery counts it lost; one the root failed goes back to pending.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.db import DatabaseError, connections, transaction
from django.db.models import Count
from django.utils import timezone

from incidents.budget import BudgetState, budget_state, notify_budget_reached
from incidents.choices import Status
from incidents.models import Incident
from incidents.store import DjangoStateStore, StoreError
from incidents.worker.config import WorkerConfig
from incidents.worker.pipeline import triage_incident
from incidents.worker.workspace import WorkspaceRootError, ensure_root

logger = logging.getLogger("incidents.worker")

OUTCOMES = (Status.RESOLVED, Status.FAILED, Status.AGENT_FAILED, "claim_lost")


class Mode(StrEnum):
    FOREVER = "forever"
    ONCE = "once"
    UNTIL_EMPTY = "until_empty"


@dataclass
class Summary:
    """Counts of what one worker run did; safe to update from several slots."""

    outcomes: Counter = field(default_factory=Counter)
    requeued: int = 0  # lost incidents returned to pending
    abandoned: int = 0  # lost twice: agent_failed
    started: float = field(default_factory=time.monotonic)
    failure: str = ""  # why the worker stopped early ("" when it did not)
    failure_kind: str = ""  # "database" or "workspace"
    left: str = ""  # what the queue held when it stopped early
    paused: str = ""  # why claims were paused when it ended (the daily budget), "" if not
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, kind: str, reason: str) -> None:
        """Record the first reason to stop early (later slots fail for the same one)."""
        with self._lock:
            if not self.failure:
                self.failure_kind, self.failure = kind, reason

    def count(self, status: str) -> None:
        with self._lock:
            self.outcomes[status] += 1

    def count_recovered(self, statuses: list[str]) -> None:
        with self._lock:
            self.requeued += sum(1 for status in statuses if status == Status.PENDING)
            self.abandoned += sum(1 for status in statuses if status != Status.PENDING)

    @property
    def triaged(self) -> int:
        return sum(self.outcomes.values())

    def line(self) -> str:
        """`triaged N: resolved N, failed N, agent_failed N; lost requeued N, lost twice N in Ts`"""
        counts = ", ".join(f"{status} {self.outcomes[status]}" for status in OUTCOMES[:3])
        lost = self.outcomes["claim_lost"]
        late = f", claim lost {lost}" if lost else ""
        line = (
            f"triaged {self.triaged}: {counts}{late}; "
            f"lost requeued {self.requeued}, lost twice {self.abandoned} "
            f"in {time.monotonic() - self.started:.1f}s"
        )
        if self.failure:
            line += f"; stopped early ({self.failure_kind}), left: {self.left}"
        if self.paused:
            line += f"; claims paused: {self.paused}"
        return line


class Worker:
    """Runs the pipeline over the queue; see the module docstring."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        mode: Mode = Mode.FOREVER,
        store_factory: Callable[[], DjangoStateStore] = DjangoStateStore,
        recovery_interval: float = 60.0,
        clock: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.config = config
        self.mode = mode
        self.store_factory = store_factory
        self.recovery_interval = max(recovery_interval, config.poll_interval)
        self.summary = Summary()
        self._in_flight: set[uuid.UUID] = set()  # incidents claimed and not yet recorded
        self._stop = threading.Event()
        self._recovery_lock = threading.Lock()
        self._last_recovery = float("-inf")
        self._claims_left = 1 if mode == Mode.ONCE else None
        self._claims_lock = threading.Lock()
        self.clock = clock  # the budget's notion of "today" (tests move it)
        self._budget_lock = threading.Lock()
        self._budget_paused: tuple | None = None  # (day, limit) the pause was logged for

    # -- control ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop claiming; running agents finish. Safe from a signal handler."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> Summary:
        """Work until the mode says to stop (or stop() is called); return the summary."""
        logger.info(
            "worker started mode=%s concurrency=%d timeout=%gs",
            self.mode,
            self.config.concurrency,
            self.config.timeout,
            extra={"step": "worker started", "mode": str(self.mode)},
        )
        slots = 1 if self.mode == Mode.ONCE else self.config.concurrency
        if slots == 1:
            self._slot()
        else:
            threads = [
                threading.Thread(target=self._threaded_slot, name=f"triage-slot-{n}")
                for n in range(slots)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():  # short joins keep the main thread responsive to signals
                    thread.join(timeout=0.5)
        if self.summary.failure:
            self.summary.left = self._what_is_left()
        logger.info(
            "worker finished: %s",
            self.summary.line(),
            extra={
                "step": "worker finished",
                "triaged": self.summary.triaged,
                **{f"count_{status}": self.summary.outcomes[status] for status in OUTCOMES},
                "lost_requeued": self.summary.requeued,
                "lost_twice": self.summary.abandoned,
            },
        )
        return self.summary

    # -- internals ------------------------------------------------------------------------------
    def _threaded_slot(self) -> None:
        try:
            self._slot()
        except Exception:
            logger.exception("triage slot crashed", extra={"step": "slot crashed"})
            self.stop()  # a broken slot means a broken worker; let the others wind down
        finally:
            connections.close_all()  # this thread's connections

    def _take_claim(self) -> bool:
        with self._claims_lock:
            if self._claims_left is None:
                return True
            if self._claims_left == 0:
                return False
            self._claims_left -= 1
            return True

    def _recover(self, store: DjangoStateStore) -> None:
        """Requeue (or give up on) incidents lost by dead workers; one slot at a time."""
        if not self._recovery_lock.acquire(blocking=False):
            return
        try:
            if time.monotonic() - self._last_recovery < self.recovery_interval:
                return
            self._last_recovery = time.monotonic()
            recovered = store.recover_lost_incidents(timezone.now() - self.config.lost_after)
            for incident in recovered:
                logger.warning(
                    "recovered lost incident=%s status=%s",
                    incident.incident_id,
                    incident.status,
                    extra={
                        "step": "recovered",
                        "incident_id": str(incident.incident_id),
                        "status": incident.status,
                    },
                )
            self.summary.count_recovered([incident.status for incident in recovered])
        finally:
            self._recovery_lock.release()

    def _slot(self) -> None:
        store = self.store_factory()
        while not self.stopping:
            try:
                self._recover(store)
                # Before each claim: an agent may have taken the root's mode (`chmod 000`).
                ensure_root(self.config.workspace_root)
                if not self._budget_allows(store):
                    if self.mode != Mode.FOREVER:
                        return
                    self._stop.wait(self.config.poll_interval)
                    continue
                if not self._take_claim():
                    return
                incident = store.claim_next_incident()
                if incident is None:
                    if self.mode != Mode.FOREVER:
                        return
                    self._stop.wait(self.config.poll_interval)
                    continue
                self._triage(store, incident)
            except WorkspaceRootError as error:
                self._stop_early("workspace", str(error))
            except DatabaseError as error:
                # The database is unreachable or refused a write. A claimed incident stays
                # investigating and is recovered as lost; a long-running worker waits and retries.
                if self.mode != Mode.FOREVER:
                    first_line = (str(error).strip().splitlines() or [repr(error)])[0]
                    self._stop_early("database", f"database error: {first_line}")
                    return
                logger.exception("database error; retrying", extra={"step": "database error"})
                connections[store.using].close()
                self._stop.wait(self.config.poll_interval)

    def _budget_allows(self, store: DjangoStateStore) -> bool:
        """Whether today's recorded spend leaves room under the daily budget (one indexed query;
        see `incidents.budget`). A pause is logged, and notified, once per day and budget; the
        end of one (a new UTC day, a raised budget) once too."""
        if self.config.daily_budget is None:
            return True
        state = budget_state(now=self.clock(), limit=self.config.daily_budget, using=store.using)
        with self._budget_lock:
            if not state.exhausted:
                if self._budget_paused is not None:
                    self._budget_paused = None
                    self.summary.paused = ""
                    logger.info(
                        "worker resumes claiming: $%.2f spent of $%.2f on %s",
                        state.spent,
                        state.limit,
                        state.day,
                        extra={"step": "budget resumed", "spent_usd": str(state.spent)},
                    )
                return True
            if self._budget_paused != (state.day, state.limit):
                self._budget_paused = (state.day, state.limit)
                self.summary.paused = state.reason()
                self._announce_pause(state, store)
        return False

    def _announce_pause(self, state: BudgetState, store: DjangoStateStore) -> None:
        logger.warning(
            "worker stops claiming: %s",
            state.reason(),
            extra={"step": "budget reached", "spent_usd": str(state.spent)},
        )
        try:
            notify_budget_reached(state, using=store.using)
        except DatabaseError:
            # The pause holds either way; the next day's (or budget's) pause notifies again.
            logger.exception("budget notification not written", extra={"step": "budget notify"})

    def _stop_early(self, kind: str, reason: str) -> None:
        logger.error(
            "worker stops claiming: %s",
            reason,
            extra={"step": "stopped early", "reason": reason},
        )
        self.summary.fail(kind, reason)
        self.stop()

    def _what_is_left(self) -> str:
        """The queue when the worker stopped early, as far as the database still answers."""
        claimed = len(self._in_flight)
        mine = f"{claimed} claimed by this worker and not recorded (requeued once counted lost)"
        try:
            counts = dict(
                Incident.objects.filter(status__in=[Status.PENDING, Status.INVESTIGATING])
                .values_list("status")
                .annotate(Count("pk"))
                .order_by()
            )
        except DatabaseError:
            return f"queue unknown (database unreachable), {mine}"
        finally:
            if threading.current_thread() is not threading.main_thread():
                connections.close_all()
        return (
            f"{counts.get(Status.PENDING, 0)} pending, "
            f"{counts.get(Status.INVESTIGATING, 0)} investigating, "
            f"{mine}"
        )

    def _triage(self, store: DjangoStateStore, incident: Incident) -> None:
        """Triage a claimed incident; a bug in the pipeline fails that incident, not the worker."""
        self._in_flight.add(incident.incident_id)
        try:
            outcome = triage_incident(store, incident, self.config)
        except WorkspaceRootError:
            # Not this incident's fault: back to the queue for a worker with a usable root.
            store.update_incident_status(incident.incident_id, Status.PENDING)
            self._in_flight.discard(incident.incident_id)
            raise
        except DatabaseError:
            raise
        except Exception as error:
            logger.exception(
                "worker error incident=%s",
                incident.incident_id,
                extra={"step": "worker error", "incident_id": str(incident.incident_id)},
            )
            try:
                with transaction.atomic(using=store.using):
                    # Only while the claim is still this worker's: never another's outcome.
                    if store.holds_claim(incident.incident_id, incident.started_at):
                        store.complete_incident(
                            incident.incident_id,
                            None,
                            failure_reason=f"worker error: {type(error).__name__}: {error}",
                            status=Status.AGENT_FAILED,
                        )
            except StoreError:
                pass  # it was completed before the error: nothing left to record
            self.summary.count(Status.AGENT_FAILED)
            self._in_flight.discard(incident.incident_id)
            return
        self._in_flight.discard(incident.incident_id)
        self.summary.count(outcome.status)

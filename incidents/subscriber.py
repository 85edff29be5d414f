"""Live ingestion: keep a kubernetes-mcp-server subscription alive and store what it sends.

Two threads, one job each:

- the event loop (the caller's thread) holds the MCP session (`incidents.mcp_client`): connect,
  subscribe, then a heartbeat (a ping, and a check that the notification stream is still open).
  On any failure — refused connection, dropped stream, server restart, a server that stops
  answering — it reconnects with exponential backoff (1 s doubling to 30 s, with jitter) and
  subscribes again, because a subscription dies with its session. It never touches the
  database: each notification goes, as the full JSON-RPC envelope, onto a queue.
- `IngestWorker`, a thread with its own database connection, feeds the queue into the same
  `IngestionService` that `ingest_events` uses (same validation, outcomes and counters). Writes
  are batched, and a batch is flushed at the latest `FLUSH_AFTER` seconds after its first record
  arrived, so no event waits more than about a second to be stored.

Stopping (SIGTERM/SIGINT, `stop()`, or a test hook) flushes everything received, calls
`events_unsubscribe` when connected, and returns the final counts. A subscription the server
refuses (no `events_subscribe` tool, an invalid mode, a tool error) is a configuration error,
not a network blip: it is logged at ERROR with the server's words and `run()` raises
`SubscriptionRefused` at once instead of retrying forever.

`kubernetes/events` notifications (events mode) are plain Kubernetes events: counted as ignored
without a log line each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.utils import timezone

from incidents.ingest import IngestCounts
from incidents.ingest_worker import FLUSH_AFTER, MAX_BACKLOG, IngestWorker
from incidents.mcp_client import (
    SUBSCRIPTION_ERROR_LOGGER,
    LogMessage,
    Subscription,
    SubscriptionFilters,
    SubscriptionRefused,
    subscribe,
)

logger = logging.getLogger(__name__)

# Re-exported: the writing thread lives in incidents.ingest_worker.
__all__ = ["FLUSH_AFTER", "MAX_BACKLOG", "IngestWorker", "Subscriber", "SubscriberConfig"]

BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
# How long a stopping subscriber waits for `events_unsubscribe` before leaving anyway.
UNSUBSCRIBE_TIMEOUT = 5.0


def backoff_delay(attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect attempt `attempt` (0 for the first retry).

    1 s doubling to 30 s; jitter takes up to a fifth off, so many subscribers restarted together
    do not reconnect in lockstep, and the cap stays a cap.
    """
    nominal = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt, 16))
    return nominal * (rng or random).uniform(0.8, 1.0)


def find_error(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """`error` or the first exception of type `kind` inside the SDK's exception groups."""
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = find_error(inner, kind)
            if found is not None:
                return found
    return None


def describe_error(error: BaseException) -> str:
    """A one-line reason for a failed connection, looking inside the SDK's exception groups."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe_error(inner) for inner in error.exceptions)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class NotificationStreamLost(Exception):
    """The session answers, but the stream that carries notifications is gone."""


class IngestFailed(Exception):
    """The ingest worker died, so the subscriber stopped rather than drop what it receives."""


@dataclass(frozen=True)
class SubscriberConfig:
    """Everything `subscribe_mcp` was asked to do."""

    url: str
    filters: SubscriptionFilters = field(default_factory=SubscriptionFilters)
    headers: dict[str, str] = field(default_factory=dict)
    # --cluster: the cluster every record is stored under, whatever the server calls it.
    cluster: str | None = None
    batch_size: int | None = None  # None: TRIAGE_INGEST_BATCH_SIZE
    rejects_path: Path | None = None
    status_interval: float = 60.0
    # How often the session is pinged; a failed ping means the connection is gone.
    heartbeat_interval: float = 10.0
    # How long the notification stream may stay closed (the SDK reopens it after ~1 s).
    stream_grace: float = 5.0
    request_timeout: float = 30.0
    # Test hooks: stop after this many notifications, or after this many seconds.
    max_events: int | None = None
    exit_after: float | None = None


class Subscriber:
    """Runs one subscription until stopped; see the module docstring for the guarantees."""

    def __init__(self, config: SubscriberConfig) -> None:
        self.config = config
        self.notifications = 0
        self.subscription_errors = 0
        self.reconnects = 0
        self.subscriptions = 0
        self.connected_since: datetime | None = None
        self.subscription_id: str | None = None
        # Set when the server refused the subscription: run() raises it.
        self.refused: SubscriptionRefused | None = None
        self.worker = IngestWorker(
            source=config.url,
            batch_size=config.batch_size,
            rejects_path=config.rejects_path,
            cluster=config.cluster,
        )
        self.worker.on_failure = self.stop
        self._loop: asyncio.AbstractEventLoop | None = None
        # Created unbound; it binds to the loop of the one `run()` a Subscriber gets.
        self._stop = asyncio.Event()
        self._started = threading.Event()

    # --- public, thread-safe ---------------------------------------------------------------

    def run(self, *, install_signal_handlers: bool = True) -> IngestCounts:
        """Block until stopped; return the ingestion counts. SIGTERM/SIGINT stop it cleanly.

        Raises `SubscriptionRefused` when the server refused the subscription (logged at ERROR),
        `IngestFailed` when the ingest worker died (its error is logged and chained), or when
        received notifications could not be written before the end.
        """
        counts = asyncio.run(self._main(install_signal_handlers=install_signal_handlers))
        if self.refused is not None:
            raise self.refused
        if self.worker.failure is not None:
            raise IngestFailed(
                f"storing notifications failed: {describe_error(self.worker.failure)}"
            ) from self.worker.failure
        if self.worker.unsaved:
            raise IngestFailed(
                f"{self.worker.unsaved} received notifications could not be stored "
                "(the database stayed unreachable)"
            )
        return counts

    def stop(self) -> None:
        """Ask a running subscriber to flush, unsubscribe and return; callable from any thread."""
        self._started.wait(10)
        if self._loop is not None:
            # A subscriber that has already returned has nothing left to stop.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)

    @property
    def counts(self) -> IngestCounts:
        """The ingestion service's counters (read from another thread: a snapshot)."""
        return self.worker.counts

    def status_line(self) -> str:
        if self.connected_since is not None:
            state = (
                f"connected since {self.connected_since.isoformat(timespec='seconds')} "
                f"(subscription {self.subscription_id})"
            )
        else:
            state = "disconnected"
        backlog = self.worker.backlog()
        return (
            f"status: {state}; {self.counts.summary()}; "
            f"subscription errors {self.subscription_errors} (counted as ignored); "
            f"reconnect attempts {self.reconnects}; queued {backlog}, "
            f"dropped {self.worker.dropped}"
        )

    # --- the event loop --------------------------------------------------------------------

    async def _main(self, *, install_signal_handlers: bool) -> IngestCounts:
        loop = self._loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal, signum)
        self.worker.start()
        self.worker.wait_ready()
        self._started.set()
        helpers = [asyncio.create_task(self._report_status())]
        if self.config.exit_after is not None:
            helpers.append(asyncio.create_task(self._stop_after(self.config.exit_after)))
        try:
            await self._serve()
        finally:
            for task in helpers:
                task.cancel()
            self.worker.stop()
            await asyncio.to_thread(self.worker.join)
            if install_signal_handlers:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
        logger.info("%s", self.status_line())
        return self.counts

    def _on_signal(self, signum: int) -> None:
        logger.info("%s received: flushing and unsubscribing", signal.Signals(signum).name)
        self._stop.set()

    async def _stop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        logger.info("--exit-after %.1f s reached: stopping", seconds)
        self._stop.set()

    async def _report_status(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval)
            logger.info("%s", self.status_line())

    async def _serve(self) -> None:
        """Run the connection loop until it ends or a stop is asked for.

        A stop while connected lets the loop unsubscribe; a stop while connecting or waiting
        to reconnect cancels it at once, as there is nothing to say goodbye to.
        """
        connection_loop = asyncio.create_task(self._connection_loop())
        stopped = asyncio.create_task(self._stop.wait())
        await asyncio.wait({connection_loop, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not connection_loop.done() and self.connected_since is None:
            connection_loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connection_loop

    async def _connection_loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            logger.info("connecting to %s (attempt %d)", self.config.url, attempt + 1)
            try:
                async with subscribe(
                    self.config.url,
                    self.config.filters,
                    on_message=self._on_message,
                    headers=self.config.headers,
                    timeout=self.config.request_timeout,
                ) as subscription:
                    attempt = 0
                    self.subscriptions += 1
                    self.connected_since = timezone.now()
                    self.subscription_id = subscription.subscription_id
                    logger.info(
                        "subscribed to %s: subscription %s, %s",
                        self.config.url,
                        subscription.subscription_id,
                        self.config.filters.arguments(),
                    )
                    await self._hold(subscription)
                    await self._unsubscribe(subscription)
                    return
            except Exception as error:
                refused = find_error(error, SubscriptionRefused)
                if refused is not None:
                    self.refused = refused  # type: ignore[assignment]
                    logger.error(
                        "%s refused the subscription, stopping (a configuration error: check "
                        "--url, --mode and --context): %s",
                        self.config.url,
                        refused,
                    )
                    return
                logger.warning(
                    "connection to %s failed: %s", self.config.url, describe_error(error)
                )
            finally:
                self.connected_since = None
            if self._stop.is_set():
                return
            delay = backoff_delay(attempt)
            attempt += 1
            self.reconnects += 1
            logger.info(
                "reconnecting to %s in %.1f s (attempt %d)", self.config.url, delay, attempt + 1
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)

    async def _hold(self, subscription: Subscription) -> None:
        """Return when a stop is asked for; raise when a heartbeat finds the connection broken.

        Broken: the ping fails, or the notification stream has stayed closed longer than the
        SDK needs to reopen it (it gives up silently after two failed reopenings).
        """
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.config.heartbeat_interval)
                return
            await subscription.ping()
            down_for = subscription.notification_stream_down_for()
            if down_for > self.config.stream_grace:
                raise NotificationStreamLost(
                    f"the notification stream has been closed for {down_for:.1f} s"
                )

    async def _unsubscribe(self, subscription: Subscription) -> None:
        try:
            await asyncio.wait_for(subscription.unsubscribe(), timeout=UNSUBSCRIBE_TIMEOUT)
            logger.info("unsubscribed %s", subscription.subscription_id)
        except Exception as error:
            # Leaving is not worth failing over: the server drops it with the session anyway.
            logger.warning(
                "events_unsubscribe %s failed: %s",
                subscription.subscription_id,
                describe_error(error),
            )

    def _on_message(self, message: LogMessage) -> None:
        self.notifications += 1
        if message.logger == SUBSCRIPTION_ERROR_LOGGER:
            self.subscription_errors += 1
            data = message.data
            if isinstance(data, str):
                # RecursionError: thousands of nested brackets, which json cannot parse.
                with contextlib.suppress(ValueError, RecursionError):
                    data = json.loads(data)
            if not isinstance(data, dict):
                data = {"error": data}
            logger.warning(
                "subscription error from %s: subscription %s, cluster %s, degraded %s: %s",
                self.config.url,
                data.get("subscriptionId"),
                data.get("cluster"),
                data.get("degraded"),
                data.get("error"),
            )
        self.worker.submit(message.envelope(), sequence=self.notifications)
        if self.config.max_events is not None and self.notifications >= self.config.max_events:
            logger.info("--max-events %d reached: stopping", self.config.max_events)
            self._stop.set()


def run_in_thread(config: SubscriberConfig) -> tuple[Subscriber, threading.Thread]:
    """Start a subscriber on a background thread (no signal handlers); for tests and embedding."""
    subscriber = Subscriber(config)
    thread = threading.Thread(
        target=subscriber.run, kwargs={"install_signal_handlers": False}, daemon=True
    )
    thread.start()
    return subscriber, thread

"""Sending: one HTTP attempt, what it means, and the deliverer loop of `deliver_notifications`.

| the receiver                              | what happens                                      |
|-------------------------------------------|---------------------------------------------------|
| answers 2xx                               | delivered                                         |
| answers 429 (or 5xx with Retry-After)     | retried no sooner than Retry-After (capped)       |
| answers 5xx                               | retried after the backoff                         |
| times out, refuses, resets the connection | retried after the backoff                         |
| answers 3xx or any other 4xx              | failed at once (a wrong URL or a revoked webhook) |

The backoff is exponential with jitter: attempt n waits between half and all of
`min(backoff_cap, backoff_base * 2 ** (n - 1))`. After `max_attempts` the notification is failed
with the last error; the admin's "Retry now" gives it a fresh set. Every request has a timeout
(connect, write and each read); the response body is read up to 64 KB, within the same budget.
Redirects are not followed. URLs and secrets never appear in logs or stored errors.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

import httpx2
from django.conf import settings
from django.db import DatabaseError, connections, router
from django.utils import timezone

from incidents.models import Notification
from incidents.notifications import outbox
from incidents.notifications.channels import redact
from incidents.notifications.kinds import DeliveryStatus
from incidents.notifications.messages import USER_AGENT, build_request

logger = logging.getLogger("incidents.notifications")

MAX_RESPONSE_BYTES = 64 * 1024
ERROR_CHARS = 500


@dataclass(frozen=True, kw_only=True)
class DeliveryPolicy:
    timeout: float = 10.0
    max_attempts: int = 8
    backoff_base: float = 10.0
    backoff_cap: float = 1800.0
    max_retry_after: float = 3600.0

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.max_attempts < 1 or self.backoff_base < 0:
            raise ValueError("timeout > 0, max_attempts >= 1 and backoff_base >= 0 are required")

    @property
    def lease(self) -> timedelta:
        """How long a claim lasts: longer than any one attempt can take (connect, write, read,
        each up to the timeout), so two deliverers never send the same row at once."""
        return timedelta(seconds=3 * self.timeout + 5)

    def backoff(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Attempt:
    verdict: Verdict
    status_code: int | None = None
    error: str = ""
    retry_after: float | None = None


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _read_capped(response: httpx2.Response, deadline: float) -> bytes:
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= MAX_RESPONSE_BYTES:
            break
        if time.monotonic() > deadline:
            raise httpx2.ReadTimeout("the response body took too long")
    return data[:MAX_RESPONSE_BYTES]


def judge(status: int, body: bytes, retry_after: str | None) -> Attempt:
    """What an HTTP answer means (see the module docstring)."""
    if 200 <= status < 300:
        return Attempt(Verdict.DELIVERED, status)
    text = body[:200].decode("utf-8", "replace").strip()
    error = f"HTTP {status}" + (f": {text}" if text else "")
    if status == 429 or status >= 500:
        return Attempt(Verdict.RETRY, status, error, retry_after_seconds(retry_after))
    return Attempt(Verdict.FAILED, status, error)


def send(client: httpx2.Client, url: str, request, *, timeout: float) -> Attempt:
    """POST one notification; never raises for what a network or a receiver can do."""
    deadline = time.monotonic() + 3 * timeout
    try:
        with client.stream(
            "POST", url, headers=request.headers, content=request.body, timeout=timeout
        ) as response:
            body = _read_capped(response, deadline)
            return judge(response.status_code, body, response.headers.get("Retry-After"))
    except httpx2.TimeoutException as error:
        return Attempt(
            Verdict.RETRY, error=f"timed out after {timeout:g} s ({type(error).__name__})"
        )
    except httpx2.UnsupportedProtocol as error:
        return Attempt(Verdict.FAILED, error=f"unsupported URL: {error}")
    except httpx2.TransportError as error:
        return Attempt(Verdict.RETRY, error=f"connection error: {type(error).__name__}: {error}")
    except httpx2.InvalidURL as error:
        return Attempt(Verdict.FAILED, error=f"invalid URL: {error}")


class Mode(StrEnum):
    FOREVER = "forever"
    ONCE = "once"  # until nothing is due now (retries due later are left for the next run)
    UNTIL_EMPTY = "until_empty"  # until every notification is delivered or failed


@dataclass
class Summary:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    lease_lost: int = 0
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def line(self) -> str:
        late = f", lease lost {self.lease_lost}" if self.lease_lost else ""
        return (
            f"delivered {self.delivered}, retried {self.retried}, failed {self.failed}{late} "
            f"in {time.monotonic() - self.started:.1f}s"
        )


class Deliverer:
    """Claims due notifications one at a time and sends them; see the module docstring.

    With concurrency N, N slots run in threads, each with its own database connection and HTTP
    client; with 1, the slot runs in the calling thread. `stop()` (SIGTERM/SIGINT in the
    command) ends the loop after the attempts in flight.
    """

    def __init__(
        self,
        policy: DeliveryPolicy | None = None,
        *,
        mode: Mode = Mode.FOREVER,
        concurrency: int = 1,
        poll_interval: float = 2.0,
        base_url: str | None = None,
        using: str | None = None,
        transport: httpx2.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or DeliveryPolicy()
        self.mode = mode
        self.concurrency = max(1, concurrency)
        self.poll_interval = poll_interval
        self.base_url = base_url if base_url is not None else settings.TRIAGE_BASE_URL
        self.using = using or router.db_for_write(Notification)
        self.transport = transport
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        # Who holds a claim (shown in the admin); each claim adds its own suffix, so a slot whose
        # lease ran out can never settle a row another slot of this process took since.
        self.token = f"{socket.gethostname()[:30]}:{os.getpid()}"
        self.summary = Summary()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def client(self) -> httpx2.Client:
        return httpx2.Client(
            timeout=self.policy.timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            transport=self.transport,
        )

    def run(self) -> Summary:
        if self.concurrency == 1:
            self._slot()
        else:
            threads = [
                threading.Thread(target=self._threaded_slot, name=f"notify-slot-{n}")
                for n in range(self.concurrency)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():  # short joins keep the main thread responsive to signals
                    thread.join(timeout=0.5)
        logger.info("deliverer finished: %s", self.summary.line())
        return self.summary

    def _threaded_slot(self) -> None:
        try:
            self._slot()
        except Exception:
            logger.exception("delivery slot crashed")
            self.stop()
        finally:
            connections.close_all()

    def _slot(self) -> None:
        with self.client() as client:
            while not self.stopping:
                try:
                    routed = outbox.fan_out(using=self.using)
                    if self.deliver_one(client) or routed:
                        continue
                    wait = outbox.seconds_until_due(using=self.using)
                except DatabaseError:
                    if self.mode != Mode.FOREVER:
                        raise
                    logger.exception("database error; retrying")
                    connections[self.using].close()
                    self._stop.wait(self.poll_interval)
                    continue
                if self.mode == Mode.ONCE or (wait is None and self.mode == Mode.UNTIL_EMPTY):
                    return
                pause = self.poll_interval if wait is None else min(wait, self.poll_interval)
                self._stop.wait(max(pause, 0.05))

    def deliver_one(self, client: httpx2.Client) -> bool:
        """Claim, send and settle one due notification; False when none is due."""
        token = f"{self.token}:{uuid.uuid4().hex[:12]}"
        notification = outbox.claim(using=self.using, token=token, lease=self.policy.lease)
        if notification is None:
            return False
        channel = notification.channel
        if not channel.enabled:  # switched off after the event: kept, retryable once back on
            self._settle(notification, Attempt(Verdict.FAILED, error="channel disabled"), token)
            return True
        try:
            request = build_request(notification, base_url=self.base_url)
        except Exception as error:  # a message that cannot be built will not build next time
            logger.exception("notification %s: message not built", notification.pk)
            attempt = Attempt(Verdict.FAILED, error=f"message not built: {type(error).__name__}")
        else:
            attempt = send(client, channel.url, request, timeout=self.policy.timeout)
        self._settle(notification, attempt, token)
        return True

    def _settle(self, notification: Notification, attempt: Attempt, token: str) -> None:
        now = timezone.now()
        attempts = notification.attempts + 1
        error = redact(attempt.error, notification.channel)[:ERROR_CHARS]
        fields: dict[str, object] = {
            "attempts": attempts,
            "last_attempt_at": now,
            "last_status_code": attempt.status_code,
            "last_error": error,
        }
        verdict = attempt.verdict
        if verdict == Verdict.RETRY and attempts >= self.policy.max_attempts:
            verdict = Verdict.FAILED
            fields["last_error"] = f"gave up after {attempts} attempts: {error}"[:ERROR_CHARS]
        if verdict == Verdict.DELIVERED:
            fields.update(status=DeliveryStatus.DELIVERED, delivered_at=now, last_error="")
        elif verdict == Verdict.FAILED:
            fields["status"] = DeliveryStatus.FAILED
        else:
            delay = self.policy.backoff(attempts, self.rng)
            if attempt.retry_after is not None:
                delay = max(delay, min(attempt.retry_after, self.policy.max_retry_after))
            fields["next_attempt_at"] = now + timedelta(seconds=delay)
        held = outbox.settle(using=self.using, notification=notification, token=token, **fields)
        counter = {Verdict.DELIVERED: "delivered", Verdict.FAILED: "failed"}.get(verdict, "retried")
        self.summary.count(counter if held else "lease_lost")
        logger.log(
            logging.INFO if verdict == Verdict.DELIVERED else logging.WARNING,
            "notification %s %s to channel %s: %s (attempt %d)%s%s",
            notification.pk,
            notification.event,
            notification.channel.name,
            verdict if held else "result dropped, lease lost",
            attempts,
            f" status={attempt.status_code}" if attempt.status_code else "",
            f" error={fields['last_error']}" if fields["last_error"] else "",
            extra={
                "notification_id": str(notification.pk),
                "event": notification.event,
                "channel": notification.channel.name,
                "verdict": str(verdict),
                "attempt": attempts,
                "status_code": attempt.status_code,
            },
        )

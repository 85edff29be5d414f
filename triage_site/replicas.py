"""Read replicas: the dashboard's and the API's reads go to a healthy PostgreSQL replica.

`DATABASE_REPLICA_URLS` (comma-separated) adds one database alias per replica (`replica_1`, …).
Only reads of the `incidents` app's tables, made while serving a safe (GET/HEAD) request to the
dashboard or the API, are sent to a replica; everything else reads and writes the primary:
the store's writes, worker claims, ingestion, the admin, sign-in and sessions (a session row just
written must be found on the next request, however far the replica lags).

Read-your-writes: a person who has just changed something (any POST, PUT, PATCH or DELETE, an
admin save or an on-call action) reads from the primary for `DJANGO_READ_YOUR_WRITES_SECONDS`,
marked by a cookie, so the page they return to shows their own change.

A replica that does not answer, or whose replay lags more than
`DJANGO_REPLICA_MAX_LAG_SECONDS` behind the primary, is skipped; its state is checked at most
once every `HEALTH_TTL_SECONDS` per process, and `/healthz` reports each replica's lag.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models import Model
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

HEALTH_TTL_SECONDS = 2.0
PRIMARY_COOKIE = "triage_primary_until"
REPLICA_APPS = frozenset({"incidents"})
# Replay lag: zero while the replica has replayed all it received (an idle primary writes
# nothing, so the time since the last replayed transaction says nothing), else the age of the
# last replayed transaction.
LAG_SQL = (
    "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
)

_replica_reads = contextvars.ContextVar("replica_reads", default=False)


@dataclass(frozen=True)
class ReplicaHealth:
    alias: str
    ok: bool
    lag_seconds: float | None
    error: str = ""

    def as_json(self) -> dict[str, object]:
        state: dict[str, object] = {"status": "ok" if self.ok else "skipped"}
        state["lag_seconds"] = None if self.lag_seconds is None else round(self.lag_seconds, 3)
        if self.error:
            state["error"] = self.error
        return state


class _HealthCache:
    """Each replica's last measured health, per process, refreshed after HEALTH_TTL_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, ReplicaHealth]] = {}

    def get(self, alias: str, measure: Callable[[str], ReplicaHealth]) -> ReplicaHealth:
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(alias)
        if seen and now - seen[0] < HEALTH_TTL_SECONDS:
            return seen[1]
        health = measure(alias)
        with self._lock:
            self._seen[alias] = (now, health)
        return health

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


health_cache = _HealthCache()


def replica_aliases() -> list[str]:
    return list(getattr(settings, "DATABASE_REPLICAS", []))


def measure(alias: str) -> ReplicaHealth:
    """Ask the replica how far its replay is behind; an error or a big lag means skip it."""
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(LAG_SQL)
            row = cursor.fetchone()
    except DatabaseError as error:
        connections[alias].close()  # a broken persistent connection must not be reused
        logger.warning("replica %s skipped: %s", alias, (str(error).strip() or "no answer")[:200])
        return ReplicaHealth(alias, ok=False, lag_seconds=None, error="unreachable")
    lag = float(row[0]) if row and row[0] is not None else 0.0
    if lag > settings.DJANGO_REPLICA_MAX_LAG_SECONDS:
        return ReplicaHealth(alias, ok=False, lag_seconds=lag, error="lagging")
    return ReplicaHealth(alias, ok=True, lag_seconds=lag)


def replica_health() -> list[ReplicaHealth]:
    """Every configured replica's health, as the router sees it now (for /healthz)."""
    return [health_cache.get(alias, measure) for alias in replica_aliases()]


def healthy_replica() -> str | None:
    healthy = [health.alias for health in replica_health() if health.ok]
    return random.choice(healthy) if healthy else None  # noqa: S311 - load spreading, not secrets


class ReplicaRouter:
    """Sends the incidents app's reads to a healthy replica while a request allows it."""

    def db_for_read(self, model: type[Model], **hints: object) -> str | None:
        if not _replica_reads.get() or model._meta.app_label not in REPLICA_APPS:
            return None
        return healthy_replica()

    def db_for_write(self, model: type[Model], **hints: object) -> str:
        return "default"

    def allow_relation(self, obj1: object, obj2: object, **hints: object) -> bool:
        # Replicas are copies of the primary: a row read from either relates to the other.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: object) -> bool:
        return db == "default"


def _reads_may_lag(request: HttpRequest) -> bool:
    if request.method not in ("GET", "HEAD") or request.path.startswith("/admin/"):
        return False
    try:
        until = float(request.COOKIES.get(PRIMARY_COOKIE, "0"))
    except ValueError:
        until = 0.0
    return time.time() >= until


class ReplicaReadMiddleware:
    """Allows replica reads for safe requests; after a write, the primary for a short window."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not replica_aliases():
            return self.get_response(request)
        token = _replica_reads.set(_reads_may_lag(request))
        try:
            response = self.get_response(request)
        finally:
            _replica_reads.reset(token)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            window = settings.DJANGO_READ_YOUR_WRITES_SECONDS
            response.set_cookie(
                PRIMARY_COOKIE,
                f"{time.time() + window:.3f}",
                max_age=max(1, int(window) + 1),
                httponly=True,
                samesite="Lax",
                secure=not settings.DEBUG,
            )
        return response

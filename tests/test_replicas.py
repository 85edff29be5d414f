"""Read replicas: the router's rules, then a real PostgreSQL streaming replica behind gunicorn.

The end-to-end tests make their own database on the primary, start a replica of it with
`scripts/pg_replica.py` (pg_basebackup -R, a second cluster on another port, run as `postgres`),
serve the site with gunicorn pointed at both, and prove the routing by what each page shows while
the replica's replay is paused: an incident created after the pause exists only on the primary.
Everything they start is stopped and removed in `finally`, whatever happens.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest
from django.test import RequestFactory, override_settings

from incidents.models import FaultEvent, Incident
from scripts.pg_replica import Replica
from triage_site import replicas

REPO = Path(__file__).resolve().parent.parent
DATABASE = "triage_replica_test"
PRIMARY_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"


# --- the router's rules, without a database ------------------------------------------------


@pytest.fixture
def one_healthy_replica(monkeypatch):
    monkeypatch.setattr(replicas, "replica_aliases", lambda: ["replica_1"])
    monkeypatch.setattr(
        replicas,
        "measure",
        lambda alias: replicas.ReplicaHealth(alias, ok=True, lag_seconds=0.0),
    )
    replicas.health_cache.clear()
    yield
    replicas.health_cache.clear()


def routed(request, model) -> str | None:
    """Where the router sends a read of `model` while the middleware handles `request`."""
    seen = {}

    def view(request):
        seen["db"] = replicas.ReplicaRouter().db_for_read(model)
        from django.http import HttpResponse

        return HttpResponse()

    replicas.ReplicaReadMiddleware(view)(request)
    return seen["db"]


def test_dashboard_reads_of_incidents_go_to_a_replica(one_healthy_replica):
    request = RequestFactory().get("/")
    assert routed(request, Incident) == "replica_1"
    assert routed(RequestFactory().get("/api/v1/incidents/"), FaultEvent) == "replica_1"


def test_sessions_users_admin_and_writes_stay_on_the_primary(one_healthy_replica):
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session

    assert routed(RequestFactory().get("/"), Session) is None
    assert routed(RequestFactory().get("/"), User) is None
    assert routed(RequestFactory().get("/admin/incidents/incident/"), Incident) is None
    assert routed(RequestFactory().post("/incidents/x/acknowledge/"), Incident) is None
    # Outside any request (the worker, ingestion, commands) reads stay on the primary.
    assert replicas.ReplicaRouter().db_for_read(Incident) is None
    assert replicas.ReplicaRouter().db_for_write(Incident) == "default"


@override_settings(DJANGO_READ_YOUR_WRITES_SECONDS=30)
def test_a_write_sends_the_same_persons_next_reads_to_the_primary(one_healthy_replica):
    def view(request):
        from django.http import HttpResponse

        return HttpResponse()

    response = replicas.ReplicaReadMiddleware(view)(RequestFactory().post("/anything/"))
    cookie = response.cookies[replicas.PRIMARY_COOKIE]
    assert float(cookie.value) > time.time() + 25
    after = RequestFactory().get("/")
    after.COOKIES[replicas.PRIMARY_COOKIE] = cookie.value
    assert routed(after, Incident) is None
    later = RequestFactory().get("/")
    later.COOKIES[replicas.PRIMARY_COOKIE] = f"{time.time() - 1:.3f}"
    assert routed(later, Incident) == "replica_1"


def test_an_unhealthy_replica_is_skipped(monkeypatch):
    monkeypatch.setattr(replicas, "replica_aliases", lambda: ["replica_1"])
    monkeypatch.setattr(
        replicas,
        "measure",
        lambda alias: replicas.ReplicaHealth(alias, ok=False, lag_seconds=99.0, error="lagging"),
    )
    replicas.health_cache.clear()
    try:
        assert routed(RequestFactory().get("/"), Incident) is None
    finally:
        replicas.health_cache.clear()


# --- a real streaming replica ----------------------------------------------------------------


def manage(*args: str, stdin: str | None = None, **env: str) -> str:
    environment = {**os.environ, "DJANGO_DEBUG": "1", "DATABASE_URL": PRIMARY_URL, **env}
    environment.pop("DATABASE_REPLICA_URLS", None)
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout


def psql(sql: str, *, port: int = 5432, database: str = "postgres") -> str:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", database, "-Atc", sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()


def fault(name: str) -> str:
    return json.dumps(
        {
            "faultId": hashlib.sha256(name.encode()).hexdigest()[:16],
            "cluster": "prod-eu-1",
            "faultType": "CrashLoop",
            "severity": "critical",
            "resource": {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": "shop"},
            "timestamp": "2026-11-29T10:00:00Z",
        }
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, *, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def site(replica: Replica, **env: str) -> Iterator[str]:
    """gunicorn serving the site with the replica configured; yields its base URL."""
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": PRIMARY_URL,
        "DATABASE_REPLICA_URLS": f"{replica.url}{DATABASE}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        **env,
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "triage_site.wsgi",
            "-c",
            "gunicorn.conf.py",
        ],
        cwd=REPO,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/healthz"), what="gunicorn to answer")
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def signed_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10, follow_redirects=False)
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/accounts/login/",
        data={"username": "sre", "password": "replica-test-pw", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert response.status_code == 302, response.text[:500]
    return client


@pytest.fixture(scope="module")
def replica(tmp_path_factory) -> Iterator[Replica]:
    psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    psql(f"CREATE DATABASE {DATABASE}")
    made = Replica(
        port=free_port(), directory=Path(tempfile.gettempdir()) / f"triage-replica-{os.getpid()}"
    )
    try:
        manage("migrate", "--no-input")
        manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User;"
            "User.objects.create_superuser('sre', '', 'replica-test-pw')",
        )
        manage("ingest_events", "-", stdin=fault("before-pause"))
        made.start()
        yield made
    finally:
        made.stop()
        psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def replica_has(replica: Replica, name: str) -> bool:
    count = replica.sql(
        f"SELECT count(*) FROM incidents WHERE resource_name = '{name}'", database=DATABASE
    )
    return count == "1"


@pytest.mark.postgres
def test_dashboard_reads_come_from_the_replica_and_writes_read_the_primary(replica):
    wait_for(lambda: replica_has(replica, "before-pause"), what="the replica to catch up")
    replica.sql("SELECT pg_wal_replay_pause()")
    try:
        manage("ingest_events", "-", stdin=fault("after-pause"))
        assert not replica_has(replica, "after-pause")
        with site(
            replica, DJANGO_READ_YOUR_WRITES_SECONDS="2", DJANGO_REPLICA_MAX_LAG_SECONDS="3600"
        ) as base:
            client = signed_in(base)
            # Right after signing in (a write), this person reads the primary.
            assert "after-pause" in client.get("/").text
            wait_for(lambda: "after-pause" not in client.get("/").text, what="the window to end")
            page = client.get("/").text
            assert "before-pause" in page  # served, from the paused replica
            health = httpx.get(f"{base}/healthz").json()
            assert health["replicas"]["replica_1"]["status"] == "ok"
            # The lag it measured (0 until the paused replica has received the new WAL).
            assert health["replicas"]["replica_1"]["lag_seconds"] >= 0
    finally:
        replica.sql("SELECT pg_wal_replay_resume()")


@pytest.mark.postgres
def test_a_lagging_replica_is_skipped(replica):
    replica.sql("SELECT pg_wal_replay_pause()")
    try:
        manage("ingest_events", "-", stdin=fault("while-lagging"))
        with site(
            replica, DJANGO_REPLICA_MAX_LAG_SECONDS="1", DJANGO_READ_YOUR_WRITES_SECONDS="0"
        ) as base:

            def lagging() -> bool:
                state = httpx.get(f"{base}/healthz").json()["replicas"]["replica_1"]
                return state["status"] == "skipped"

            wait_for(lagging, what="the lag to pass one second")
            client = signed_in(base)
            assert "while-lagging" in client.get("/").text
            assert httpx.get(f"{base}/healthz").json()["status"] == "degraded"
    finally:
        replica.sql("SELECT pg_wal_replay_resume()")


@pytest.mark.postgres
def test_a_stopped_replica_is_skipped_and_pages_still_answer(replica):
    manage("ingest_events", "-", stdin=fault("replica-down"))
    with site(replica, DJANGO_READ_YOUR_WRITES_SECONDS="0") as base:
        client = signed_in(base)
        replica.stop()

        def skipped() -> bool:
            state = httpx.get(f"{base}/healthz").json()["replicas"]["replica_1"]
            return state.get("error") == "unreachable"

        wait_for(skipped, what="the stopped replica to be noticed")
        response = client.get("/")
        assert response.status_code == 200
        assert "replica-down" in response.text

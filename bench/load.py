"""Load test: the dashboard under gunicorn at a fixed concurrency for a fixed time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_triage \\
        .venv/bin/python bench/load.py --concurrency 8 --duration 20

Expects a migrated database with data in it (`manage.py seed_demo --incidents 1000000`). It starts
gunicorn with production settings (DEBUG off, a throwaway secret key, TLS assumed at a proxy) on a
free loopback port, signs a bench user in by creating a session, then drives each scenario —
the list, a filtered list, an incident page — from `--concurrency` keep-alive connections for
`--duration` seconds, and prints requests/s, p50/p95/p99 and the error count. Only 127.0.0.1 is
ever contacted. Exit status 1 when any request failed.
"""

import argparse
import http.client
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")
    os.environ["DJANGO_DEBUG"] = "1"  # this process only reads and writes rows
    # The server checks the session's auth hash with its key: both processes share one.
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    import django

    django.setup()


def bench_session() -> str:
    """A signed-in session for a bench user, made directly in the session store."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    from incidents.roles import viewer_group

    user, _ = User.objects.get_or_create(username="bench-load")
    user.set_password(secrets.token_urlsafe(24))
    user.save()
    user.groups.add(viewer_group())
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def scenarios() -> dict[str, str]:
    from incidents.models import Incident, TriageReport

    report = TriageReport.objects.order_by("-generated_at").only("incident_id").first()
    incident_id = report.incident_id if report else Incident.objects.values_list("pk").first()[0]
    busiest = (
        Incident.objects.order_by("-created_at").values_list("cluster", flat=True).first()
        or "prod-us-east-1"
    )
    return {
        "list": "/",
        "filtered list": f"/?severity=critical&status=failed&cluster={busiest}",
        "incident page": f"/incidents/{incident_id}/",
    }


def start_gunicorn(port: int, workers: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_BEHIND_TLS_PROXY="1",
        DJANGO_LOG_LEVEL="WARNING",
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "triage_site.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--access-logfile",
            "/dev/null",
            "--error-logfile",
            "-",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start within 30 s")


def drive(port: int, path: str, headers: dict, concurrency: int, seconds: float) -> Result:
    result = Result()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies, errors, first_error = [], 0, ""
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                detail = f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as error:
                ok, detail = False, repr(error)
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = time.perf_counter() - started
            if ok:
                latencies.append(elapsed)
            else:
                errors += 1
                first_error = first_error or detail
        connection.close()
        with lock:
            result.latencies.extend(latencies)
            result.errors += errors
            result.first_error = result.first_error or first_error

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds per scenario")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    args = parser.parse_args()

    setup_django()
    from incidents.models import Incident

    total = Incident.objects.count()
    session_key = bench_session()
    paths = scenarios()
    headers = {
        "Host": "localhost",
        "Cookie": f"sessionid={session_key}",
        "X-Forwarded-Proto": "https",
    }
    port = free_port()
    server = start_gunicorn(port, args.workers)
    failed = False
    try:
        print(
            f"{total:,} incidents; gunicorn {args.workers} workers; "
            f"{args.concurrency} connections; {args.duration:g} s per scenario"
        )
        print(f"{'scenario':<16}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
              f"{'p99 ms':>9}{'errors':>8}")  # fmt: skip
        for name, path in paths.items():
            drive(port, path, headers, args.concurrency, args.warmup)
            result = drive(port, path, headers, args.concurrency, args.duration)
            ms = [latency * 1000 for latency in result.latencies]
            print(
                f"{name:<16}{len(ms):>10}{len(ms) / args.duration:>9.1f}"
                f"{percentile(ms, 50):>9.1f}{percentile(ms, 95):>9.1f}"
                f"{percentile(ms, 99):>9.1f}{result.errors:>8}"
            )
            if result.errors:
                failed = True
                print(f"  first error on {path}: {result.first_error}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

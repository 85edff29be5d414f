"""Benchmark: several `run_triage` processes on one PostgreSQL database, and the claim query.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/workers.py [--incidents 5000] [--processes 4] [--concurrency 4]

1. Creates a scratch database `bench_workers_<pid>` on the server of DATABASE_URL, migrates it,
   and ingests N realistic faults (samples/generate.py) with `ingest_events`.
2. Starts P `run_triage --until-empty --concurrency C` processes at once, with a fast agent (a
   shell one-liner that writes a 400-byte report), and times them until the last one exits:
   incidents triaged per second across all of them.
3. Checks that each incident was claimed exactly once: one agent execution per incident, every
   incident resolved, no execution left open.
4. Ingests N more faults and claims them from P × C threads in this process, timing each call of
   the store's `claim_next_incident` (the `FOR UPDATE SKIP LOCKED` query and its update): p50,
   p95 and p99 under that contention, and again that no incident was claimed twice.
5. Drops the scratch database (also on failure).

Only this machine is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "samples"))

from generate import generate  # noqa: E402 - samples/generate.py, found through sys.path

FAST_AGENT = (
    '/bin/sh -c \'yes "triage line for the benchmark" | head -c 400 > "$TRIAGE_REPORT_FILE"\''
)


def scratch_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench/workers.py needs DATABASE_URL=postgres://… (SKIP LOCKED is the point)")
    return urlunsplit(parts._replace(path=f"/{name}"))


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True)


def manage(url: str, *args: str, stdin: str | None = None, **env: str) -> str:
    environment = {**os.environ, "DJANGO_DEBUG": "1", "DATABASE_URL": url, **env}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def faults(n: int) -> str:
    run = uuid.uuid4().hex[:8]
    records = generate(n, run=run, recurrence=0, replay=0, ignored=0)
    return "".join(json.dumps(record) + "\n" for record in records)


def run_workers(url: str, processes: int, concurrency: int, workspace: Path) -> float:
    environment = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": url,
        "TRIAGE_AGENT_COMMAND": FAST_AGENT,
        "TRIAGE_WORKSPACE_ROOT": str(workspace),
    }
    command = [sys.executable, str(ROOT / "manage.py"), "run_triage", "--until-empty",
               "--concurrency", str(concurrency), "--poll-interval", "0.2"]  # fmt: skip
    started = time.perf_counter()
    children = [
        subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL)
        for _ in range(processes)
    ]
    codes = [child.wait() for child in children]
    elapsed = time.perf_counter() - started
    if any(codes):
        sys.exit(f"a run_triage process failed: exit codes {codes}")
    return elapsed


def check_each_claimed_once() -> tuple[int, int, int]:
    """(incidents, incidents with other than one execution, incidents not resolved)."""
    from django.db.models import Count, Q

    from incidents.models import Incident

    counts = Incident.objects.aggregate(
        total=Count("pk"), unresolved=Count("pk", filter=~Q(status="resolved"))
    )
    not_once = Incident.objects.annotate(runs=Count("executions")).exclude(runs=1).count()
    return counts["total"], not_once, counts["unresolved"]


def time_claims(threads: int) -> tuple[list[float], int]:
    """Claim every pending incident from `threads` threads; (each call's ms, duplicate claims)."""
    from django.db import connections

    from incidents.store import DjangoStateStore

    timings: list[float] = []
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer() -> None:
        store = DjangoStateStore()
        try:
            while True:
                started = time.perf_counter()
                incident = store.claim_next_incident()
                elapsed = (time.perf_counter() - started) * 1000
                if incident is None:
                    return
                with lock:
                    timings.append(elapsed)
                    claimed.append(str(incident.incident_id))
        finally:
            connections.close_all()

    pool = [threading.Thread(target=claimer) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return timings, len(claimed) - len(set(claimed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "")
    name = f"bench_workers_{os.getpid()}"
    url = scratch_url(base, name)
    psql(base, f"CREATE DATABASE {name}")
    workspace = ROOT / "var" / f"bench-workspaces-{os.getpid()}"
    try:
        manage(url, "migrate", "--no-input")
        print(manage(url, "ingest_events", "-", "--quiet", stdin=faults(args.incidents)).strip())
        elapsed = run_workers(url, args.processes, args.concurrency, workspace)
        os.environ.update({"DATABASE_URL": url, "DJANGO_DEBUG": "1"})
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")
        import django

        django.setup()
        total, not_once, unresolved = check_each_claimed_once()
        print(
            f"{args.processes} processes x {args.concurrency}: {total} incidents in {elapsed:.1f} s"
            f" = {total / elapsed:.0f} triaged/s; claimed other than once: {not_once}; "
            f"not resolved: {unresolved}"
        )
        manage(url, "ingest_events", "-", "--quiet", stdin=faults(args.incidents))
        timings, duplicates = time_claims(args.processes * args.concurrency)
        quantiles = statistics.quantiles(timings, n=100)
        print(
            f"claim_next_incident from {args.processes * args.concurrency} threads: "
            f"{len(timings)} claims, p50 {quantiles[49]:.2f} ms, p95 {quantiles[94]:.2f} ms, "
            f"p99 {quantiles[98]:.2f} ms; claimed twice: {duplicates}"
        )
    finally:
        if "django.db" in sys.modules and sys.modules["django.apps"].apps.ready:
            from django.db import connections

            connections.close_all()
        psql(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        subprocess.run(["rm", "-rf", str(workspace)], check=False)


if __name__ == "__main__":
    main()

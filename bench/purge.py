"""Retention benchmark: purge_history's rows per second, and the dashboard's p95 meanwhile.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_triage DJANGO_DEBUG=1
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py seed_demo --incidents 1000000 --days 90 --flush
    .venv/bin/python bench/purge.py --older-than 45       # about half: 500 k incidents

(`--seed N` runs that seed_demo itself.) The purge runs in a child process, batch by batch as
`purge_history` does; this process meanwhile requests dashboard pages as a signed-in viewer
(Django's test client, the whole stack, caches cleared before each request so every request
queries). It prints the purge's rows per second (incidents, and all rows with executions,
reports and fault events), its longest batch (the longest any row lock is held), and the
dashboard's p50/p95 before and during the purge.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

PAGES = ("/", "/?status=failed", "/?severity=critical&sort=severity", "/?cluster=dev-eu-west-1-3")


def child(older_than_days: int, batch_size: int) -> None:
    """The purge itself: batches as purge_history runs them, each one timed."""
    import django

    django.setup()
    from django.utils import timezone

    from incidents.retention import purge
    from incidents.store import DjangoStateStore

    store = DjangoStateStore()
    batch_seconds: list[float] = []
    original = store.purge_incidents

    def timed(**kwargs):
        started = time.perf_counter()
        try:
            return original(**kwargs)
        finally:
            batch_seconds.append(time.perf_counter() - started)

    store.purge_incidents = timed
    totals = purge(
        timezone.now() - timedelta(days=older_than_days),
        batch_size=batch_size,
        workspace_root=ROOT / "var" / "bench-purge-workspaces",
        store=store,
    )
    batch_seconds.sort()
    print(
        json.dumps(
            {
                **{k: v for k, v in vars(totals).items()},
                "batches": len(batch_seconds),
                "batch_p95": batch_seconds[int(len(batch_seconds) * 0.95) - 1]
                if batch_seconds
                else 0,
                "batch_max": batch_seconds[-1] if batch_seconds else 0,
            }
        )
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(int(len(ordered) * share) - 1, 0)] if ordered else 0.0


def time_pages(client, cache, until) -> list[float]:
    timings: list[float] = []
    n = 0
    while not until():
        cache.clear()
        started = time.perf_counter()
        response = client.get(PAGES[n % len(PAGES)])
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{PAGES[n % len(PAGES)]}: HTTP {response.status_code}")
        n += 1
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--older-than", type=int, default=45, help="days (45)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--seed", type=int, help="seed_demo --incidents N --days 90 --flush first")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.older_than, args.batch_size)
        return
    if args.seed:
        subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", "seed_demo", "--incidents", str(args.seed), "--flush"],
            cwd=ROOT,
            check=True,
        )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from incidents.models import Incident
    from incidents.roles import viewer_group
    from incidents.store import purgeable_incidents

    older_than = timezone.now() - timedelta(days=args.older_than)
    total = Incident.objects.count()
    purgeable = purgeable_incidents(older_than).count()
    print(f"{connection.vendor}: {total:,} incidents, {purgeable:,} purgeable")
    user, _ = get_user_model().objects.get_or_create(username="bench-purge")
    user.groups.add(viewer_group())
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)

    deadline = time.monotonic() + args.baseline_seconds
    before = time_pages(client, cache, lambda: time.monotonic() > deadline)
    command = [sys.executable, __file__, "--child", "--older-than", str(args.older_than)]
    command += ["--batch-size", str(args.batch_size)]
    purge_process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
    during = time_pages(client, cache, lambda: purge_process.poll() is not None)
    result = json.loads(purge_process.stdout.read().strip().splitlines()[-1])
    rows = result["incidents"] + result["executions"] + result["reports"] + result["fault_events"]
    seconds = result["seconds"]
    print(
        f"purged {result['incidents']:,} incidents ({rows:,} rows with executions, reports and "
        f"fault events) in {seconds:.1f} s: {result['incidents'] / seconds:,.0f} incidents/s, "
        f"{rows / seconds:,.0f} rows/s; {result['batches']} batches of {args.batch_size}, "
        f"p95 {result['batch_p95'] * 1000:.0f} ms, longest {result['batch_max'] * 1000:.0f} ms"
    )
    for label, timings in (("before", before), ("during", during)):
        print(
            f"dashboard {label} the purge: {len(timings)} requests, "
            f"p50 {statistics.median(timings):.0f} ms, p95 {percentile(timings, 0.95):.0f} ms"
        )


if __name__ == "__main__":
    main()

"""Dashboard benchmark: page latency and query count at a million incidents, beside the SQL alone.

    createdb -h 127.0.0.1 -U postgres bench_triage
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_triage DJANGO_DEBUG=1
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py seed_demo --incidents 1000000
    .venv/bin/python bench/dashboard.py

Each request goes through Django's test client (the whole middleware stack, the view, the
templates; no network) as a signed-in user: `--warmup` times, then `--requests` timed times. It
prints, per request, p50 and p95 of the page, the number of SQL queries the page made, the time of
the page's main query run directly on the same connection (p50 of `--requests` runs), the ratio of
the two, the time of all its queries together (p50), and the time of the first request after the
cache was cleared (the dashboard caches summary counts and filter choices; that column shows what
they cost when they are not cached).

Pages deep in the list are reached the way a user reaches them: by following the page's own
"Next" link (page 200) and its "Last" link. Exit status 1 when a target is missed:
list p95 < 150 ms with at most 14 queries; incident and report pages p95 < 80 ms.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LIST_P95_MS = 150.0
# 12 for the list, 1 for the agents' health, 1 for today's agent spend (the two banners).
LIST_MAX_QUERIES = 13
PAGE_P95_MS = 80.0


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")
    # Development settings: static files served by finders and no secret key needed. The view,
    # template and query code measured are the same as in production.
    os.environ.setdefault("DJANGO_DEBUG", "1")
    import django

    django.setup()


class PagerLinks(HTMLParser):
    """The href of the list's "Next" (rel=next) and "Last" pager links."""

    def __init__(self) -> None:
        super().__init__()
        self.next: str | None = None
        self.last: str | None = None
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        attributes = dict(attrs)
        if "pager__link" not in (attributes.get("class") or ""):
            return
        if attributes.get("rel") == "next":
            self.next = attributes.get("href")
        self._href = attributes.get("href")

    def handle_data(self, data: str) -> None:
        if self._href is not None and "Last" in data:
            self.last = self._href

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


def pager_links(html: str) -> PagerLinks:
    parser = PagerLinks()
    parser.feed(html)
    return parser


@dataclass
class Measurement:
    name: str
    url: str
    kind: str  # "list" or "page"
    times_ms: list[float]
    queries: int
    sql_ms: float  # p50 of the time all the page's queries took, as Django measured them
    main_sql_ms: float
    cold_ms: float
    slowest_sql: dict  # as CaptureQueriesContext recorded it

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95(self) -> float:
        return percentile(self.times_ms, 95)

    @property
    def ok(self) -> bool:
        if self.kind == "list":
            return self.p95 < LIST_P95_MS and self.queries <= LIST_MAX_QUERIES
        return self.p95 < PAGE_P95_MS

    @property
    def target(self) -> str:
        if self.kind == "list":
            return f"p95<{LIST_P95_MS:.0f}, q<={LIST_MAX_QUERIES}"
        return f"p95<{PAGE_P95_MS:.0f}"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (the value below which pct% of the samples fall)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def main_query(captured: list[dict], table: str) -> str:
    """The page's main query: its first SELECT from `table` (the rows the page is about)."""
    marker = f'FROM "{table}"'
    for query in captured:
        sql = query["sql"]
        if sql.lstrip().upper().startswith("SELECT") and marker in sql and "COUNT(" not in sql:
            return sql
    raise SystemExit(
        f"no query read {table}; queries were:\n" + "\n".join(q["sql"] for q in captured)
    )


def time_sql(sql: str, runs: int) -> float:
    """p50 in ms of `sql` run directly (fetching every row) on Django's connection."""
    from django.db import connection

    times = []
    with connection.cursor() as cursor:
        for _ in range(runs + 2):
            began = time.perf_counter()
            cursor.execute(sql)
            cursor.fetchall()
            times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times[2:])


class SqlTimer:
    """An execute wrapper: the wall time of each query (Django's own record rounds to 1 ms)."""

    def __init__(self) -> None:
        self.durations_ms: list[float] = []

    def __call__(self, execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.durations_ms.append((time.perf_counter() - began) * 1000)


def measure(client, name: str, url: str, kind: str, table: str, args) -> Measurement:
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cache.clear()
    began = time.perf_counter()
    response = client.get(url)
    cold_ms = (time.perf_counter() - began) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{name}: GET {url} answered {response.status_code}")
    for _ in range(args.warmup):
        client.get(url)
    times, sql_times = [], []
    captured: list[dict] = []
    for _ in range(args.requests):
        timer = SqlTimer()
        with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(timer):
            began = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - began) * 1000)
        captured = queries.captured_queries
        sql_times.append(sum(timer.durations_ms))
    main_sql_ms = time_sql(main_query(captured, table), args.requests)
    durations = timer.durations_ms
    if len(durations) != len(captured):  # both saw every query; if not, use Django's times
        durations = [float(query["time"]) * 1000 for query in captured]
    slowest = captured[max(range(len(captured)), key=durations.__getitem__)]
    return Measurement(
        name=name,
        url=url,
        kind=kind,
        times_ms=times,
        queries=len(captured),
        sql_ms=statistics.median(sql_times),
        main_sql_ms=main_sql_ms,
        cold_ms=cold_ms,
        slowest_sql=slowest,
    )


def follow(client, url: str, link: str, times: int = 1) -> str:
    """The URL reached by following the page's `link` ("next" or "last") `times` times."""
    for _ in range(times):
        response = client.get(url)
        href = getattr(pager_links(response.content.decode()), link)
        if not href:
            raise SystemExit(f"{url} has no {link!r} pager link")
        url = urljoin(url, href.replace("&amp;", "&"))
    return url


def requests_to_make(client) -> list[tuple[str, str, str, str]]:
    """(name, url, kind, main table) for every request the benchmark times."""
    from urllib.parse import urlencode

    from django.db.models import Count
    from django.urls import reverse

    from incidents.models import Incident, TriageReport

    newest = Incident.objects.order_by("-created_at").only("cluster").first()
    if newest is None:
        raise SystemExit("the database has no incidents: run manage.py seed_demo first")
    pod = (
        Incident.objects.filter(resource_kind="Pod")
        .order_by("-created_at")
        .only("resource_name", "resource_namespace", "fault_id")
        .first()
    )
    report = (
        TriageReport.objects.select_related("incident")
        .only("report_id", "incident__incident_id")
        .order_by("-generated_at")
        .first()
    )
    home = reverse("incidents:list")
    filters = [
        ("status", "failed"),
        ("severity", "critical"),
        ("cluster", newest.cluster),
        ("namespace", pod.resource_namespace),
        ("resource_kind", "Job"),
        ("fault_type", "OOMKilled"),
        ("q", pod.resource_name.split("-")[-2]),  # a ReplicaSet hash: a few pods' names
    ]
    combined = {"status": "failed", "severity": "critical", "cluster": newest.cluster}
    # `q`, one of each kind of term, over the whole history (no on-call default narrowing).
    every = [("oncall", state) for state in ("open", "acknowledged", "closed")]
    path = f"{pod.resource_namespace}/Pod/{pod.resource_name}"
    searches = [
        ("namespace", pod.resource_namespace),
        ("path", path),
        ("cluster", newest.cluster),
        ("fault type", "crashloop"),
        ("fault id prefix", pod.fault_id[:8].upper()),
        ("short id", str(pod.incident_id)[:8]),
        ("two words", f"{pod.resource_name} {pod.resource_namespace}"),
        ("phrase", f'"Pod/{pod.resource_name}"'),
        ("rare word", "zzqx"),  # matches nothing: the index says so without reading rows
    ]
    ranges = [
        ("range=15m", {"range": "15m"}),
        ("range=1h", {"range": "1h"}),
        ("range=6h", {"range": "6h"}),
        (
            "range=24h (whole history)",
            {"range": "24h", "oncall": ["open", "acknowledged", "closed"]},
        ),
        ("range=7d (whole history)", {"range": "7d", "oncall": ["open", "acknowledged", "closed"]}),
        (
            "range=30d (whole history)",
            {"range": "30d", "oncall": ["open", "acknowledged", "closed"]},
        ),
        ("range=7d&time=received", {"range": "7d", "time": "received"}),
        ("occurred_after=now-1h&status=failed", {"occurred_after": "now-1h", "status": "failed"}),
    ]
    wanted = [("list", home, "list", "incidents")]
    wanted += [
        (f"list {k}={v}", f"{home}?{urlencode({k: v})}", "list", "incidents") for k, v in filters
    ]
    wanted += [
        (f"list q: {kind}", f"{home}?{urlencode([('q', term), *every])}", "list", "incidents")
        for kind, term in searches
    ]
    wanted += [
        (f"list {name}", f"{home}?{urlencode(params, doseq=True)}", "list", "incidents")
        for name, params in ranges
    ]
    wanted.append(
        ("list status+severity+cluster", f"{home}?{urlencode(combined)}", "list", "incidents")
    )
    wanted.append(
        ("list page 200 (Next x199)", follow(client, home, "next", 199), "list", "incidents")
    )
    wanted.append(("list last page (Last)", follow(client, home, "last"), "list", "incidents"))
    wanted.append(("incident page", report.incident.get_absolute_url(), "page", "incidents"))
    # The fault that recurred most: its incident page lists the most recurrences.
    busiest = Incident.objects.values("fault_id").annotate(n=Count("*")).order_by("-n").first()
    recurring = Incident.objects.filter(fault_id=busiest["fault_id"]).latest("created_at")
    wanted.append(
        (f"incident page ({busiest['n']:,} recurrences)", recurring.get_absolute_url(), "page",
         "incidents")
    )  # fmt: skip
    wanted.append(("report page", report.get_absolute_url(), "page", "triage_reports"))
    return wanted


def print_table(results: list[Measurement], args) -> None:
    from django.db import connection

    from incidents.models import Incident

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        (version,) = cursor.fetchone()
    print(f"# dashboard benchmark: {Incident.objects.count():,} incidents, {os.cpu_count()} cores")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"# {version.split(' on ')[0]}; {args.warmup} warm-up + {args.requests} timed requests")
    print(f"# load average before the run: {args.load_before}; after: {load}")
    header = ("request", "p50 ms", "p95 ms", "queries", "all SQL ms", "main SQL ms", "page/SQL",
              "cold ms", "target", "ok")  # fmt: skip
    rows = [
        (
            result.name,
            f"{result.p50:.1f}",
            f"{result.p95:.1f}",
            str(result.queries),
            f"{result.sql_ms:.1f}",
            f"{result.main_sql_ms:.2f}",
            f"{result.p50 / result.main_sql_ms:.0f}x" if result.main_sql_ms else "-",
            f"{result.cold_ms:.1f}",
            result.target,
            "yes" if result.ok else "NO",
        )
        for result in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")


def print_plans(results: list[Measurement]) -> None:
    from django.db import connection

    for result in results:
        print(f"\n## {result.name}: slowest query\n{result.slowest_sql['sql']}")
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {result.slowest_sql['sql']}")
            print("\n".join(row[0] for row in cursor.fetchall()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="timed requests each (30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first (3)")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="after the table, EXPLAIN ANALYZE each request's slowest query",
    )
    parser.add_argument("--only", default="", help="time only requests whose name contains this")
    args = parser.parse_args()
    args.load_before = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    setup_django()

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    if connection.vendor != "postgresql":
        print("note: not PostgreSQL; the targets are set for PostgreSQL", file=sys.stderr)
    from incidents.roles import viewer_group

    user, _ = get_user_model().objects.get_or_create(username="bench-dashboard")
    user.groups.add(viewer_group())  # a plain SRE's account: permissions are checked per page
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    results = []
    for name, url, kind, table in requests_to_make(client):
        if args.only not in name:
            continue
        results.append(measure(client, name, url, kind, table, args))
        print(f"  measured {name}", file=sys.stderr)
    print_table(results, args)
    if args.explain:
        print_plans(results)
    missed = [result.name for result in results if not result.ok]
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())

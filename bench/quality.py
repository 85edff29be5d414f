"""Scoreboard benchmark: /quality/ at a million incidents and 300,000 verdicts (PostgreSQL).

    createdb -h 127.0.0.1 -U postgres bench_triage
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_triage DJANGO_DEBUG=1
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py seed_demo --incidents 1000000
    .venv/bin/python bench/quality.py --verdicts 300000

Verdicts are generated in the database when fewer than `--verdicts` exist: one INSERT … SELECT
over a deterministic sample of the reports (by a hash of the report id), one or two judges per
report, 60 % correct, 15 % partly correct, 15 % wrong, 10 % not useful, each with the copies of
its report's cluster, fault type and date that the store writes, and the scoreboard's day
counters are recounted (`incidents.quality.rollup.rebuild`). Then each scoreboard request
goes through Django's test client (middleware, view, templates; no network) as a signed-in
viewer: `--warmup` times, then `--requests` timed times; it prints p50, p95, the number of
SQL queries per request and the time of those queries together (p50, p95), which tells the
database's share from the rendering's on a busy machine. Exit status 1 when a p95 is over 150 ms.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

P95_MS = 150.0
JUDGES = 20


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    import django

    django.setup()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# One or two judges per sampled report; `%(share)s` of the reports are sampled (per mille).
GENERATE = """
INSERT INTO report_verdicts
    (report_id, user_id, verdict, actual_cause, note, created_at, updated_at,
     cluster, fault_type, generated_at)
SELECT r.report_id, j.id, v.verdict,
       CASE WHEN v.verdict IN ('partly_correct', 'wrong') THEN 'bench: another cause' ELSE '' END,
       '', r.generated_at, r.generated_at, i.cluster, i.fault_type, r.generated_at
FROM triage_reports r
JOIN incidents i ON i.incident_id = r.incident_id
CROSS JOIN LATERAL (SELECT abs(hashtext(r.report_id::text)) AS h) AS hash
JOIN auth_user j ON j.username = 'bench-judge-' || (hash.h %% %(judges)s)
    OR (hash.h %% 1000 < %(second)s AND j.username = 'bench-judge-' || ((hash.h + 1) %% %(judges)s))
CROSS JOIN LATERAL (SELECT CASE
    WHEN (hash.h / 7 + j.id) %% 20 < 12 THEN 'correct'
    WHEN (hash.h / 7 + j.id) %% 20 < 15 THEN 'partly_correct'
    WHEN (hash.h / 7 + j.id) %% 20 < 18 THEN 'wrong'
    ELSE 'not_useful' END AS verdict) AS v
WHERE hash.h %% 1000 < %(share)s
ON CONFLICT DO NOTHING
"""


def ensure_verdicts(target: int) -> int:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from incidents.models import ReportVerdict, TriageReport
    from incidents.quality import rollup

    have = ReportVerdict.objects.count()
    if have >= target:
        return have
    users = get_user_model()
    for n in range(JUDGES):
        users.objects.get_or_create(username=f"bench-judge-{n}")
    reports = TriageReport.objects.count()
    # Sampled reports s, a second judge on s * second / 1000 of them: s * (1 + second/1000).
    share = min(1000, math.ceil(1000 * target / max(reports, 1) / 1.3))
    second = share * 3 // 10  # of the sampled, three in ten get a second judge
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(GENERATE, {"judges": JUDGES, "second": second, "share": share})
        cursor.execute("ANALYZE report_verdicts")
    # Written beside the store: the day counters are recounted, as after a bulk load.
    rollup.rebuild(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE quality_daily")
    have = ReportVerdict.objects.count()
    took = time.perf_counter() - started
    print(f"generated verdicts: {have:,} on {reports:,} reports in {took:.1f} s")
    return have


def requests_to_make() -> list[tuple[str, dict]]:
    from incidents.models import ReportVerdict

    cluster, fault_type = ReportVerdict.objects.values_list("cluster", "fault_type").first()
    return [
        ("7 days", {"days": 7}),
        ("30 days", {"days": 30}),
        ("90 days", {"days": 90}),
        ("90 days, one cluster", {"days": 90, "cluster": cluster}),
        ("90 days, one fault type", {"days": 90, "fault_type": fault_type}),
        (
            "30 days, cluster + fault type",
            {"days": 30, "cluster": cluster, "fault_type": fault_type},
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verdicts", type=int, default=300_000, help="verdicts to have (300000)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests each (30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first (3)")
    args = parser.parse_args()
    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from incidents.models import Incident
    from incidents.roles import viewer_group

    if connection.vendor != "postgresql":
        print("bench/quality.py needs PostgreSQL (DATABASE_URL=postgres://…)", file=sys.stderr)
        return 2
    verdicts = ensure_verdicts(args.verdicts)
    print(f"incidents: {Incident.objects.count():,}  verdicts: {verdicts:,}")
    user, _ = get_user_model().objects.get_or_create(username="bench-quality-viewer")
    user.groups.add(viewer_group())
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    url = reverse("incidents:quality")
    missed = False
    print(
        f"{'request':34} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8} {'SQL p50':>8} {'SQL p95':>8}"
    )
    for name, query in requests_to_make():
        for _ in range(args.warmup):
            client.get(url, query)
        times, sql = [], []
        for _ in range(args.requests):
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url, query)
            times.append((time.perf_counter() - started) * 1000)
            sql.append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
            if response.status_code != 200:
                print(f"{name}: HTTP {response.status_code}", file=sys.stderr)
                return 1
        p95 = percentile(times, 95)
        missed |= p95 > P95_MS
        print(
            f"{name:34} {percentile(times, 50):8.1f} {p95:8.1f} {len(captured.captured_queries):8}"
            f" {percentile(sql, 50):8.1f} {percentile(sql, 95):8.1f}"
            + ("  over target" if p95 > P95_MS else "")
        )
    print(f"target: p95 <= {P95_MS:.0f} ms")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

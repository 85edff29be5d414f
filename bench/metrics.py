"""Time one /metrics scrape's database gauges (DATABASE_URL=postgres://…, after bench-dashboard).

Prints the queries per scrape and the median and p95 of SCRAPES scrapes of DatabaseCollector,
the part of /metrics that reads the database (process counters are in memory).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from incidents.metrics import DatabaseCollector  # noqa: E402
from incidents.models import Incident  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    collector = DatabaseCollector()
    list(collector.collect())  # warm: connection, caches
    with CaptureQueriesContext(connection) as queries:
        list(collector.collect())
    timings = []
    for _ in range(args.scrapes):
        started = time.perf_counter()
        list(collector.collect())
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p95 = timings[max(int(len(timings) * 0.95) - 1, 0)]
    print(
        f"{connection.vendor}, {Incident.objects.count():,} incidents: "
        f"{len(queries)} queries per scrape; median {statistics.median(timings):.1f} ms, "
        f"p95 {p95:.1f} ms, max {timings[-1]:.1f} ms over {args.scrapes} scrapes"
    )


if __name__ == "__main__":
    main()

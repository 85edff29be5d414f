"""Benchmark: what the notification outbox adds to ingestion, measured A/B in one process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_triage \\
        .venv/bin/python bench/outbox.py [--rounds 15] [--batch-size 1000]

Each round ingests one fresh batch (parsing, validation, classification and the batch's
transaction, as `ingest_events` does) under each of three variants, in a shuffled order:

- `no hook`: the outbox call replaced by a no-op (ingestion as it was before notifications);
- `no channel`: the outbox call with no channel configured (one small query per batch);
- `1 channel`: a channel every incident routes to (one outbox row per incident).

Interleaving the variants round by round cancels the drift of a busy machine that separate
runs of `bench/ingest.py` suffer from. Prints per variant the first quartile (the batches least
disturbed by other work) and the median, and each variant against `no hook`. The rows written
are deleted afterwards (they carry this run's
subscription id). Only this machine is contacted.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "samples"))

from generate import generate  # noqa: E402 - samples/generate.py, found through sys.path

VARIANTS = ("no hook", "no channel", "1 channel")


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")
    os.environ["DJANGO_DEBUG"] = "1"
    import django

    django.setup()


def one_batch(records: list[dict], variant: str, channel_name: str) -> float:
    from incidents import ingest
    from incidents.ingest import IngestionService
    from incidents.models import NotificationChannel
    from incidents.notifications import outbox
    from incidents.notifications.channels import create_channel

    NotificationChannel.objects.filter(name=channel_name).delete()
    if variant == "1 channel":
        create_channel(name=channel_name, kind="slack", url="https://bench.invalid/hook")
    hook = outbox.incidents_opened
    if variant == "no hook":
        ingest.notifications.incidents_opened = lambda using, opened: 0  # type: ignore[attr-defined]
    try:
        service = IngestionService(batch_size=len(records) + 1)
        started = time.perf_counter()
        for record in records:
            service.add(record)
        service.flush()
        elapsed = time.perf_counter() - started
    finally:
        ingest.notifications.incidents_opened = hook  # type: ignore[attr-defined]
    if service.counts.created != len(records):
        sys.exit(f"expected every record to create an incident: {service.counts.summary()}")
    return elapsed


def cleanup(run: str, channel_name: str, started) -> None:
    from django.db import connection

    from incidents.models import NotificationBatch, NotificationChannel

    NotificationChannel.objects.filter(name=channel_name).delete()  # and its outbox rows
    NotificationBatch.objects.filter(created_at__gte=started).delete()  # never routed here
    pattern = f"sub-{run}%"
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM incidents WHERE subscription_id LIKE %s", [pattern])
        cursor.execute("DELETE FROM fault_events WHERE subscription_id LIKE %s", [pattern])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    run = secrets.token_hex(4)
    channel_name = f"bench-{run}"
    total = args.rounds * len(VARIANTS) * args.batch_size
    records = iter(list(generate(total, run=run, recurrence=0, replay=0, ignored=0)))
    database = f"{connection.vendor} {connection.settings_dict['NAME']}"
    print(f"database: {database}; {args.rounds} rounds x {len(VARIANTS)} variants x "
          f"{args.batch_size} records")  # fmt: skip
    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    rng = random.Random(run)  # noqa: S311 - an order, not a secret
    from django.utils import timezone

    started = timezone.now()
    try:
        for _ in range(args.rounds):
            for variant in rng.sample(VARIANTS, len(VARIANTS)):
                batch = [next(records) for _ in range(args.batch_size)]
                times[variant].append(one_batch(batch, variant, channel_name))
    finally:
        cleanup(run, channel_name, started)
    # The fastest quarter is the least disturbed by other work on a shared machine.
    base = _quartile(times["no hook"])
    for variant, seconds in times.items():
        fast, median = _quartile(seconds), statistics.median(seconds)
        print(f"{variant:>10}: fastest quarter {fast * 1000:7.1f} ms/batch "
              f"({fast / args.batch_size * 1e6:5.1f} µs/record), median {median * 1000:7.1f} ms, "
              f"vs no hook {100 * (fast / base - 1):+5.1f} %")  # fmt: skip


def _quartile(values: list[float]) -> float:
    return statistics.quantiles(values, n=4)[0]


if __name__ == "__main__":
    main()

"""Benchmark: `manage.py ingest_events` against PostgreSQL's COPY of the same rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_triage \\
        .venv/bin/python bench/ingest.py [--events 200000] [--batch-size 1000] [--keep]
        [--with-channel]

1. Generates N realistic fault records (samples/generate.py: every upstream shape, log samples,
   each record a new fault) to bench/out/ingest-events-N-RUN.jsonl (removed afterwards).
2. Runs `manage.py ingest_events FILE --quiet` in a child process and times it end to end
   (start-up, parsing, validation, classification, writing), and reads its peak RSS (VmHWM).
3. On PostgreSQL: turns the same records into the same fault_events and incidents rows (not
   timed), then times COPY of those rows into scratch copies of the two tables (`CREATE TABLE …
   (LIKE … INCLUDING ALL)`: the same columns, constraints and indexes, plus the foreign key), in
   one transaction, and prints both rates and the ratio ours / COPY. The scratch tables are
   dropped afterwards.
4. Deletes the rows it ingested (they carry this run's subscription id) and the file, unless
   --keep. On PostgreSQL the two tables are vacuumed before the timed run and after the delete.

The database must be migrated (the bench runs `migrate` first). Only this machine is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "samples"))

from generate import generate  # noqa: E402 - samples/generate.py, found through sys.path


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "triage_site.settings")
    os.environ["DJANGO_DEBUG"] = "1"
    import django

    django.setup()


def write_events(path: Path, n: int, run: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for record in generate(n, run=run, recurrence=0, replay=0, ignored=0):
            out.write(json.dumps(record, separators=(",", ":")) + "\n")


def run_command(path: Path, batch_size: int) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, last stdout line) of one ingest_events run in a child.

    Peak RSS is the child's VmHWM, polled from /proc: getrusage()/wait4() would report the
    larger of the child and this process, because Linux carries the high-water mark of the
    forking process over exec.
    """
    env = {**os.environ, "DJANGO_DEBUG": "1"}
    command = [sys.executable, str(ROOT / "manage.py"), "ingest_events", str(path), "--quiet",
               "--batch-size", str(batch_size)]  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as output:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output)
        peak_kb = 0
        while child.poll() is None:
            peak_kb = max(peak_kb, _vm_hwm_kb(child.pid))
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        output.seek(0)
        lines = output.read().strip().splitlines()
    if child.returncode != 0:
        sys.exit(f"ingest_events exited with {child.returncode}: {lines[-20:]}")
    return elapsed, peak_kb / 1024, lines[-1] if lines else ""


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass  # the child just exited
    return 0


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_copy_files(events: Path, run: str) -> tuple[Path, Path, list[str], list[str], int]:
    """The rows ingest_events writes for `events`, as two COPY text files (not timed)."""
    from django.utils import timezone

    from incidents.events import parse_record
    from incidents.models import DENORMALIZED_FIELDS, FaultEvent

    fault_columns = [f.column for f in FaultEvent._meta.concrete_fields]
    incident_columns = [
        "incident_id", "fault_id", "status", "created_at", *DENORMALIZED_FIELDS, "last_seen_at",
    ]  # fmt: skip
    faults_path = OUT / f"copy-fault-events-{run}.tsv"
    incidents_path = OUT / f"copy-incidents-{run}.tsv"
    n = 0
    now = timezone.now()
    with (
        open(events, "rb") as source,
        open(faults_path, "w", encoding="utf-8") as faults,
        open(incidents_path, "w", encoding="utf-8") as incidents,
    ):
        for line in source:
            event = parse_record(line)
            faults.write("\t".join(_copy_text(getattr(event, c)) for c in fault_columns) + "\n")
            values = {
                "incident_id": uuid.uuid4(),
                "status": "pending",
                "created_at": now,
                "last_seen_at": event.timestamp,
            }
            incidents.write(
                "\t".join(
                    _copy_text(values[c] if c in values else getattr(event, c))
                    for c in incident_columns
                )
                + "\n"
            )
            n += 1
    return faults_path, incidents_path, fault_columns, incident_columns, n


def time_copy(faults_path: Path, incidents_path: Path, fault_columns, incident_columns) -> float:
    """Seconds to COPY both files into scratch copies of the two tables, in one transaction."""
    from django.db import connection, transaction

    def columns(names) -> str:
        return ", ".join(f'"{name}"' for name in names)

    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        cursor.execute("DROP TABLE IF EXISTS bench_copy_incidents, bench_copy_fault_events")
        cursor.execute("CREATE TABLE bench_copy_fault_events (LIKE fault_events INCLUDING ALL)")
        cursor.execute("CREATE TABLE bench_copy_incidents (LIKE incidents INCLUDING ALL)")
        cursor.execute(
            "ALTER TABLE bench_copy_incidents ADD FOREIGN KEY (fault_id) "
            "REFERENCES bench_copy_fault_events (fault_id) DEFERRABLE INITIALLY DEFERRED"
        )
    try:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as wrapper:
            cursor = wrapper.cursor
            for table, path, names in (
                ("bench_copy_fault_events", faults_path, fault_columns),
                ("bench_copy_incidents", incidents_path, incident_columns),
            ):
                with (
                    open(path, "rb") as source,
                    cursor.copy(f"COPY {table} ({columns(names)}) FROM STDIN") as copy,
                ):
                    while chunk := source.read(1 << 20):
                        copy.write(chunk)
        return time.perf_counter() - started
    finally:
        with connection.cursor() as wrapper:
            wrapper.execute("DROP TABLE IF EXISTS bench_copy_incidents, bench_copy_fault_events")


def delete_run(run: str, run_started=None) -> None:
    from django.db import connection

    pattern = f"sub-{run}%"
    with connection.cursor() as cursor:
        if run_started is not None:  # the run's batches of opened incidents, never routed here
            cursor.execute("DELETE FROM notification_batches WHERE created_at >= %s", [run_started])
        cursor.execute(
            "DELETE FROM notifications WHERE incident_id IN "
            "(SELECT incident_id FROM incidents WHERE subscription_id LIKE %s)",
            [pattern],
        )
        cursor.execute("DELETE FROM notification_channels WHERE name = %s", [f"bench-{run}"])
        cursor.execute("DELETE FROM incidents WHERE subscription_id LIKE %s", [pattern])
        cursor.execute("DELETE FROM fault_events WHERE subscription_id LIKE %s", [pattern])
    vacuum()


def vacuum() -> None:
    """VACUUM ANALYZE the two tables: a run after a deleted run must not pay for its dead rows
    (COPY's scratch tables start clean). Autocommit: VACUUM cannot run in a transaction."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE fault_events")
        cursor.execute("VACUUM ANALYZE incidents")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="records (default 200000)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the ingested rows and the file")
    parser.add_argument(
        "--with-channel",
        action="store_true",
        help="with a notification channel that every incident routes to (one outbox row each)",
    )
    args = parser.parse_args()

    setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    run = secrets.token_hex(4)
    # Per-run names: two benches at once must not read each other's half-written files.
    events = OUT / f"ingest-events-{args.events}-{run}.jsonl"
    started = time.perf_counter()
    write_events(events, args.events, run)
    size_mb = events.stat().st_size / 1e6
    print(f"generated {args.events:,} records ({size_mb:,.0f} MB) in "
          f"{time.perf_counter() - started:.1f} s: {events}")  # fmt: skip
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")

    from django.utils import timezone

    run_started = timezone.now()
    if args.with_channel:
        from incidents.notifications.channels import create_channel

        create_channel(name=f"bench-{run}", kind="slack", url="https://bench.invalid/hook")
        print("with a notification channel that every incident routes to")
    vacuum()
    connection.close()  # the child gets the database to itself
    seconds, peak_mb, summary = run_command(events, args.batch_size)
    ours = args.events / seconds
    print(f"ingest_events: {summary}")
    print(f"ours: {seconds:.1f} s, {ours:,.0f} events/s, peak RSS {peak_mb:,.0f} MB")

    try:
        if connection.vendor == "postgresql":
            faults, incidents, fault_columns, incident_columns, n = write_copy_files(events, run)
            copy_seconds = time_copy(faults, incidents, fault_columns, incident_columns)
            copy_rate = n / copy_seconds
            print(f"COPY: {copy_seconds:.1f} s, {copy_rate:,.0f} events/s (event + incident rows)")
            print(f"ratio ours / COPY: {ours / copy_rate:.2f} (the bar: at least 0.33)")
            faults.unlink()
            incidents.unlink()
        else:
            print("COPY comparison: PostgreSQL only (set DATABASE_URL=postgres://…)")
    finally:
        if not args.keep:
            delete_run(run, run_started)
            events.unlink()


if __name__ == "__main__":
    main()

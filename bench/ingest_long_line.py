"""Benchmark: peak memory of `manage.py ingest_events` rejecting one very long line (issue 20 F12).

    .venv/bin/python bench/ingest_long_line.py [--gib 1] [--rejects]

Streams a valid record, one line of --gib GiB (a record padded with "x") and another valid record
into `manage.py ingest_events -` through a pipe (nothing of that size is held or written here),
against a scratch SQLite database made and migrated for the run in a temporary folder. With
--rejects, the command copies the long line to a rejects file in that folder (it needs the disk
space). Prints the child's peak RSS (VmHWM, polled from /proc: getrusage() would report the
larger of this process and the child), the time taken and the command's summary line.

Memory is meant to stay near TRIAGE_MAX_RECORD_BYTES (1 MiB by default) above the command's
start-up size, whatever the line's length.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1 << 20


def record(fault_id: str) -> bytes:
    return json.dumps(
        {
            "faultId": fault_id,
            "cluster": "bench",
            "faultType": "CrashLoop",
            "severity": "critical",
            "timestamp": "2025-12-20T15:30:00Z",
            "resource": {"kind": "Pod", "name": fault_id, "uid": fault_id},
        }  # fmt: skip
    ).encode()


def feed(pipe, size: int) -> None:
    """Write the three lines into the child's stdin, the long one a chunk at a time."""
    try:
        pipe.write(record("before") + b"\n")
        head = record("huge")[:-1] + b', "padding": "'
        pipe.write(head)
        left = size - len(head) - 2
        block = b"x" * CHUNK
        while left > 0:
            pipe.write(block[: min(left, CHUNK)])
            left -= CHUNK
        pipe.write(b'"}\n' + record("after") + b"\n")
    finally:
        pipe.close()


def vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass  # the child just exited
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="length of the long line (1)")
    parser.add_argument("--rejects", action="store_true", help="copy it to a rejects file")
    args = parser.parse_args()
    size = int(args.gib * (1 << 30))
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "DJANGO_DEBUG": "1",
               "DATABASE_URL": f"sqlite:///{scratch}/bench.sqlite3"}  # fmt: skip
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        command = [*manage, "ingest_events", "-", "--quiet"]
        rejects = Path(scratch) / "rejects.jsonl"
        if args.rejects:
            command += ["--rejects", str(rejects)]
        started = time.perf_counter()
        child = subprocess.Popen(
            command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        writer = threading.Thread(target=feed, args=(child.stdin, size), daemon=True)
        writer.start()
        peak_kb = 0
        while child.poll() is None:
            peak_kb = max(peak_kb, vm_hwm_kb(child.pid))
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        writer.join()
        summary = child.stdout.read().decode().strip().splitlines()[-1]
        copied = rejects.stat().st_size if args.rejects else 0
    print(f"line of {size:,} bytes ({args.gib:g} GiB), --rejects {'on' if args.rejects else 'off'}")
    peak = f"{peak_kb / 1024:.1f} MB"
    print(f"peak RSS of ingest_events: {peak}; {elapsed:.1f} s; exit {child.returncode}")
    if args.rejects:
        print(f"rejects file: {copied:,} bytes")
    print(summary)


if __name__ == "__main__":
    main()

"""`manage.py purge_history [--older-than DAYS] [--dry-run] [--batch-size N]`: retention.

Deletes finished incidents (resolved, failed, agent_failed) created and completed more than DAYS
days ago, with their executions, reports and workspace folders, and the fault events left with no
incident. Never an open incident. One batch per transaction (see `DjangoStateStore.
purge_incidents`); a progress line on a terminal; the last line of output is the summary.
DAYS defaults to TRIAGE_RETENTION_DAYS, for scheduled runs.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from incidents.retention import PurgeTotals, count_purgeable, purge

PROGRESS_INTERVAL = 0.25  # seconds between redraws
MAX_DAYS = 100 * 365


class Command(BaseCommand):
    help = (
        "Delete finished incidents older than DAYS days with their executions, reports, "
        "workspaces and orphaned fault events, in batches. Never an open incident."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            default=settings.TRIAGE_RETENTION_DAYS,
            help="age in days (default TRIAGE_RETENTION_DAYS; required when that is unset)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be purged; delete nothing"
        )
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="incidents per transaction (1000)"
        )

    def handle(self, *args, **options) -> None:
        days, batch_size = options["older_than"], options["batch_size"]
        if days is None:
            raise CommandError("give --older-than DAYS or set TRIAGE_RETENTION_DAYS", returncode=2)
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(
                f"--older-than must be 1 to {MAX_DAYS} days, not {days}", returncode=2
            )
        if not 1 <= batch_size <= 100_000:
            raise CommandError(f"--batch-size must be 1 to 100000, not {batch_size}", returncode=2)
        older_than = timezone.now() - timedelta(days=days)
        if options["dry_run"]:
            self.stdout.write(count_purgeable(older_than).summary(dry_run=True))
            return
        progress = None
        if self.stderr.isatty():
            progress = _Progress(self.stderr, count_purgeable(older_than).incidents)
        totals = purge(
            older_than,
            batch_size=batch_size,
            workspace_root=settings.TRIAGE_WORKSPACE_ROOT,
            on_batch=progress.draw if progress else None,
        )
        if progress:
            progress.clear()
        self.stdout.write(totals.summary())


class _Progress:
    """One self-rewriting line on a terminal: a bar, incidents so far of the total, rate."""

    WIDTH = 30

    def __init__(self, out, total: int) -> None:
        self.out, self.total = out, max(total, 1)
        self.last = 0.0

    def draw(self, totals: PurgeTotals) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        done = min(totals.incidents / self.total, 1.0)
        bar = "#" * int(done * self.WIDTH)
        rate = totals.incidents / totals.seconds if totals.seconds else 0
        self.out.write(
            f"\r\x1b[K[{bar:<{self.WIDTH}}] {totals.incidents:,}/{self.total:,} incidents "
            f"{rate:,.0f}/s",
            ending="",
            style_func=lambda text: text,
        )
        self.out.flush()

    def clear(self) -> None:
        self.out.write("\r\x1b[K", ending="", style_func=lambda text: text)
        self.out.flush()

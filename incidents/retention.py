"""Retention: `purge_history` in batches, and the workspace folders of purged incidents.

Rows are deleted by the store (`DjangoStateStore.purge_incidents`), one batch per transaction;
this module loops over batches, removes each batch's workspace folders once the batch has
committed, and reports progress.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db.models import Count

from incidents.models import AgentExecution, TriageReport
from incidents.store import DjangoStateStore, purgeable_incidents


@dataclass
class PurgeTotals:
    incidents: int = 0
    executions: int = 0
    reports: int = 0
    fault_events: int = 0
    workspaces: int = 0
    seconds: float = 0.0

    def summary(self, *, dry_run: bool = False) -> str:
        verb = "would purge" if dry_run else "purged"
        line = (
            f"{verb} {self.incidents} incidents, {self.executions} executions, "
            f"{self.reports} reports, {self.fault_events} fault events, "
            f"{self.workspaces} workspaces"
        )
        if not dry_run:
            rate = self.incidents / self.seconds if self.seconds else 0.0
            line += f" in {self.seconds:.1f} s ({rate:,.0f} incidents/s)"
        return line


def remove_workspaces(root: Path, incident_ids: Iterable[uuid.UUID]) -> int:
    """Remove `<root>/<incident_id>/` of each id that has one; how many were removed.

    rmtree does not follow symlinks an agent may have left inside; a folder that cannot be
    removed is left for the next run rather than stopping the purge.
    """
    removed = 0
    for incident_id in incident_ids:
        folder = Path(root) / str(incident_id)
        if folder.is_symlink() or folder.is_file():
            folder.unlink(missing_ok=True)
            removed += 1
        elif folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed += not folder.exists()
    return removed


def count_purgeable(older_than: datetime) -> PurgeTotals:
    """What a purge would delete now (a dry run): incidents, their executions and reports.

    Fault events are not counted: whether one is left without incidents depends on the
    incidents not purged, which only the purge itself settles; workspaces are not looked for.
    """
    incidents = purgeable_incidents(older_than)
    counted = incidents.aggregate(n=Count("*"))["n"]
    executions = AgentExecution.objects.filter(incident__in=incidents.values("pk")).count()
    reports = TriageReport.objects.filter(incident__in=incidents.values("pk")).count()
    return PurgeTotals(incidents=counted, executions=executions, reports=reports)


def purge(
    older_than: datetime,
    *,
    batch_size: int,
    workspace_root: Path,
    store: DjangoStateStore | None = None,
    on_batch: Callable[[PurgeTotals], None] | None = None,
) -> PurgeTotals:
    """Purge every purgeable incident, `batch_size` per transaction, until none is left."""
    store = store or DjangoStateStore()
    totals = PurgeTotals()
    started = time.monotonic()
    while True:
        batch = store.purge_incidents(older_than=older_than, limit=batch_size)
        if not batch.incidents:
            break
        totals.incidents += batch.incidents
        totals.executions += batch.executions
        totals.reports += batch.reports
        totals.fault_events += batch.fault_events
        totals.workspaces += remove_workspaces(workspace_root, batch.incident_ids)
        totals.seconds = time.monotonic() - started
        if on_batch is not None:
            on_batch(totals)
    totals.seconds = time.monotonic() - started
    return totals

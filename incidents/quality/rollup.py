"""`quality_daily`: the scoreboard's per-day counters, kept by the store and rebuilt from the
tables when rows arrive in bulk (the migration, seed_demo's loader).

`bump` runs inside the caller's transaction: the counter moves with the report or verdict it
counts, or not at all. It is an UPDATE … SET n = n + 1 (atomic on both databases), and an INSERT
in a savepoint when the day has no row yet; two writers racing to insert the same row end as one
insert and one update.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.db.models.functions import TruncDate

from incidents.choices import Verdict
from incidents.models import QualityDay, ReportVerdict, TriageReport

COUNTERS = ("reports", "judged", *Verdict.values)
BATCH = 5_000


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def bump(using: str, *, day: date, cluster: str, fault_type: str, **deltas: int) -> None:
    """Add `deltas` (counter name -> change) to the day's row, making it if missing."""
    deltas = {name: n for name, n in deltas.items() if n}
    if not deltas:
        return
    rows = QualityDay.objects.using(using).filter(day=day, cluster=cluster, fault_type=fault_type)
    if rows.update(**{name: F(name) + n for name, n in deltas.items()}):
        return
    try:
        with transaction.atomic(using=using):
            QualityDay.objects.using(using).create(
                day=day, cluster=cluster, fault_type=fault_type, **deltas
            )
    except IntegrityError:  # another transaction made the row first: add to it
        rows.update(**{name: F(name) + n for name, n in deltas.items()})


def rebuild(using: str = "default") -> int:
    """Recount every day from `triage_reports` and `report_verdicts`; returns the rows written.
    Three GROUP BYs over the whole tables: for bulk loads and migrations, not for requests."""
    counts: dict[tuple[date, str, str], dict[str, int]] = defaultdict(dict)
    reports = (
        TriageReport.objects.using(using)
        .annotate(day=TruncDate("generated_at", tzinfo=UTC))
        .values_list("day", "incident__cluster", "incident__fault_type")
        .annotate(n=Count("*"))
        .order_by()
    )
    for day, cluster, fault_type, n in reports:
        counts[(day, cluster, fault_type)]["reports"] = n
    verdicts = (
        ReportVerdict.objects.using(using)
        .annotate(day=TruncDate("generated_at", tzinfo=UTC))
        .order_by()
    )
    for day, cluster, fault_type, verdict, n in verdicts.values_list(
        "day", "cluster", "fault_type", "verdict"
    ).annotate(n=Count("*")):
        counts[(day, cluster, fault_type)][verdict] = n
    for day, cluster, fault_type, n in verdicts.values_list(
        "day", "cluster", "fault_type"
    ).annotate(n=Count("report_id", distinct=True)):
        counts[(day, cluster, fault_type)]["judged"] = n
    with transaction.atomic(using=using):
        QualityDay.objects.using(using).all().delete()
        QualityDay.objects.using(using).bulk_create(
            (
                QualityDay(day=day, cluster=cluster, fault_type=fault_type, **values)
                for (day, cluster, fault_type), values in counts.items()
            ),
            batch_size=BATCH,
        )
    return len(counts)

"""`manage.py seed_demo --incidents N`: fill an empty database with realistic incident history."""

from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from incidents.management.base import TriageCommand, UsageError
from incidents.seeding import DatabaseNotEmpty, SeedOptions, seed_history


class Command(TriageCommand):
    help = (
        "Fill the (empty) database with N synthetic incidents over the last DAYS days: fault "
        "events, incidents, agent executions and triage reports. COPY on PostgreSQL."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--incidents", type=int, required=True, help="how many incidents")
        parser.add_argument("--clusters", type=int, default=20, help="distinct clusters (20)")
        parser.add_argument("--namespaces", type=int, default=200, help="distinct namespaces (200)")
        parser.add_argument("--days", type=int, default=90, help="history window in days (90)")
        parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same rows")
        parser.add_argument(
            "--batch-size", type=int, default=20_000, help="incidents per write (20000)"
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="database alias (default: default)"
        )
        parser.add_argument(
            "--flush",
            action="store_true",
            help="replace the existing fault events, incidents, executions and reports (in the "
            "same transaction as the load)",
        )

    def handle(self, *args, **options) -> None:
        try:
            seed_options = SeedOptions(
                incidents=options["incidents"],
                clusters=options["clusters"],
                namespaces=options["namespaces"],
                days=options["days"],
                seed=options["seed"],
                batch_size=options["batch_size"],
            )
        except ValueError as error:
            raise UsageError(str(error)) from None
        using = options["database"]
        verbose = options["verbosity"] >= 2
        try:
            result = seed_history(
                seed_options,
                using=using,
                flush=options["flush"],
                progress=self.stdout.write if verbose else None,
            )
        except DatabaseNotEmpty as error:
            raise CommandError(str(error)) from None
        rows = ", ".join(f"{table} {count}" for table, count in result.rows.items())
        index_note = (
            f", of which index rebuild {result.index_seconds:.1f} s" if result.index_seconds else ""
        )
        self.stdout.write(
            f"seeded {rows} in {result.seconds:.1f} s{index_note} "
            f"({result.incidents_per_second:,.0f} incidents/s); analyzed"
        )

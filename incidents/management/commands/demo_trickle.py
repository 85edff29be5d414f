"""`manage.py demo_trickle [FILE]`: keep the demo's faults arriving (see incidents.demo_trickle)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandParser

from incidents.demo_trickle import Trickle, run
from incidents.management.base import TriageCommand, UsageError


class Command(TriageCommand):
    help = (
        "Replay the demo's arriving faults with fresh timestamps whenever fewer than "
        "--keep-pending incidents are pending, so the demo always has work in every status. "
        "For `make demo`; never for a real installation."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file",
            nargs="?",
            default=str(Path(settings.BASE_DIR) / "samples" / "arriving.jsonl"),
            help="JSON Lines of fault records to replay in turn (default: samples/arriving.jsonl)",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=5.0,
            help="seconds between checks (default 5)",
        )
        parser.add_argument(
            "--keep-pending",
            type=int,
            default=3,
            help="ingest while fewer incidents than this are pending (default 3)",
        )
        parser.add_argument(
            "--ticks",
            type=int,
            default=None,
            help="stop after this many checks (default: run until interrupted)",
        )

    def handle(self, *args, **options) -> None:
        if options["interval"] <= 0 or options["keep_pending"] < 1:
            raise UsageError("--interval must be positive and --keep-pending at least 1")
        try:
            trickle = Trickle.from_file(Path(options["file"]), keep_pending=options["keep_pending"])
        except (OSError, ValueError) as error:
            raise UsageError(str(error)) from None
        try:
            for fed in run(trickle, interval=options["interval"], ticks=options["ticks"]):
                if fed and options["verbosity"] > 1:
                    self.stdout.write(f"fed {fed}: {trickle.outcomes}")
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"demo_trickle: {trickle.outcomes}")

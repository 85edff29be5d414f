"""`manage.py deliver_notifications`: send the outbox (see `incidents.notifications.delivery`)."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.management.commands.run_triage import positive_float, positive_int
from incidents.models import NotificationChannel
from incidents.notifications.delivery import Deliverer, DeliveryPolicy, Mode


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Deliver pending notifications to Slack and webhooks, at least once each, retrying "
        "timeouts, connection errors, 5xx and 429 with exponential backoff. Runs until "
        "SIGTERM/SIGINT unless --once or --until-empty is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--once", action="store_true", help="Send what is due now, then exit.")
        mode.add_argument(
            "--until-empty",
            action="store_true",
            help="Exit when every notification is delivered or failed (waits out retries).",
        )
        parser.add_argument("--concurrency", type=positive_int, default=4, help="Default 4.")
        parser.add_argument(
            "--poll-interval", type=positive_float, default=2.0, help="Seconds (default 2)."
        )
        parser.add_argument(
            "--timeout",
            type=positive_float,
            default=10.0,
            help="Seconds for each of connect, send and read (default 10).",
        )
        parser.add_argument(
            "--max-attempts", type=positive_int, default=8, help="Before failing (default 8)."
        )
        parser.add_argument(
            "--backoff-base",
            type=non_negative_float,
            default=10.0,
            help="Seconds before the first retry, doubling each time (default 10).",
        )
        parser.add_argument(
            "--backoff-cap",
            type=positive_float,
            default=1800.0,
            help="Longest wait between attempts, in seconds (default 1800).",
        )

    def handle(self, *args, **options) -> None:
        if not settings.TRIAGE_BASE_URL and NotificationChannel.objects.exists():
            raise CommandError(
                "TRIAGE_BASE_URL is not set: messages link to the dashboard with absolute URLs "
                "(e.g. TRIAGE_BASE_URL=https://triage.example.com)"
            )
        policy = DeliveryPolicy(
            timeout=options["timeout"],
            max_attempts=options["max_attempts"],
            backoff_base=options["backoff_base"],
            backoff_cap=options["backoff_cap"],
        )
        if options["once"]:
            mode = Mode.ONCE
        elif options["until_empty"]:
            mode = Mode.UNTIL_EMPTY
        else:
            mode = Mode.FOREVER
        deliverer = Deliverer(
            policy,
            mode=mode,
            concurrency=options["concurrency"],
            poll_interval=options["poll_interval"],
        )
        summary = self._run_with_signals(deliverer)
        self.stdout.write(summary.line())

    def _run_with_signals(self, deliverer: Deliverer):
        """SIGTERM/SIGINT: finish the attempts in flight, then exit."""
        if threading.current_thread() is not threading.main_thread():
            return deliverer.run()

        def stop(signum: int, frame: object) -> None:
            self.stderr.write(f"{signal.Signals(signum).name}: finishing the sends in flight")
            deliverer.stop()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return deliverer.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

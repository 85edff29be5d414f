"""`manage.py subscribe_mcp --url URL`: live ingestion from one kubernetes-mcp-server."""

import argparse
import logging
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents import metrics
from incidents.mcp_client import MODES, SubscriptionFilters, parse_header
from incidents.subscriber import IngestFailed, Subscriber, SubscriberConfig

# Per-request INFO lines from the HTTP client and the SDK's own reconnect chatter would drown
# the status lines; they stay available with --verbosity 3.
NOISY_LOGGERS = ("httpx2", "httpcore", "mcp")


def header(value: str) -> tuple[str, str]:
    try:
        return parse_header(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_number(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number")
    return number


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return number


def read_header_file(path: Path) -> dict[str, str]:
    """Headers from FILE, one 'Name: value' a line; blank lines and # comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CommandError(f"--header-file {path}: {error.strerror}") from None
    headers = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            name, value = parse_header(line)
        except ValueError:
            # The line itself may hold a secret: name the line, not its content.
            raise CommandError(
                f"--header-file {path}, line {number}: not in the form 'Name: value'"
            ) from None
        headers[name] = value
    return headers


class Command(BaseCommand):
    help = (
        "Subscribe to fault notifications from one kubernetes-mcp-server (MCP over streamable "
        "HTTP) and store them as ingest_events would, reconnecting and resubscribing whenever "
        "the connection drops. Runs until SIGTERM/SIGINT: then flushes, unsubscribes, exits 0."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True, help="MCP endpoint, e.g. http://host:8080/mcp")
        parser.add_argument("--mode", choices=MODES, default="resource-faults")
        parser.add_argument("--cluster", help="only faults of this cluster")
        parser.add_argument("--namespace", help="only faults in this namespace")
        parser.add_argument("--label-selector", help="only faults of objects matching this")
        parser.add_argument(
            "--header",
            type=header,
            action="append",
            default=[],
            metavar="'NAME: VALUE'",
            help="HTTP header sent with every request (repeatable), e.g. 'Authorization: Bearer …'",
        )
        parser.add_argument(
            "--header-file",
            type=Path,
            metavar="FILE",
            help="more headers, one 'Name: value' a line (# comments): keeps a token out of ps",
        )
        parser.add_argument(
            "--rejects", type=Path, metavar="FILE", help="append each rejected record to FILE"
        )
        parser.add_argument("--batch-size", type=positive_int, default=1000)
        parser.add_argument(
            "--status-interval",
            type=positive_number,
            default=60.0,
            metavar="SECONDS",
            help="log a status line this often (60)",
        )
        parser.add_argument(
            "--heartbeat",
            type=positive_number,
            default=10.0,
            metavar="SECONDS",
            help="ping the server this often to notice a dead connection (10)",
        )
        parser.add_argument(
            "--max-events",
            type=positive_int,
            metavar="N",
            help="test hook: stop (unsubscribe, flush, exit 0) once N notifications arrived; "
            "those arriving meanwhile are stored too",
        )
        parser.add_argument(
            "--exit-after",
            type=positive_number,
            metavar="SECONDS",
            help="test hook: stop (flush, unsubscribe, exit 0) after SECONDS",
        )
        parser.add_argument(
            "--metrics-port",
            type=metrics.listen_address,
            metavar="[ADDRESS:]PORT",
            help="Serve Prometheus metrics (ingestion outcomes) here (address: 127.0.0.1).",
        )

    def handle(self, *args, **options) -> None:
        if options["verbosity"] < 3:
            for name in NOISY_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
        if not options["url"].startswith(("http://", "https://")):
            raise CommandError(f"--url {options['url']!r}: expected an http:// or https:// URL")
        rejects = options["rejects"]
        if rejects is not None and not rejects.parent.is_dir():
            raise CommandError(f"--rejects: directory {rejects.parent} does not exist")
        headers = dict(options["header"])
        if options["header_file"] is not None:
            headers.update(read_header_file(options["header_file"]))
        config = SubscriberConfig(
            url=options["url"],
            filters=SubscriptionFilters(
                mode=options["mode"],
                cluster=options["cluster"],
                namespace=options["namespace"],
                label_selector=options["label_selector"],
            ),
            headers=headers,
            batch_size=options["batch_size"],
            rejects_path=rejects,
            status_interval=options["status_interval"],
            heartbeat_interval=options["heartbeat"],
            max_events=options["max_events"],
            exit_after=options["exit_after"],
        )
        try:
            subscriber = Subscriber(config)
            if options["metrics_port"]:
                # The subscriber's own live counts, read at each scrape: no hook inside it.
                metrics.serve_metrics(
                    options["metrics_port"],
                    metrics.IngestCountsCollector("mcp", lambda: subscriber.counts),
                )
            counts = subscriber.run()
        except IngestFailed as error:
            raise CommandError(str(error)) from error
        # The contract's summary line, last, as ingest_events prints it.
        self.stdout.write(counts.summary())

"""`manage.py subscribe_mcp --url URL`: live ingestion from one kubernetes-mcp-server.

Exit status: 0 after SIGTERM/SIGINT (or a test hook), 1 when the server refuses the
subscription (a configuration error: no `events_subscribe`, an invalid mode, a tool error) or
storing failed, 2 for a usage error. Dropped connections and server restarts are retried
forever.
"""

import argparse
import logging
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from incidents import metrics
from incidents.management.base import TriageCommand, UsageError
from incidents.management.commands.ingest_events import cluster_name
from incidents.mcp_client import (
    DEPRECATED_MODES,
    MODES,
    SubscriptionFilters,
    SubscriptionRefused,
    parse_header,
)
from incidents.subscriber import IngestFailed, Subscriber, SubscriberConfig

logger = logging.getLogger("incidents.subscriber")

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
        raise UsageError(f"--header-file {path}: {error.strerror}") from None
    headers = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            name, value = parse_header(line)
        except ValueError:
            # The line itself may hold a secret: name the line, not its content.
            raise UsageError(
                f"--header-file {path}, line {number}: not in the form 'Name: value'"
            ) from None
        headers[name] = value
    return headers


class Command(TriageCommand):
    help = (
        "Subscribe to fault notifications from one kubernetes-mcp-server (MCP over streamable "
        "HTTP) and store them as ingest_events would, reconnecting and resubscribing whenever "
        "the connection drops. Runs until SIGTERM/SIGINT: then flushes, unsubscribes, exits 0. "
        "A refused subscription (no events_subscribe tool, an invalid mode, a tool error) is "
        "a configuration error: logged at ERROR with the server's words, exit 1 at once. "
        "--namespace and --label-selector were removed: the server ignores them in faults mode."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True, help="MCP endpoint, e.g. http://host:8080/mcp")
        parser.add_argument(
            "--mode",
            choices=[*MODES, *DEPRECATED_MODES],
            default="faults",
            help="What to subscribe to (default faults): `faults` stores the server's fault "
            "notifications; `events` subscribes to plain Kubernetes events, which are counted "
            "as ignored and never stored. `resource-faults` (its name on 2025-12-20) is a "
            "deprecated alias of faults.",
        )
        parser.add_argument(
            "--cluster",
            metavar="NAME",
            type=cluster_name,
            help="The cluster the records belong to, as nightcrier names it: fills an empty "
            "`cluster` (an in-cluster server sends none) and replaces the server's context "
            "name; the server's own value is kept in the stored context. Without it, a fault "
            "with an empty cluster is rejected. Not sent to the server.",
        )
        parser.add_argument(
            "--context",
            metavar="NAME",
            help="For a server started with several kubeconfig contexts: the context to watch "
            "(sent as events_subscribe's `context` argument).",
        )
        for removed in ("--namespace", "--label-selector"):
            # Upstream ignores both in faults mode (the fork's manager.go:480-553) and a fault
            # carries no labels to match here: refused with the reason, never pretended.
            parser.add_argument(removed, help=argparse.SUPPRESS)
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
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=settings.TRIAGE_INGEST_BATCH_SIZE,
            metavar="N",
            help="Most notifications written per transaction (TRIAGE_INGEST_BATCH_SIZE, 1000); "
            "a batch is written at the latest half a second after its first notification arrived.",
        )
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
        for removed in ("namespace", "label_selector"):
            if options[removed] is not None:
                flag = "--" + removed.replace("_", "-")
                raise CommandError(
                    f"{flag} was removed: kubernetes-mcp-server ignores it in faults mode and "
                    "faults carry nothing to match it against here, so it filtered nothing"
                )
        mode = options["mode"]
        if mode in DEPRECATED_MODES:
            logger.warning(
                "--mode %s is deprecated (upstream renamed it on 2025-12-20): subscribing with "
                "mode %s",
                mode,
                DEPRECATED_MODES[mode],
            )
        if not options["url"].startswith(("http://", "https://")):
            raise UsageError(f"--url {options['url']!r}: expected an http:// or https:// URL")
        rejects = options["rejects"]
        if rejects is not None and not rejects.parent.is_dir():
            raise UsageError(f"--rejects: directory {rejects.parent} does not exist")
        headers = dict(options["header"])
        if options["header_file"] is not None:
            headers.update(read_header_file(options["header_file"]))
        config = SubscriberConfig(
            url=options["url"],
            filters=SubscriptionFilters(mode=mode, context=options["context"]),
            headers=headers,
            cluster=options["cluster"],
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
        except SubscriptionRefused as error:
            # Logged at ERROR by the subscriber already; the exit status says it too.
            raise CommandError(f"subscription refused: {error}") from error
        except IngestFailed as error:
            raise CommandError(str(error)) from error
        # The contract's summary line, last, as ingest_events prints it.
        self.stdout.write(counts.summary())

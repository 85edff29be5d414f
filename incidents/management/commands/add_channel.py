"""`manage.py add_channel`: a Slack or webhook notification channel, printed with secrets masked."""

from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.choices import Severity
from incidents.notifications.channels import ChannelError, create_channel, describe
from incidents.notifications.kinds import ChannelKind, EventKind


def read_value(path: str, option: str) -> str:
    """The first line of a file (`-`: standard input): keeps a credential out of `ps`."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(
            f"{option} {path}: {getattr(error, 'strerror', None) or error}"
        ) from None
    lines = text.strip().splitlines()
    if not lines or not lines[0].strip():
        raise CommandError(f"{option} {path}: the file is empty")
    return lines[0].strip()


class Command(BaseCommand):
    help = (
        "Add a notification channel: a Slack incoming webhook or a signed JSON webhook, with "
        "optional routing by minimum severity, clusters and events. Prints the channel with its "
        "URL and secret masked."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="A unique name, e.g. sre-slack.")
        parser.add_argument("--kind", required=True, choices=ChannelKind.values)
        url = parser.add_mutually_exclusive_group(required=True)
        url.add_argument(
            "--url", help="The endpoint (visible in the process list: see --url-file)."
        )
        url.add_argument("--url-file", metavar="FILE", help="Read the URL from FILE (- for stdin).")
        secret = parser.add_mutually_exclusive_group()
        secret.add_argument("--secret", help="The webhook's HMAC key (see --secret-file).")
        secret.add_argument("--secret-file", metavar="FILE", help="Read the secret from FILE.")
        parser.add_argument(
            "--min-severity",
            choices=Severity.values,
            default=Severity.LOW,
            help="Notify about incidents of this severity or worse (default low: all).",
        )
        parser.add_argument(
            "--cluster",
            nargs="+",
            action="extend",
            default=[],
            metavar="C",
            help="Only incidents of these clusters (default: every cluster).",
        )
        parser.add_argument(
            "--events",
            nargs="+",
            action="extend",
            default=[],
            metavar="E",
            choices=EventKind.values,
            help=f"Only these events (default: all of {', '.join(EventKind.values)}).",
        )
        parser.add_argument("--disabled", action="store_true", help="Add it switched off.")
        parser.add_argument(
            "--skip-unchanged-reports",
            action="store_true",
            help="No report_ready when the report concludes what the fault's previous one did.",
        )

    def handle(self, *args, **options) -> None:
        if options["url_file"] == options["secret_file"] == "-":
            raise CommandError("--url-file and --secret-file cannot both read standard input")
        url = options["url"] or read_value(options["url_file"], "--url-file")
        secret = options["secret"] or ""
        if options["secret_file"]:
            secret = read_value(options["secret_file"], "--secret-file")
        try:
            channel = create_channel(
                name=options["name"],
                kind=options["kind"],
                url=url,
                secret=secret,
                min_severity=options["min_severity"],
                clusters=options["cluster"],
                events=options["events"],
                enabled=not options["disabled"],
                skip_unchanged_reports=options["skip_unchanged_reports"],
            )
        except ChannelError as error:
            raise CommandError(str(error)) from None
        for line in describe(channel):
            self.stdout.write(line)
        if not settings.TRIAGE_BASE_URL:
            self.stderr.write(
                "warning: TRIAGE_BASE_URL is not set; deliver_notifications will not start "
                "without it (links in messages must be absolute)"
            )

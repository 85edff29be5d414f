"""What every command of the app shares: usage errors exit 2.

A usage error is a command line that cannot run: an unknown option, a value of the wrong form, a
file it names that is not there. argparse exits 2 for its own from the command line; `UsageError`
gives the checks a command makes itself the same status, and `TriageCommand` makes argparse's
raise a `UsageError` under `call_command` too (Django raises a plain `CommandError`, status 1).
Anything that goes wrong once the work has started keeps its own status (1, or more).
"""

from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

USAGE_ERROR = 2


class UsageError(CommandError):
    """A command line that cannot run: printed as `CommandError` is, exit status 2."""

    def __init__(self, *args: object, returncode: int = USAGE_ERROR) -> None:
        super().__init__(*args, returncode=returncode)


class TriageCommand(BaseCommand):
    """Base class of the app's management commands (`class Command(TriageCommand)`)."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        if not parser.called_from_command_line:  # from the command line argparse exits 2

            def error(message: str) -> NoReturn:
                raise UsageError(f"Error: {message}")

            parser.error = error  # type: ignore[method-assign]  # argparse's documented hook
        return parser

"""Usage errors exit 2 in every command, whether argparse or the command finds them; a failure
once the work has started does not."""

import io

import pytest
from django.core.management import CommandError, call_command, load_command_class
from django.db import connections

from incidents.management.base import USAGE_ERROR, TriageCommand
from incidents.models import FaultEvent, Incident
from tests.builders import make_incident

pytestmark = pytest.mark.django_db

COMMANDS = ["create_demo_user", "ingest_events", "run_triage", "seed_demo", "subscribe_mcp"]

USAGE_ERRORS = [
    ("create_demo_user", ["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ("ingest_events", ["/no/such/file.jsonl"], "/no/such/file.jsonl: no such file"),
    ("ingest_events", ["--batch-size", "many"], "invalid"),
    ("run_triage", ["--concurrency", "0"], "--concurrency"),
    ("run_triage", ["--agent-command", ""], "TRIAGE_AGENT_COMMAND is not set"),
    ("run_triage", ["--agent-command", "/nonexistent/agent"], "is not an executable"),
    ("seed_demo", ["--incidents", "none"], "--incidents"),
    ("seed_demo", ["--incidents", "0"], "incidents"),
    ("subscribe_mcp", ["--url", "127.0.0.1:8080/mcp"], "expected an http:// or https:// URL"),
    ("subscribe_mcp", ["--url", "http://h/mcp", "--mode", "everything"], "invalid choice"),
    ("subscribe_mcp", ["--url", "http://h/mcp", "--header-file", "/no/such/headers"], "/no/such"),
    ("subscribe_mcp", ["--url", "http://h/mcp", "--rejects", "/no/such/dir/r.jsonl"], "/no/such"),
]


def run_from_command_line(name: str, args: list[str], monkeypatch) -> tuple[int, str]:
    """(exit status, stderr) of `manage.py NAME ARGS`, in this process."""
    monkeypatch.setattr(connections, "close_all", lambda: None)  # keep the test's transaction
    stderr = io.StringIO()
    command = load_command_class("incidents", name)
    command.stdout, command.stderr = io.StringIO(), stderr
    monkeypatch.setattr("sys.stderr", stderr)  # argparse prints its own errors there
    try:
        command.run_from_argv(["manage.py", name, *args])
    except SystemExit as exit_:
        return exit_.code, stderr.getvalue()
    return 0, stderr.getvalue()


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_shares_the_base(name):
    assert isinstance(load_command_class("incidents", name), TriageCommand)


@pytest.mark.parametrize(("name", "args", "message"), USAGE_ERRORS)
def test_a_usage_error_exits_2_from_the_command_line(name, args, message, monkeypatch):
    status, stderr = run_from_command_line(name, args, monkeypatch)
    assert status == USAGE_ERROR == 2
    assert message in stderr
    assert not FaultEvent.objects.exists() and not Incident.objects.exists()


@pytest.mark.parametrize(("name", "args", "message"), USAGE_ERRORS)
def test_a_usage_error_carries_status_2_under_call_command(name, args, message):
    with pytest.raises(CommandError, match=message) as raised:
        call_command(name, *args)
    assert raised.value.returncode == 2


def test_a_failure_once_the_work_started_is_not_a_usage_error(monkeypatch):
    make_incident()  # seed_demo refuses a database that has incidents: a state, not a usage
    status, stderr = run_from_command_line("seed_demo", ["--incidents", "5"], monkeypatch)
    assert status == 1
    assert "not empty" in stderr or "--flush" in stderr

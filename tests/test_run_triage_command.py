"""`manage.py run_triage` as a command: its arguments, and real worker processes
(two workers sharing a queue, a worker killed with SIGKILL, a worker stopped with SIGTERM)."""

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.utils import timezone

from incidents.choices import Status
from incidents.models import AgentExecution, Incident
from incidents.store import WORKER_LOST, DjangoStateStore
from tests.agents import agent_python, agent_script, reachable_folder
from tests.builders import make_incident
from tests.databases import database_url


def agent(*args: str) -> str:
    return shlex.join([agent_python(), str(agent_script("scripted_agent.py")), *args])


@pytest.fixture
def shared() -> Path:
    """A folder the agents (run as nobody by a root worker) may write to."""
    with reachable_folder(0o1777) as folder:
        yield folder


# -- arguments ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--timeout", "-1"], "--timeout"),
        (["--poll-interval", "0"], "--poll-interval"),
        (["--kill-grace", "abc"], "--kill-grace"),
        (["--once", "--until-empty"], "not allowed with argument"),
        (["--agent-command", ""], "TRIAGE_AGENT_COMMAND is not set"),
        (["--agent-command", "agent {workspace} {model}"], r"unknown placeholder \{model\}"),
        (["--agent-command", "agent {prompt}"], r"\{prompt\} needs TRIAGE_AGENT_PROMPT_FILE"),
        (["--prompt-file", "/nonexistent/prompt.md", "--agent-command", "stub"], "No such file"),
        (["--agent-command", "'unbalanced"], "No closing quotation"),
        (["--agent-command", "/nonexistent/agent --x"], "/nonexistent/agent is not an executable"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("run_triage", *args)


def test_production_worker_without_an_agent_refuses_to_start_in_one_line(tmp_path):
    """No fabricated reports: with DEBUG off and no TRIAGE_AGENT_COMMAND, nothing runs."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TRIAGE_AGENT_COMMAND", "DJANGO_DEBUG")
    }
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="x" * 50,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        TRIAGE_WORKSPACE_ROOT=str(tmp_path / "ws"),
    )
    done = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "run_triage", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "CommandError: TRIAGE_AGENT_COMMAND is not set: name the agent to run (or "
        "--agent-command; `stub` is the demo agent, whose reports are synthetic)"
    ]
    assert not (tmp_path / "ws").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker can switch users")
@pytest.mark.parametrize("user", ["root", "0"])
def test_a_root_worker_never_runs_an_agent_as_root(settings, user):
    settings.TRIAGE_AGENT_USER = user
    with pytest.raises(CommandError, match="never runs an agent as root") as error:
        call_command("run_triage", "--once", "--agent-command", "stub")
    assert error.value.returncode == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="a root worker checks what its agent user reaches")
def test_an_agent_its_user_cannot_execute_is_refused_at_start(tmp_path):
    program = tmp_path / "agent"  # pytest's tmp_path is root's, mode 0700
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    with pytest.raises(CommandError, match=f"the agent user nobody cannot execute {program}"):
        call_command("run_triage", "--once", "--agent-command", str(program))


@pytest.mark.django_db
def test_defaults_come_from_settings(settings, shared, capsys):
    settings.TRIAGE_AGENT_COMMAND = agent()
    settings.TRIAGE_WORKSPACE_ROOT = shared / "from-settings"
    incident = make_incident()
    call_command("run_triage", "--once")
    assert (shared / "from-settings" / str(incident.incident_id) / "incident.json").exists()
    assert "triaged 1: resolved 1" in capsys.readouterr().out


# -- real worker processes, on the test database (a file on SQLite) ------------------------------
def start_worker(*args: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_DEBUG": "1"}
    return subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "run_triage", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(worker: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    try:
        out, err = worker.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, err = worker.communicate()
        pytest.fail(f"worker still running after {timeout}s:\n{out}\n{err}")
    assert worker.returncode == 0, err
    return out, err


def wait_for(condition: Callable[[], object], timeout: float = 30, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what or condition}")


def summary_of(out: str) -> str:
    return out.strip().splitlines()[-1]


@pytest.mark.django_db(transaction=True)
def test_two_workers_run_each_of_twenty_incidents_exactly_once(shared):
    incidents = [make_incident() for _ in range(20)]
    record = shared / "runs.txt"
    command = agent("--record", str(record), "--sleep", "0.3")
    workers = [
        start_worker(
            "--until-empty", "--agent-command", command, "--workspace-root", str(shared / "ws")
        )
        for _ in range(2)
    ]
    summaries = [summary_of(finish(worker)[0]) for worker in workers]
    runs = record.read_text().split()
    assert sorted(runs) == sorted(str(incident.incident_id) for incident in incidents)
    assert AgentExecution.objects.count() == 20
    assert set(Incident.objects.values_list("status", flat=True)) == {Status.RESOLVED}
    counts = [int(summary.split(":")[0].removeprefix("triaged ")) for summary in summaries]
    assert sum(counts) == 20
    assert all(counts), f"one worker did everything: {summaries}"


@pytest.mark.django_db(transaction=True)
def test_incident_of_a_worker_killed_mid_run_is_recovered_by_the_next(shared):
    incident = make_incident()
    root = shared / "ws"
    first = start_worker(
        "--once", "--timeout", "600", "--workspace-root", str(root),
        "--agent-command", agent("--sleep", "600"),
    )  # fmt: skip
    pid_file = root / str(incident.incident_id) / "agent.pid"
    try:
        wait_for(pid_file.exists, what="the first worker's agent to start")
        first.kill()  # SIGKILL: no chance to record anything
        first.communicate()
    finally:
        # The agent runs in its own session, so it outlives the worker; end it here.
        os.killpg(int(wait_for(pid_file.read_text)), signal.SIGKILL)
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING
    (open_execution,) = AgentExecution.objects.filter(incident=incident)
    assert open_execution.completed_at is None  # recorded at the start, never finished

    # The next worker uses a 1 s timeout: the incident counts as lost 1 + 2 x 1 s after its start.
    lost_at = incident.started_at + timedelta(seconds=3.2)
    wait_for(lambda: timezone.now() > lost_at, what="the claim to count as lost")
    out, _ = finish(
        start_worker(
            "--until-empty", "--timeout", "1", "--kill-grace", "1",
            "--workspace-root", str(root), "--agent-command", agent(),
        )
    )  # fmt: skip
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    executions = list(AgentExecution.objects.filter(incident=incident).order_by("started_at"))
    assert [execution.execution_id for execution in executions][0] == open_execution.execution_id
    assert executions[0].error_message.startswith(f"{WORKER_LOST}: investigating since")
    assert executions[0].completed_at is not None
    assert executions[1].exit_code == 0
    assert "triaged 1: resolved 1" in summary_of(out)
    assert "lost requeued 1, lost twice 0" in summary_of(out)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_claiming_and_lets_the_running_agent_finish(shared, stop_signal):
    first = make_incident()
    second = make_incident()
    root = shared / "ws"
    worker = start_worker(
        "--poll-interval", "0.2", "--workspace-root", str(root),
        "--agent-command", agent("--sleep", "1.5"),
    )  # fmt: skip
    wait_for((root / str(first.incident_id) / "agent.pid").exists, what="the agent to start")
    worker.send_signal(stop_signal)
    out, err = finish(worker, timeout=30)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Status.RESOLVED  # finished, not killed
    assert second.status == Status.PENDING  # never claimed
    assert f"{stop_signal.name}: no new incidents" in err
    assert "triaged 1: resolved 1" in summary_of(out)


# -- F14: a database outage ends a bounded run with exit 3 and says what was left ----------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "concurrency",
    # SQLite's in-memory test database cannot serve several slots (see test_worker.py).
    [1, pytest.param(4, marks=pytest.mark.postgres)],
)
def test_database_outage_exits_3_with_what_was_left(shared, monkeypatch, capsys, concurrency):
    for _ in range(12):
        make_incident()
    real_complete = DjangoStateStore.complete_incident
    completed = []
    lock = threading.Lock()

    def complete_then_outage(self, *args, **kwargs):
        with lock:
            if len(completed) >= 2:
                raise OperationalError("server closed the connection unexpectedly")
            completed.append(args[0])
        return real_complete(self, *args, **kwargs)

    monkeypatch.setattr(DjangoStateStore, "complete_incident", complete_then_outage)
    with pytest.raises(CommandError, match="stopped early: database error: server closed") as e:
        call_command(
            "run_triage", "--until-empty", "--concurrency", str(concurrency),
            "--workspace-root", str(shared / "ws"), "--agent-command", agent("--sleep", "0.2"),
        )  # fmt: skip
    assert e.value.returncode == 3
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    statuses = list(Incident.objects.values_list("status", flat=True))
    pending, investigating = statuses.count(Status.PENDING), statuses.count(Status.INVESTIGATING)
    assert statuses.count(Status.RESOLVED) == 2 and pending + investigating == 10
    assert 1 <= investigating <= concurrency  # the runs in flight when the database went
    assert summary.startswith("triaged 2: resolved 2, failed 0, agent_failed 0")
    assert summary.endswith(
        f"; stopped early (database), left: {pending} pending, {investigating} investigating, "
        f"{investigating} claimed by this worker and not recorded (requeued once counted lost)"
    )

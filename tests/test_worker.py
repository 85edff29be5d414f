"""The triage pipeline end to end: `run_triage` in-process with scripted agents (subprocesses)."""

import json
import os
import shlex
import signal
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from incidents.choices import Status
from incidents.models import AgentExecution, Incident, TriageReport
from incidents.store import WORKER_LOST, WORKER_LOST_TWICE
from incidents.stub_agent import SYNTHETIC_NOTE
from incidents.worker import Mode, Worker, WorkerConfig, pipeline, triage_incident, workspace
from incidents.worker.pipeline import CLAIM_LOST
from tests.agents import agent_python, agent_script, reachable_folder
from tests.builders import make_execution, make_fault_event, make_incident

pytestmark = pytest.mark.django_db


def agent(*args: str) -> str:
    return shlex.join([agent_python(), str(agent_script("scripted_agent.py")), *args])


@pytest.fixture
def workspace_root() -> Path:
    with reachable_folder() as folder:
        yield folder / "workspaces"


@pytest.fixture
def shared() -> Path:
    """A folder every agent may write to (files like order.txt that tests read back)."""
    with reachable_folder(0o1777) as folder:
        yield folder


@pytest.fixture
def run_triage(workspace_root, capsys):
    """Run the command in-process; returns its summary line."""

    def run(*args: str, command: str | None = None, root: Path | None = None) -> str:
        options = ["--workspace-root", str(root or workspace_root), *args]
        if command is not None:
            options += ["--agent-command", command]
        call_command("run_triage", *options)
        return capsys.readouterr().out.strip().splitlines()[-1]

    return run


def workspace_of(root: Path, incident: Incident) -> Path:
    return root / str(incident.incident_id)


# -- the verdicts -----------------------------------------------------------------------------
def test_exit_zero_with_report_resolves_and_records_all_points(run_triage, workspace_root):
    incident = make_incident()
    summary = run_triage("--once", command=agent())
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    assert incident.exit_code == 0 and incident.failure_reason is None
    assert incident.started_at <= incident.completed_at
    execution = AgentExecution.objects.get(incident=incident)
    assert execution.exit_code == 0 and execution.error_message == ""
    assert execution.started_at <= execution.completed_at
    folder = workspace_of(workspace_root, incident)
    assert execution.log_path_list == [
        str(folder / "logs" / "agent.stdout.log"),
        str(folder / "logs" / "agent.stderr.log"),
    ]
    report = TriageReport.objects.get(incident=incident)
    assert report.execution_id == execution.execution_id
    assert report.report_markdown == (folder / "output" / "investigation.md").read_text()
    assert "<table>" in report.report_html and "<pre><code" in report.report_html
    assert summary.startswith("triaged 1: resolved 1, failed 0, agent_failed 0")


@pytest.mark.parametrize("report", ["full", "none"])
def test_non_zero_exit_fails_with_code_and_stderr_tail(run_triage, report):
    incident = make_incident()
    run_triage("--once", command=agent("--exit", "3", "--report", report, "--stderr", "boom"))
    incident.refresh_from_db()
    assert incident.status == Status.FAILED
    assert incident.exit_code == 3
    assert incident.failure_reason == "agent exited with code 3: boom"
    execution = AgentExecution.objects.get(incident=incident)
    assert (execution.exit_code, execution.error_message) == (3, incident.failure_reason)
    # A valid report written before a non-zero exit is kept: a partial investigation.
    assert TriageReport.objects.filter(incident=incident).count() == (report == "full")


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        ("none", "investigation report missing"),
        ("small", "investigation report too small: 7 bytes (at least 100 expected)"),
        ("symlink", "investigation report is not a regular file"),
    ],
)
def test_invalid_report_is_agent_failed(run_triage, report, reason):
    incident = make_incident()
    run_triage("--once", command=agent("--report", report))
    incident.refresh_from_db()
    assert (incident.status, incident.exit_code, incident.failure_reason) == (
        Status.AGENT_FAILED,
        0,
        reason,
    )
    assert not TriageReport.objects.exists()
    assert AgentExecution.objects.get(incident=incident).error_message == reason


def test_oversized_report_is_agent_failed_without_being_read(run_triage):
    incident = make_incident()
    run_triage("--once", command=agent("--report-bytes", str(3 * 1024 * 1024)))
    incident.refresh_from_db()
    assert incident.status == Status.AGENT_FAILED
    assert incident.failure_reason == (
        "investigation report too large: 3145728 bytes (at most 2097152 accepted)"
    )


def test_agent_killed_by_a_signal_is_agent_failed(run_triage):
    incident = make_incident()
    run_triage("--once", command=agent("--kill-self", "SIGSEGV", "--stderr", "segfault here"))
    incident.refresh_from_db()
    assert (incident.status, incident.exit_code) == (Status.AGENT_FAILED, None)
    assert incident.failure_reason == "agent killed by signal SIGSEGV: segfault here"


def test_report_of_exactly_one_hundred_bytes_is_accepted(run_triage):
    incident = make_incident()
    run_triage("--once", command=agent("--report-text", "#" * 100))
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED


def test_nul_bytes_in_report_and_stderr_are_stored_replaced(run_triage):
    incident = make_incident()
    text = "# Report\n" + "word " * 40
    run_triage(
        "--once", command=agent("--report-text", text, "--exit", "1", "--stderr", "x", "--nul")
    )
    incident.refresh_from_db()
    assert incident.failure_reason == "agent exited with code 1: x\ufffd"
    assert TriageReport.objects.get().report_markdown == text + "\ufffd"


def test_hostile_report_is_stored_sanitized(run_triage):
    incident = make_incident()
    text = "# Report\n\n<script>alert(1)</script><img src=x onerror=alert(2)>\n" + "word " * 30
    run_triage("--once", command=agent("--report-text", text))
    report = TriageReport.objects.get(incident=incident)
    assert "<script" not in report.report_html and "onerror" not in report.report_html
    assert "<script>" in report.report_markdown  # the markdown is kept as written


# -- timeouts and processes ----------------------------------------------------------------------
def _alive(pid: int, wait: float = 3.0) -> bool:
    """Whether `pid` still runs `wait` seconds from now (a zombie counts as dead)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


@contextmanager
def watchdog(pid_file: Path, *, after: float = 60) -> Iterator[threading.Event]:
    """Kill the process group led by `pid_file`'s process if the block still runs `after` s on,
    and say so: a worker waiting on a process it should have killed (one that would sleep for
    ten minutes) then fails its test instead of hanging it. No normal run comes near `after`."""
    fired = threading.Event()

    def rescue() -> None:
        fired.set()
        with suppress(OSError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)

    timer = threading.Timer(after, rescue)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def test_timeout_kills_the_agent_and_its_children(run_triage, workspace_root):
    incident = make_incident()
    # Had the agent run its 600 s, it would have exited 0 without a report: another reason.
    run_triage(
        "--once", "--timeout", "1", "--kill-grace", "1",
        command=agent("--spawn-sleeper", "--sleep", "600"),
    )  # fmt: skip
    incident.refresh_from_db()
    assert incident.status == Status.AGENT_FAILED
    assert incident.failure_reason == "timed out after 1 s"
    assert incident.exit_code is None
    execution = AgentExecution.objects.get(incident=incident)
    assert execution.error_message == "timed out after 1 s"
    assert execution.exit_code is None
    child = int((workspace_of(workspace_root, incident) / "child.pid").read_text())
    assert not _alive(child)


def test_agent_ignoring_sigterm_is_killed_after_the_grace(run_triage, workspace_root):
    incident = make_incident()
    pid_file = workspace_of(workspace_root, incident) / "agent.pid"
    with watchdog(pid_file) as rescued:
        run_triage(
            "--once", "--timeout", "0.5", "--kill-grace", "0.5",
            command=agent("--ignore-term", "--sleep", "600"),
        )  # fmt: skip
    assert not rescued.is_set(), "the worker never sent SIGKILL after the grace"
    incident.refresh_from_db()
    assert incident.failure_reason == "timed out after 0.5 s"
    pid = int((workspace_of(workspace_root, incident) / "agent.pid").read_text())
    assert not _alive(pid)


def test_a_child_left_running_after_exit_does_not_hang_the_worker(run_triage, workspace_root):
    incident = make_incident()
    group_file = workspace_of(workspace_root, incident) / "agent.pid"  # the child is in its group
    with watchdog(group_file) as rescued:  # the child sleeps 600 s
        run_triage("--once", command=agent("--spawn-sleeper"))
    assert not rescued.is_set(), "the worker waited for the agent's child to exit"
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    child = int((workspace_of(workspace_root, incident) / "child.pid").read_text())
    assert not _alive(child)


def test_agent_output_beyond_the_log_limit_is_dropped(run_triage, workspace_root, settings):
    settings.TRIAGE_AGENT_LOG_MAX_BYTES = 64 * 1024
    incident = make_incident()
    run_triage("--once", command=agent("--stdout-bytes", str(4 * 1024 * 1024)))
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED
    log = workspace_of(workspace_root, incident) / "logs" / "agent.stdout.log"
    content = log.read_bytes()
    assert 64 * 1024 < len(content) < 64 * 1024 + 200
    assert content.endswith(b"bytes dropped]\n")
    assert b"log truncated at 65536 bytes; 4128768 more bytes dropped" in content


def test_agent_that_cannot_start_is_agent_failed(workspace_root):
    incident = make_incident()
    config = WorkerConfig(agent_command="/nonexistent/agent --flag", workspace_root=workspace_root)
    summary = Worker(config, mode=Mode.ONCE).run()
    incident.refresh_from_db()
    assert incident.status == Status.AGENT_FAILED
    assert incident.failure_reason == (
        "agent could not start: /nonexistent/agent: No such file or directory"
    )
    assert summary.outcomes[Status.AGENT_FAILED] == 1


def test_a_pipeline_bug_fails_that_incident_and_the_worker_goes_on(run_triage, monkeypatch):
    first = make_incident(created_at=timezone.now() - timedelta(minutes=1))
    second = make_incident()
    calls = []

    def broken_once(workspace):
        calls.append(workspace)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return real_read_report(workspace)

    real_read_report = pipeline.read_report
    monkeypatch.setattr(pipeline, "read_report", broken_once)
    summary = run_triage("--until-empty", command=agent())
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.failure_reason) == (
        Status.AGENT_FAILED,
        "worker error: RuntimeError: disk on fire",
    )
    assert second.status == Status.RESOLVED
    assert summary.startswith("triaged 2: resolved 1, failed 0, agent_failed 1")


def test_each_step_logs_one_structured_line(run_triage, caplog):
    incident = make_incident()
    with caplog.at_level("INFO", logger="incidents.worker"):
        run_triage("--once", command=agent())
    steps = [record for record in caplog.records if getattr(record, "incident_id", None)]
    assert [record.step for record in steps] == [
        "claimed",
        "agent started",
        "agent finished",
        "report recorded",
        "completed",
    ]
    assert {record.incident_id for record in steps} == {str(incident.incident_id)}
    assert steps[-1].status == Status.RESOLVED
    assert all(record.duration_s >= 0 for record in steps)
    (finished,) = [r for r in caplog.records if getattr(r, "step", "") == "worker finished"]
    assert (finished.triaged, finished.count_resolved) == (1, 1)


def test_relative_agent_path_is_taken_from_the_workers_directory(run_triage, shared, monkeypatch):
    program = shared / "bin" / "agent"
    program.parent.mkdir(mode=0o755)
    program.write_text(f"#!{agent_python()}\n" + agent_script("scripted_agent.py").read_text())
    program.chmod(0o755)
    monkeypatch.chdir(shared)
    incident = make_incident()
    run_triage("--once", command="bin/agent --exit 0")
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED


# -- the workspace and what the agent sees ---------------------------------------------------------
def test_workspace_holds_incident_and_event_in_nightcriers_form(run_triage, workspace_root):
    event = make_fault_event(
        save=True,
        fault_type="OOMKilled",
        resource_api_version="apps/v1",
        resource_kind="StatefulSet",
        context=json.dumps({"context": "OOMKilled", "logs": [{"container": "db", "sample": "x"}]}),
    )
    incident = make_incident(event=event)
    run_triage("--once", command=agent("--dump-env"))
    folder = workspace_of(workspace_root, incident)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    incident.refresh_from_db()
    execution = AgentExecution.objects.get()
    stamp = event.timestamp.isoformat().replace("+00:00", "Z")
    seen = json.loads((folder / "seen.json").read_text())
    assert seen["output_listing"] == []  # output/ is empty when the agent starts
    # What the agent read: nightcrier's names and types (internal/incident/incident.go).
    assert seen["incident"] == {
        "incidentId": str(incident.incident_id),
        "faultId": event.fault_id,
        "status": Status.INVESTIGATING,
        "createdAt": incident.created_at.isoformat().replace("+00:00", "Z"),
        "startedAt": incident.started_at.isoformat().replace("+00:00", "Z"),
        "cluster": event.cluster,
        "namespace": event.resource_namespace,
        "resource": {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "name": event.resource_name,
            "namespace": event.resource_namespace,
            "uid": event.resource_uid,
        },
        "faultType": "OOMKilled",
        "severity": event.severity,
        "context": "OOMKilled",  # upstream's string, not our JSON around it
        "timestamp": stamp,
        "triggeringEventId": event.fault_id,
        "executionId": str(execution.execution_id),
        "subscriptionId": event.subscription_id,
        "triageSeverity": event.severity,
        "triageContext": {"context": "OOMKilled", "logs": [{"container": "db", "sample": "x"}]},
    }
    # After the run: rewritten as nightcrier does, empty fields left out as its omitempty does.
    after = json.loads((folder / "incident.json").read_text())
    assert after == {
        **seen["incident"],
        "status": Status.RESOLVED,
        "completedAt": execution.completed_at.isoformat().replace("+00:00", "Z"),
        "exitCode": 0,
        "logPaths": {
            "stdout": str(folder / "logs" / "agent.stdout.log"),
            "stderr": str(folder / "logs" / "agent.stderr.log"),
        },
    }
    fault = json.loads((folder / "event.json").read_text())
    assert fault == {
        "subscriptionId": event.subscription_id,
        "cluster": event.cluster,
        "faultId": event.fault_id,
        "faultType": "OOMKilled",
        "severity": event.severity,
        "resource": seen["incident"]["resource"],
        "context": "OOMKilled",
        "timestamp": stamp,
    }


def test_event_json_is_the_record_as_sent_when_the_store_kept_it(
    run_triage, workspace_root, monkeypatch
):
    sent = '{"faultId":"f7a3b2c1d4e5f6a7", "severity":"warning",  "context":"\\ud800"}'
    real_view = workspace.upstream_view
    monkeypatch.setattr(workspace, "upstream_view", lambda i: real_view(i) | {"raw": sent})
    incident = make_incident()
    run_triage("--once", command=agent())
    assert (workspace_of(workspace_root, incident) / "event.json").read_text() == sent


def test_failed_run_is_written_back_into_incident_json(run_triage, workspace_root):
    incident = make_incident()
    run_triage("--once", command=agent("--exit", "2", "--stderr", "no access"))
    after = json.loads((workspace_of(workspace_root, incident) / "incident.json").read_text())
    assert (after["status"], after["exitCode"]) == (Status.FAILED, 2)
    assert after["failureReason"] == "agent exited with code 2: no access"


def test_agent_environment_names_the_workspace_and_hides_worker_secrets(
    run_triage, workspace_root, monkeypatch, settings
):
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/prod")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "s3cret")
    monkeypatch.setenv("PGPASSWORD", "pw")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws")
    monkeypatch.setenv("SITE_TOKEN", "passed on purpose")
    monkeypatch.setenv("KUBECONFIG", "/etc/kube/config")
    settings.TRIAGE_AGENT_PASS_ENV = ["SITE_TOKEN", "DJANGO_SECRET_KEY"]
    incident = make_incident()
    run_triage("--once", "--timeout", "120", command=agent("--dump-env"))
    folder = workspace_of(workspace_root, incident)
    seen = json.loads((folder / "seen.json").read_text())
    env = seen["env"]
    assert seen["cwd"] == str(folder)
    assert seen["own_session"] is True
    assert seen["uid"] != 0 or os.geteuid() != 0  # a root worker never runs an agent as root
    assert env["TRIAGE_INCIDENT_ID"] == env["INCIDENT_ID"] == str(incident.incident_id)
    assert env["TRIAGE_EXECUTION_ID"] == str(AgentExecution.objects.get().execution_id)
    assert env["TRIAGE_WORKSPACE"] == env["HOME"] == str(folder)
    assert env["TRIAGE_INCIDENT_FILE"] == str(folder / "incident.json")
    assert env["TRIAGE_EVENT_FILE"] == str(folder / "event.json")
    assert env["TRIAGE_OUTPUT_DIR"] == str(folder / "output")
    assert env["TRIAGE_REPORT_FILE"] == str(folder / "output" / "investigation.md")
    assert env["TRIAGE_PROMPT_FILE"] == str(folder / "prompt-sent.md")
    assert env["TRIAGE_TIMEOUT_SECONDS"] == "120"
    assert env["CONTAINER_TIMEOUT"] == "108"  # below ours, so a wrapper's timeout fires first
    assert env["KUBECONFIG"] == "/etc/kube/config"  # no per-cluster file: the worker's passes
    assert env["SITE_TOKEN"] == "passed on purpose"
    for secret in ("DATABASE_URL", "DJANGO_SECRET_KEY", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY"):
        assert secret not in env


def test_placeholders_fill_one_argument_each(run_triage, workspace_root, shared, settings):
    settings.TRIAGE_KUBECONFIG_DIR = str(shared)
    (shared / "prod-eu-1").write_text("kind: Config\n")
    prompt = shared / "prompt.md"
    prompt.write_text("Investigate 'this' incident; $HOME {workspace} stays as written.\n")
    incident = make_incident(event=make_fault_event(save=True, cluster="prod-eu-1"))
    command = agent("--dump-env", "{incident_id}", "id={execution_id}", "{timeout}", "{prompt}")
    run_triage("--once", "--timeout", "20", "--prompt-file", str(prompt), command=command)
    folder = workspace_of(workspace_root, incident)
    seen = json.loads((folder / "seen.json").read_text())
    execution = AgentExecution.objects.get()
    assert seen["argv"][-4:] == [
        str(incident.incident_id),
        f"id={execution.execution_id}",
        "15",  # CONTAINER_TIMEOUT: 5 s below our 20 s
        prompt.read_text(),  # the file's text, one argument, placeholders in it left alone
    ]
    assert seen["prompt_sent"] == prompt.read_text()
    assert seen["env"]["KUBECONFIG"] == seen["env"]["KUBECONFIG_PATH"] == str(shared / "prod-eu-1")


def test_rerun_starts_from_a_fresh_workspace(run_triage, workspace_root):
    incident = make_incident()
    stale = workspace_of(workspace_root, incident) / "output"
    stale.mkdir(parents=True)
    (stale / "investigation.md").write_text("# old attempt\n" + "x" * 200)
    run_triage("--once", command=agent("--report", "none"))
    incident.refresh_from_db()
    assert incident.failure_reason == "investigation report missing"


def test_unusable_workspace_root_stops_claiming_and_drains_nothing(run_triage, shared):
    blocker = shared / "not-a-directory"
    blocker.write_text("")
    first, second = make_incident(), make_incident()
    root = blocker / "workspaces"
    with pytest.raises(CommandError, match=f"stopped early: workspace root {root} unusable: ") as e:
        run_triage("--until-empty", command=agent(), root=root)
    assert e.value.returncode == 4
    for incident in (first, second):
        incident.refresh_from_db()
        assert incident.status == Status.PENDING  # never claimed, never failed
    assert not AgentExecution.objects.exists()


# -- the queue ----------------------------------------------------------------------------------
def test_incidents_are_taken_oldest_first(run_triage, shared):
    now = timezone.now()
    newest = make_incident(created_at=now - timedelta(minutes=1))
    oldest = make_incident(created_at=now - timedelta(minutes=30))
    middle = make_incident(created_at=now - timedelta(minutes=10))
    make_incident(status=Status.RESOLVED, created_at=now - timedelta(hours=1))
    order = shared / "order.txt"
    summary = run_triage("--until-empty", command=agent("--record", str(order)))
    expected = [str(incident.incident_id) for incident in (oldest, middle, newest)]
    assert order.read_text().split() == expected
    assert summary.startswith("triaged 3: resolved 3")


def test_once_handles_one_incident(run_triage):
    first = make_incident(created_at=timezone.now() - timedelta(minutes=5))
    second = make_incident()
    run_triage("--once", command=agent())
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (Status.RESOLVED, Status.PENDING)


def test_empty_queue_exits_with_an_empty_summary(run_triage):
    make_incident(status=Status.RESOLVED)
    summary = run_triage("--until-empty", command=agent())
    assert summary.startswith("triaged 0: resolved 0, failed 0, agent_failed 0; lost requeued 0")


def test_stop_lets_the_running_agent_finish_and_claims_nothing_more(workspace_root):
    first = make_incident(created_at=timezone.now() - timedelta(minutes=1))
    second = make_incident()
    config = WorkerConfig(
        agent_command=agent("--sleep", "1"), workspace_root=workspace_root, poll_interval=0.1
    )
    worker = Worker(config, mode=Mode.FOREVER)

    def stop_mid_run() -> None:
        # The workspace exists once the first agent is about to run; it then sleeps 1 s.
        deadline = time.monotonic() + 30
        while not (workspace_root / str(first.incident_id)).exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        worker.stop()  # what SIGTERM/SIGINT do

    stopper = threading.Thread(target=stop_mid_run)
    stopper.start()
    summary = worker.run()
    stopper.join()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (Status.RESOLVED, Status.PENDING)
    assert summary.triaged == 1


# -- crash recovery ------------------------------------------------------------------------------
def test_lost_incident_is_requeued_once_and_triaged(run_triage):
    started = timezone.now() - timedelta(minutes=10)
    lost = make_incident(status=Status.INVESTIGATING, started_at=started)
    running = make_incident(status=Status.INVESTIGATING, started_at=timezone.now())
    summary = run_triage("--once", "--timeout", "60", "--kill-grace", "1", command=agent())
    lost.refresh_from_db()
    running.refresh_from_db()
    assert lost.status == Status.RESOLVED
    assert running.status == Status.INVESTIGATING  # within its time: a live worker has it
    executions = list(AgentExecution.objects.filter(incident=lost).order_by("started_at"))
    assert len(executions) == 2
    assert executions[0].error_message.startswith(f"{WORKER_LOST}: investigating since")
    assert executions[0].started_at == started
    assert executions[1].exit_code == 0
    assert "lost requeued 1, lost twice 0" in summary


def test_open_execution_of_a_lost_worker_is_closed_not_duplicated(store):
    started = timezone.now() - timedelta(hours=1)
    lost = make_incident(status=Status.INVESTIGATING, started_at=started)
    opened = make_execution(lost, started_at=started, completed_at=None, exit_code=None)
    recovered = store.recover_lost_incidents(timezone.now() - timedelta(minutes=20))
    assert [incident.status for incident in recovered] == [Status.PENDING]
    opened.refresh_from_db()
    assert opened.completed_at is not None
    assert opened.error_message.startswith(WORKER_LOST)
    assert AgentExecution.objects.filter(incident=lost).count() == 1


def test_incident_lost_twice_is_agent_failed(run_triage, shared):
    started = timezone.now() - timedelta(minutes=10)
    lost = make_incident(status=Status.INVESTIGATING, started_at=started)
    make_execution(
        lost,
        started_at=started - timedelta(hours=1),
        completed_at=started - timedelta(minutes=30),
        exit_code=None,
        error_message=f"{WORKER_LOST}: earlier",
    )
    order = shared / "order.txt"
    summary = run_triage("--until-empty", "--timeout", "60", command=agent("--record", str(order)))
    lost.refresh_from_db()
    assert lost.status == Status.AGENT_FAILED
    assert lost.failure_reason == WORKER_LOST_TWICE
    assert not order.exists()  # never run again
    assert AgentExecution.objects.filter(incident=lost).count() == 2
    assert "lost requeued 0, lost twice 1" in summary


def test_a_run_that_outlived_its_claim_does_not_complete_the_incident(store, workspace_root):
    incident = make_incident(status=Status.INVESTIGATING, started_at=timezone.now())
    stale_claim = Incident.objects.get(pk=incident.pk)
    stale_claim.started_at -= timedelta(hours=1)  # another worker re-claimed it since
    config = WorkerConfig(agent_command=agent(), workspace_root=workspace_root)
    outcome = triage_incident(store, stale_claim, config)
    assert outcome.status == CLAIM_LOST
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING
    assert not TriageReport.objects.exists()
    execution = AgentExecution.objects.get()
    assert execution.error_message.startswith(f"{WORKER_LOST}: recovered by another worker")


# -- the shipped stub agent through the pipeline ---------------------------------------------------
@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("resolved", Status.RESOLVED),
        ("partial", Status.FAILED),
        ("crash", Status.FAILED),
        ("missing", Status.AGENT_FAILED),
        ("small", Status.AGENT_FAILED),
    ],
)
def test_stub_agent_runs_when_named(run_triage, monkeypatch, outcome, status):
    monkeypatch.setenv("TRIAGE_STUB_OUTCOME", outcome)
    incident = make_incident()
    run_triage("--once", command="stub")
    incident.refresh_from_db()
    assert incident.status == status
    if outcome in ("resolved", "partial"):
        report = TriageReport.objects.get(incident=incident)
        assert report.report_markdown.startswith(SYNTHETIC_NOTE)
        assert f"`{incident.resource_label}` on `{incident.cluster}`" in report.report_markdown


# -- concurrency ----------------------------------------------------------------------------------
# SQLite's in-memory test database is shared-cache, whose table locks ignore the busy timeout;
# a file database (the demo's) handles concurrent slots, PostgreSQL is what this test pins down.
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_slots_run_each_incident_once(run_triage, shared):
    incidents = [make_incident() for _ in range(8)]
    order = shared / "order.txt"
    summary = run_triage(
        "--until-empty",
        "--concurrency",
        "4",
        command=agent("--record", str(order), "--sleep", "0.2"),
    )
    assert sorted(order.read_text().split()) == sorted(str(i.incident_id) for i in incidents)
    assert AgentExecution.objects.count() == 8
    assert set(Incident.objects.values_list("status", flat=True)) == {Status.RESOLVED}
    assert summary.startswith("triaged 8: resolved 8")


# -- nightcrier's run-agent.sh, unchanged, through the placeholders -----------------------------
NIGHTCRIER = (
    "bash {script} --workspace {{workspace}} --model sonnet "
    "--allowed-tools Read,Grep,Glob,Bash --timeout {{timeout}} --agent claude {{prompt}}"
)


@pytest.fixture
def nightcrier(shared, monkeypatch, settings):
    """nightcrier's environment, a fake `docker` on PATH and a kubeconfig for the cluster."""
    bin_dir = shared / "bin"
    bin_dir.mkdir(mode=0o755)
    docker = bin_dir / "docker"
    docker.write_bytes((Path(__file__).parent / "agents" / "fake_docker").read_bytes())
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name, value in {
        "AGENT_CLI": "claude",
        "AGENT_IMAGE": "nightcrier-agent:latest",
        "LLM_MODEL": "sonnet",
        "AGENT_ALLOWED_TOOLS": "Read,Grep,Glob,Bash",
        "ANTHROPIC_API_KEY": "sk-ant-test",
    }.items():
        monkeypatch.setenv(name, value)
    kube = shared / "kube"
    kube.mkdir(mode=0o755)
    (kube / "prod-eu-1").write_text("apiVersion: v1\nkind: Config\n")
    settings.TRIAGE_KUBECONFIG_DIR = str(kube)
    settings.TRIAGE_AGENT_PASS_ENV = ["FAKE_DOCKER_MODE"]
    prompt = shared / "prompt.md"
    prompt.write_text('Investigate incident.json; it\'s "quoted", $HOME stays literal.\n')
    script = agent_script("nightcrier_run_agent.sh")
    return {"command": NIGHTCRIER.format(script=script), "prompt": prompt, "kube": kube}


def test_nightcriers_run_agent_runs_unchanged_and_resolves(run_triage, workspace_root, nightcrier):
    incident = make_incident(event=make_fault_event(save=True, cluster="prod-eu-1"))
    run_triage(
        "--once", "--timeout", "60", "--prompt-file", str(nightcrier["prompt"]),
        command=nightcrier["command"],
    )  # fmt: skip
    incident.refresh_from_db()
    folder = workspace_of(workspace_root, incident)
    assert incident.status == Status.RESOLVED, incident.failure_reason
    report = TriageReport.objects.get(incident=incident)
    assert report.report_markdown == (folder / "output" / "investigation.md").read_text()
    assert f"nightcrier-agent-{incident.incident_id}" in report.report_markdown  # INCIDENT_ID
    prompt = nightcrier["prompt"].read_text()
    sent = (folder / "prompt-sent.md").read_text()
    assert sent.startswith(prompt)  # written before the run, then appended to by the script
    assert "## Preloaded context" in sent
    docker = (folder / "output" / "docker-args.txt").read_text().splitlines()
    assert docker[:3] == ["--rm", "--stop-timeout", "54"]  # CONTAINER_TIMEOUT below our 60 s
    assert f"{folder}/incident.json:/home/agent/incident.json:ro" in docker
    assert f"{nightcrier['kube']}/prod-eu-1:/home/agent/.kube/config:ro" in docker
    assert docker[-1].startswith("claude -p ") and "$HOME stays literal." in docker[-1]


@pytest.mark.parametrize(
    ("mode", "code", "reason"),
    [
        ("hang", 124, "agent timed out (exit 124: its timeout wrapper fired)"),
        ("oom", 137, "agent killed (exit 137: SIGKILL, from a timeout wrapper or the OOM killer)"),
    ],
)
def test_wrapper_timeout_and_sigkill_exits_are_timeouts(
    run_triage, workspace_root, nightcrier, monkeypatch, mode, code, reason
):
    monkeypatch.setenv("FAKE_DOCKER_MODE", mode)
    incident = make_incident()
    run_triage(
        "--once", "--timeout", "4", "--prompt-file", str(nightcrier["prompt"]),
        command=nightcrier["command"],
    )  # fmt: skip
    incident.refresh_from_db()
    assert (incident.status, incident.exit_code) == (Status.AGENT_FAILED, code)
    assert incident.failure_reason.startswith(reason)
    assert not TriageReport.objects.exists()


# -- F5: nothing an agent started outlives its run, nothing accumulates in the worker ------------
def test_setsid_daemons_die_with_their_runs_and_nothing_leaks(run_triage, workspace_root):
    hostile = shlex.join([agent_python(), str(agent_script("hostile_agent.py")), "setsid"])
    make_incident()
    run_triage("--until-empty", command=hostile)  # warm-up: imports, the database connection
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    incidents = [make_incident() for _ in range(5)]
    summary = run_triage("--until-empty", command=hostile)
    assert summary.startswith("triaged 5: resolved 5")
    for incident in incidents:
        folder = workspace_of(workspace_root, incident)
        daemon = json.loads((folder / "attack.json").read_text())["loot"]["daemon"]
        assert not _alive(daemon, wait=0)
    assert (threading.active_count(), len(os.listdir("/proc/self/fd"))) == (threads, fds)

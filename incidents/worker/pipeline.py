"""One incident through the pipeline: workspace, agent, execution, report, completion.

`triage_incident` takes an incident this worker has claimed (integration point 2, done by
`DjangoStateStore.claim_next_incident`) and drives points 3-5 through the store:

- the execution is recorded twice (an upsert by execution_id): when the agent starts, with no
  `completed_at`, so a worker that dies mid-run leaves a visible open attempt for recovery to
  close; and when it ends, with the exit code, the error message and the log paths (point 3);
- a valid report is stored with its sanitized HTML, linked to the execution (point 4);
- the incident is completed with the exit code and the failure reason (point 5).

How a run ends (the verdict):

| what happened                                 | status       | failure reason               |
|-----------------------------------------------|--------------|------------------------------|
| exit 0, output/investigation.md >= 100 bytes  | resolved     |                              |
| exit 0, no report                             | agent_failed | investigation report missing |
| exit 0, report under 100 bytes                | agent_failed | investigation report too small |
| exit 0, report not a regular file / too large | agent_failed | investigation report ...     |
| exit 124 (its wrapper's `timeout` fired)      | agent_failed | agent timed out (exit 124 ...) |
| exit 137 (128 + SIGKILL: `timeout -k`, OOM)   | agent_failed | agent killed (exit 137 ...)  |
| exit N != 0, any other                        | failed       | agent exited with code N: ... |
| killed by a signal we did not send            | agent_failed | agent killed by signal SIGxxx |
| still running after the timeout               | agent_failed | timed out after N s          |
| command not found / not executable            | agent_failed | agent could not start: ...   |
| workspace cannot be made                      | agent_failed | workspace ... not writable: ... |

A non-zero exit keeps a valid report if the agent wrote one: a partial investigation is still
what an on-call engineer wants to read, and the status says it is not a verdict. A timed-out or
killed agent's report is not kept (it may be half-written). nightcrier differs: any non-zero
exit is `agent_failed` there; here `failed` means the agent ran and said it failed, while
`agent_failed` means the agent itself broke (could not start, timed out, was killed, wrote no
usable report).

The report is read without trusting the folder it is in (the agent owned it): the workspace,
`output/` and the report are each opened without following symlinks, and the report must be a
regular file with one link (a hard link to a file of the worker's would have two).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidents import metrics
from incidents.choices import Status
from incidents.models import AgentExecution, Incident, TriageReport
from incidents.rendering import render_markdown
from incidents.store import WORKER_LOST, DjangoStateStore
from incidents.worker.agent import AgentResult, agent_environment, run_agent
from incidents.worker.config import UnknownProfile, WorkerConfig
from incidents.worker.isolation import is_private_file
from incidents.worker.result import read_result
from incidents.worker.workspace import (
    Workspace,
    WorkspaceError,
    WorkspaceRootError,
    completed_document,
    incident_document,
    open_folder,
    prepare_workspace,
    rewrite_incident,
)

logger = logging.getLogger("incidents.worker")

MIN_REPORT_BYTES = 100
MAX_REPORT_BYTES = 2 * 1024 * 1024
# Exit codes that mean the agent's own wrapper ran out of time (`timeout`: 124) or killed it
# (128 + SIGKILL, as `timeout -k`, docker and the OOM killer report it).
WRAPPER_TIMEOUT_EXITS = {
    124: "agent timed out (exit 124: its timeout wrapper fired)",
    137: "agent killed (exit 137: SIGKILL, from a timeout wrapper or the OOM killer)",
}
ERROR_TAIL_CHARS = 2000


@dataclass(frozen=True)
class Verdict:
    status: str
    exit_code: int | None
    failure_reason: str = ""
    report_markdown: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the pipeline did with one incident."""

    incident_id: uuid.UUID
    status: str  # the incident's final status, or "claim_lost"
    duration_s: float
    failure_reason: str = ""
    execution_id: uuid.UUID | None = None
    report_id: uuid.UUID | None = None


CLAIM_LOST = "claim_lost"


def clean_text(text: str) -> str:
    """Text an agent produced, safe for a TEXT column (PostgreSQL refuses NUL characters)."""
    return text.replace("\x00", "\ufffd")


def _open_report(workspace: Workspace) -> int:
    """The report's descriptor, reached without following any symlink the agent left."""
    folder = open_folder(workspace.path)
    try:
        output = open_folder(workspace.output_dir.name, parent_fd=folder)
    finally:
        os.close(folder)
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
        return os.open(workspace.report_file.name, flags, dir_fd=output)
    finally:
        os.close(output)


def read_report(workspace: Workspace) -> tuple[str | None, str]:
    """The report's markdown, or None and why it is not acceptable (see the module docstring:
    an agent must not publish, say, the worker's secret key by linking to it)."""
    try:
        fd = _open_report(workspace)
    except FileNotFoundError:
        return None, "investigation report missing"
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):  # O_NOFOLLOW met a symlink
            return None, "investigation report is not a regular file"
        return None, f"investigation report unreadable: {error.strerror or error}"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not is_private_file(info):
            return None, "investigation report is not a regular file"
        if info.st_size < MIN_REPORT_BYTES:
            return None, (
                f"investigation report too small: {info.st_size} bytes "
                f"(at least {MIN_REPORT_BYTES} expected)"
            )
        if info.st_size > MAX_REPORT_BYTES:
            return None, (
                f"investigation report too large: {info.st_size} bytes "
                f"(at most {MAX_REPORT_BYTES} accepted)"
            )
        data = handle.read(MAX_REPORT_BYTES + 1)
    return clean_text(data.decode("utf-8", errors="replace")), ""


def _with_stderr(reason: str, result: AgentResult) -> str:
    tail = clean_text(result.stderr_tail).strip()
    if not tail:
        return reason
    return f"{reason}: {tail[-ERROR_TAIL_CHARS:]}"


def judge(result: AgentResult, workspace: Workspace, *, timeout: float) -> Verdict:
    """The incident's status, exit code, failure reason and report after one run (see above)."""
    if result.start_error:
        return Verdict(Status.AGENT_FAILED, None, f"agent could not start: {result.start_error}")
    if result.timed_out:
        return Verdict(Status.AGENT_FAILED, None, f"timed out after {timeout:g} s")
    code = result.returncode
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return Verdict(
            Status.AGENT_FAILED, None, _with_stderr(f"agent killed by signal {name}", result)
        )
    if code in WRAPPER_TIMEOUT_EXITS:
        return Verdict(Status.AGENT_FAILED, code, _with_stderr(WRAPPER_TIMEOUT_EXITS[code], result))
    report, problem = read_report(workspace)
    if code != 0:
        return Verdict(
            Status.FAILED, code, _with_stderr(f"agent exited with code {code}", result), report
        )
    if report is None:
        return Verdict(Status.AGENT_FAILED, 0, _with_stderr(problem, result))
    return Verdict(Status.RESOLVED, 0, "", report)


def kubeconfig_for(directory: Path | None, cluster: str) -> Path | None:
    """`<directory>/<cluster>` when that file exists (a cluster name is never a path)."""
    if directory is None or not cluster or cluster in (".", "..") or "/" in cluster:
        return None
    path = Path(directory) / cluster
    return path if path.is_file() else None


def agent_env(
    workspace: Workspace,
    incident: Incident,
    execution_id: object,
    config: WorkerConfig,
    inherited_python_path: str = "",
) -> dict[str, str]:
    """The variables the agent gets on top of the allow-listed part of the worker's: ours
    (TRIAGE_*) and nightcrier's names for the same things (INCIDENT_ID, CONTAINER_TIMEOUT,
    KUBECONFIG)."""
    python_path = [str(settings.BASE_DIR), inherited_python_path]
    env = {
        "TRIAGE_INCIDENT_ID": str(incident.incident_id),
        "TRIAGE_EXECUTION_ID": str(execution_id),
        "TRIAGE_WORKSPACE": str(workspace.path),
        "TRIAGE_INCIDENT_FILE": str(workspace.incident_file),
        "TRIAGE_EVENT_FILE": str(workspace.event_file),
        "TRIAGE_OUTPUT_DIR": str(workspace.output_dir),
        "TRIAGE_REPORT_FILE": str(workspace.report_file),
        "TRIAGE_PROMPT_FILE": str(workspace.prompt_file),
        "TRIAGE_TIMEOUT_SECONDS": f"{config.timeout:g}",
        "INCIDENT_ID": str(incident.incident_id),
        "CONTAINER_TIMEOUT": str(config.container_timeout),
        # The agent's home is its workspace: the worker's own is none of its business.
        "HOME": str(workspace.path),
        # So the shipped stub runs as `python -m incidents.stub_agent` from the workspace.
        "PYTHONPATH": os.pathsep.join(part for part in python_path if part),
    }
    kubeconfig = kubeconfig_for(config.kubeconfig_dir, incident.cluster)
    if kubeconfig is not None:
        # run-agent.sh reads KUBECONFIG_PATH; kubectl and the agent CLIs read KUBECONFIG.
        env["KUBECONFIG"] = env["KUBECONFIG_PATH"] = str(kubeconfig)
    return env


def _log(message: str, incident: Incident, status: str, started: float, **fields: object) -> None:
    duration = round(time.monotonic() - started, 3)
    details = " ".join(
        f"{name}={value}" for name, value in fields.items() if value not in ("", None)
    )
    logger.info(
        "%s incident=%s status=%s duration=%.3fs%s",
        message,
        incident.incident_id,
        status,
        duration,
        f" {details}" if details else "",
        extra={
            "step": message,
            "incident_id": str(incident.incident_id),
            "status": status,
            "duration_s": duration,
            **fields,
        },
    )


def triage_incident(
    store: DjangoStateStore,
    incident: Incident,
    config: WorkerConfig,
    *,
    base_env: Mapping[str, str] | None = None,
) -> Outcome:
    """Run the agent for a claimed (investigating) incident and record everything. See above.

    Raises only what the store raises (database errors) and WorkspaceRootError (the root is
    unusable: the incident goes back to the queue, the worker stops claiming); every other agent
    or workspace failure ends as a recorded verdict.
    """
    if incident.started_at is None:  # a programming error: the claim sets it
        raise ValueError(f"incident {incident.incident_id} is not claimed (no started_at)")
    started = time.monotonic()
    execution = AgentExecution(
        incident_id=incident.incident_id,
        started_at=incident.started_at,
        agent_profile=incident.agent_profile,
    )
    _log("claimed", incident, incident.status, started, fault_type=incident.fault_type)
    try:
        config.command_for(incident.agent_profile)
    except UnknownProfile as error:
        # A re-run asked for a profile this worker lacks (its settings differ from the web's):
        # said on the incident, which a responder can re-run with a profile that exists.
        execution.completed_at = max(execution.started_at, timezone.now())
        execution.error_message = str(error)
        store.record_agent_execution(execution)
        return _finish(
            store, incident, execution, Verdict(Status.AGENT_FAILED, None, str(error)), started
        )
    try:
        workspace = prepare_workspace(
            config.workspace_root,
            incident,
            execution_id=execution.execution_id,
            identity=config.identity,
            prompt=config.prompt,
        )
    except WorkspaceRootError:
        raise
    except WorkspaceError as error:
        execution.completed_at = max(execution.started_at, timezone.now())
        execution.error_message = str(error)
        store.record_agent_execution(execution)
        verdict = Verdict(Status.AGENT_FAILED, None, str(error))
        return _finish(store, incident, execution, verdict, started)
    execution.log_path_list = [str(workspace.stdout_log), str(workspace.stderr_log)]
    store.record_agent_execution(execution)
    _log("agent started", incident, incident.status, started, workspace=str(workspace.path))

    base_env = os.environ if base_env is None else base_env
    extra = agent_env(
        workspace, incident, execution.execution_id, config, base_env.get("PYTHONPATH", "")
    )
    result = run_agent(
        config.argv(
            incident.agent_profile,
            workspace=str(workspace.path),
            incident_id=str(incident.incident_id),
            execution_id=str(execution.execution_id),
            timeout=str(config.container_timeout),
            prompt=config.prompt or "",
        ),
        cwd=workspace.path,
        env=agent_environment(base_env, extra, pass_env=config.pass_env),
        stdout_log=workspace.stdout_log,
        stderr_log=workspace.stderr_log,
        timeout=config.timeout,
        kill_grace=config.kill_grace,
        log_limit=config.log_limit_bytes,
        identity=config.identity,
    )
    verdict = judge(result, workspace, timeout=config.timeout)
    metrics.observe_agent_run(verdict.status, result.duration_s)
    execution.started_at = result.started_at
    execution.completed_at = result.completed_at
    execution.exit_code = verdict.exit_code
    execution.error_message = "" if verdict.status == Status.RESOLVED else verdict.failure_reason
    if not result.start_error:
        # What the run cost counts even when it failed or timed out; never changes the verdict.
        read_result(workspace).apply(execution)
    _log(
        "agent finished",
        incident,
        verdict.status,
        started,
        exit_code=result.returncode,
        agent_duration_s=round(result.duration_s, 3),
        dropped_log_bytes=result.dropped_bytes or None,
        agent_profile=incident.agent_profile or None,
        cost_usd=str(execution.cost_usd) if execution.cost_usd is not None else None,
        result_error=execution.result_error or None,
    )
    _record_in_workspace(workspace, incident, execution, verdict)
    return _finish(store, incident, execution, verdict, started)


def _record_in_workspace(
    workspace: Workspace, incident: Incident, execution: AgentExecution, verdict: Verdict
) -> None:
    """incident.json after the run (nightcrier's completedAt, exitCode, failureReason,
    logPaths); a failure to write it is logged, never a reason to lose the outcome."""
    document = completed_document(
        incident_document(incident, execution_id=execution.execution_id),
        status=verdict.status,
        # The store has just closed the execution; `now` only for a row that lost its time.
        completed_at=execution.completed_at or timezone.now(),
        exit_code=verdict.exit_code,
        failure_reason=verdict.failure_reason,
        log_paths={"stdout": str(workspace.stdout_log), "stderr": str(workspace.stderr_log)},
    )
    problem = rewrite_incident(workspace, document)
    if problem:
        logger.warning(
            "%s (incident=%s)",
            problem,
            incident.incident_id,
            extra={"step": "incident.json", "incident_id": str(incident.incident_id)},
        )


def _finish(
    store: DjangoStateStore,
    incident: Incident,
    execution: AgentExecution,
    verdict: Verdict,
    started: float,
) -> Outcome:
    """Record points 3-5 in one transaction: a crash leaves all of them or none."""
    report_id = None
    # The rendering is the slow part; do it before taking any lock.
    html = render_markdown(verdict.report_markdown) if verdict.report_markdown is not None else ""
    with transaction.atomic(using=store.using):
        # Locks the row: recovery (or an admin's requeue) cannot take it back mid-write.
        if not store.holds_claim(incident.incident_id, incident.started_at):
            # Another worker's recovery took the incident back; it owns the outcome now. The
            # message keeps the WORKER_LOST mark recovery gave this execution, so losses count.
            execution.error_message = (
                f"{WORKER_LOST}: recovered by another worker before this run ended "
                f"({verdict.failure_reason or 'resolved'})"
            )
            store.record_agent_execution(execution)
            claim_lost = True
        else:
            claim_lost = False
            store.record_agent_execution(execution)
            if verdict.report_markdown is not None:
                report = store.record_triage_report(
                    TriageReport(
                        incident_id=incident.incident_id,
                        execution_id=execution.execution_id,
                        report_markdown=verdict.report_markdown,
                        report_html=html,
                    )
                )
                report_id = report.report_id
            store.complete_incident(
                incident.incident_id,
                verdict.exit_code,
                failure_reason=verdict.failure_reason,
                status=verdict.status,
            )
    if claim_lost:
        _log("claim lost", incident, CLAIM_LOST, started)
        return Outcome(incident.incident_id, CLAIM_LOST, time.monotonic() - started)
    if report_id is not None:
        _log("report recorded", incident, verdict.status, started, report_id=str(report_id))
    _log(
        "completed",
        incident,
        verdict.status,
        started,
        exit_code=verdict.exit_code,
        failure_reason=verdict.failure_reason[:200],
    )
    return Outcome(
        incident.incident_id,
        verdict.status,
        time.monotonic() - started,
        verdict.failure_reason,
        execution.execution_id,
        report_id,
    )

"""The per-incident workspace an agent runs in: `<root>/<incident_id>/`.

Layout:

    <root>/                     the worker's, mode 0711: agents reach their own folder only
      <incident_id>/            the agent user's, mode 0700 (reports quote logs and cluster data)
        incident.json           the incident, nightcrier's fields and names, plus ours
        event.json              the fault as upstream sent it (byte for byte when kept)
        prompt-sent.md          the prompt (TRIAGE_AGENT_PROMPT_FILE), before the run
        output/                 empty; the agent writes output/investigation.md here
        logs/                   the worker's (0700): agent.stdout.log, agent.stderr.log

`incident.json` is rewritten after the run with `completedAt`, `exitCode`, `failureReason`
and `logPaths`, as nightcrier does. A re-run of the same incident (after a requeue) starts
from a fresh folder: a report left by an earlier attempt must never be taken for this
attempt's. Everything the worker reads or writes in a folder the agent owned goes through
file descriptors opened without following symlinks (see `open_in_workspace`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from incidents.context import UPSTREAM_KEY, NotJSON, load_context, upstream_view
from incidents.models import Incident
from incidents.worker.isolation import AgentIdentity

logger = logging.getLogger("incidents.worker")

ROOT_MODE = 0o711
PROMPT_NAME = "prompt-sent.md"
REPORT_NAME = "investigation.md"


class WorkspaceError(Exception):
    """The workspace could not be made; the message says where and why."""


@dataclass(frozen=True)
class Workspace:
    path: Path

    @property
    def incident_file(self) -> Path:
        return self.path / "incident.json"

    @property
    def event_file(self) -> Path:
        return self.path / "event.json"

    @property
    def output_dir(self) -> Path:
        return self.path / "output"

    @property
    def report_file(self) -> Path:
        return self.output_dir / REPORT_NAME

    @property
    def log_dir(self) -> Path:
        return self.path / "logs"

    @property
    def stdout_log(self) -> Path:
        return self.log_dir / "agent.stdout.log"

    @property
    def stderr_log(self) -> Path:
        return self.log_dir / "agent.stderr.log"

    @property
    def prompt_file(self) -> Path:
        return self.path / PROMPT_NAME


class WorkspaceRootError(WorkspaceError):
    """The workspace root is unusable and the worker cannot repair it: claim nothing more."""


def _rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def parsed_context(text: str) -> Any:
    """The stored context as JSON, without the copy of what upstream sent (event.json and
    incident.json's own fields carry that); text that is not JSON is passed on as a string."""
    try:
        context = load_context(text)
    except NotJSON:
        return text
    if isinstance(context, dict):
        context.pop(UPSTREAM_KEY, None)
    return context


def _resource(incident: Incident) -> dict[str, str]:
    return {
        "apiVersion": incident.resource_api_version,
        "kind": incident.resource_kind,
        "name": incident.resource_name,
        "namespace": incident.resource_namespace,
        "uid": incident.resource_uid,
    }


def event_document(incident: Incident) -> dict[str, Any] | str | bytes:
    """This occurrence of the fault as upstream sent it: the record's text when the store kept
    it, else upstream's payload shape rebuilt from the incident's copy of the fault's fields
    (that copy is this occurrence's; the fault event row holds the latest correction)."""
    view = upstream_view(incident)
    if view.get("raw") is not None:
        return view["raw"]
    document: dict[str, Any] = {
        "subscriptionId": incident.subscription_id,
        "cluster": view["cluster"],
        "faultId": incident.fault_id,
        "faultType": incident.fault_type,
        "severity": view["severity"],
        "resource": _resource(incident),
    }
    if view["context"]:  # upstream omits an empty context
        document["context"] = view["context"]
    document["timestamp"] = view["timestamp"]
    return document


def incident_document(incident: Incident, *, execution_id: object) -> dict[str, Any]:
    """The incident for the agent: nightcrier's fields with its names and types
    (`internal/incident/incident.go`), then ours under names nightcrier does not use."""
    view = upstream_view(incident)
    return {
        "incidentId": str(incident.incident_id),
        "faultId": incident.fault_id,
        "status": incident.status,
        "createdAt": _rfc3339(incident.created_at),
        "startedAt": _rfc3339(incident.started_at),
        "cluster": view["cluster"],
        "namespace": incident.resource_namespace,
        "resource": _resource(incident),
        "faultType": incident.fault_type,
        "severity": view["severity"],
        "context": view["context"] or "",
        "timestamp": view["timestamp"],
        "triggeringEventId": incident.fault_id,
        # Ours.
        "executionId": str(execution_id),
        "subscriptionId": incident.subscription_id,
        "triageSeverity": incident.severity,
        "triageContext": parsed_context(incident.context),
    }


def completed_document(
    document: dict[str, Any],
    *,
    status: str,
    completed_at: datetime,
    exit_code: int | None,
    failure_reason: str,
    log_paths: dict[str, str],
) -> dict[str, Any]:
    """`document` after the run, as nightcrier rewrites it (empty fields omitted, as its Go
    struct's omitempty does)."""
    done = {**document, "status": status, "completedAt": _rfc3339(completed_at)}
    if exit_code is not None:
        done["exitCode"] = exit_code
    if failure_reason:
        done["failureReason"] = failure_reason
    done["logPaths"] = log_paths
    return done


def _dump(document: dict[str, Any] | str | bytes) -> bytes:
    # A lone surrogate (kept from upstream's "\ud800" escapes in the context) cannot be UTF-8:
    # backslashreplace writes it back as that same JSON escape, inside its JSON string.
    if isinstance(document, bytes):
        return document
    if isinstance(document, str):
        return document.encode("utf-8", errors="backslashreplace")
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return text.encode("utf-8", errors="backslashreplace")


def _write_new(folder_fd: int, name: str, data: bytes, owner: AgentIdentity | None) -> None:
    """Create `name` in the folder (never through a link, never over an existing file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(name, flags, 0o600, dir_fd=folder_fd)
    with os.fdopen(fd, "wb") as handle:
        if owner is not None:
            os.fchown(handle.fileno(), owner.uid, owner.gid)
        handle.write(data)


def open_folder(path: str | Path, *, parent_fd: int | None = None) -> int:
    """A descriptor for the folder `path` (a name within `parent_fd`), refusing symlinks."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    return os.open(path, flags, dir_fd=parent_fd)


def remove_tree(path: Path) -> None:
    """Remove `path` whatever its agent did to it: symlinks are not followed (rmtree's fd-based
    walk), and folders it made unreadable (`chmod 000`) are opened up first."""

    def open_up(function: object, name: str, error: object) -> None:
        parent = os.path.dirname(name)
        for folder in (parent, name):
            if os.path.isdir(folder) and not os.path.islink(folder):
                os.chmod(folder, 0o700)
        if os.path.isdir(name) and not os.path.islink(name):
            shutil.rmtree(name)
        else:
            os.unlink(name)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=open_up)


def ensure_root(root: Path) -> None:
    """Make the workspace root, or put back the mode an agent took from it (`chmod 000`).

    Raises WorkspaceRootError, naming the path and the reason, when the root is not a folder
    the worker owns: the worker then stops claiming rather than fail every incident.
    """
    try:
        root.mkdir(mode=ROOT_MODE, parents=True, exist_ok=True)
        info = os.stat(root, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            raise WorkspaceRootError(f"workspace root {root} is not a folder")
        if info.st_uid != os.geteuid():
            raise WorkspaceRootError(
                f"workspace root {root} belongs to uid {info.st_uid}, not to the worker "
                f"(uid {os.geteuid()}): an agent or another user replaced it"
            )
        if stat.S_IMODE(info.st_mode) != ROOT_MODE:
            os.chmod(root, ROOT_MODE)
            logger.warning(
                "workspace root %s had mode %o; repaired to %o",
                root,
                stat.S_IMODE(info.st_mode),
                ROOT_MODE,
                extra={"step": "workspace root repaired", "path": str(root)},
            )
    except OSError as error:
        reason = error.strerror or str(error)
        where = f": {error.filename}" if error.filename else ""
        raise WorkspaceRootError(f"workspace root {root} unusable: {reason}{where}") from error


def prepare_workspace(
    root: Path,
    incident: Incident,
    *,
    execution_id: object,
    identity: AgentIdentity,
    prompt: str | None = None,
) -> Workspace:
    """Make a fresh `<root>/<incident_id>/` for `identity`, with the incident, the event, the
    prompt and empty folders (see the module docstring).

    Any earlier folder for the incident is removed first. Raises WorkspaceError naming the
    path and the operating system's reason; nothing is half-made that a retry would trip on.
    """
    root = Path(root)
    ensure_root(root)
    workspace = Workspace(root / str(incident.incident_id))
    owner = None if identity.is_worker else identity
    try:
        remove_tree(workspace.path)
        workspace.path.mkdir(mode=0o700)
        folder = open_folder(workspace.path)
        try:
            os.fchmod(folder, 0o700)  # mkdir's mode is filtered by the umask
            os.mkdir("logs", 0o700, dir_fd=folder)
            os.mkdir("output", 0o700, dir_fd=folder)
            document = incident_document(incident, execution_id=execution_id)
            _write_new(folder, "incident.json", _dump(document), owner)
            _write_new(folder, "event.json", _dump(event_document(incident)), owner)
            _write_new(folder, PROMPT_NAME, (prompt or "").encode(), owner)
            if owner is not None:
                os.chown("output", owner.uid, owner.gid, dir_fd=folder, follow_symlinks=False)
                os.fchown(folder, owner.uid, owner.gid)
        finally:
            os.close(folder)
    except OSError as error:
        reason = error.strerror or str(error)
        where = f": {error.filename}" if error.filename else ""
        raise WorkspaceError(f"workspace {workspace.path} not writable: {reason}{where}") from error
    return workspace


def rewrite_incident(workspace: Workspace, document: dict[str, Any]) -> str:
    """Replace incident.json after the run; returns "" or why it could not be (the agent owned
    the folder and may have left anything there: never followed, never fatal)."""
    try:
        folder = open_folder(workspace.path)
    except OSError as error:
        return f"incident.json not rewritten: {error.strerror or error}"
    try:
        try:
            os.unlink("incident.json", dir_fd=folder)
        except FileNotFoundError:
            pass
        _write_new(folder, "incident.json", _dump(document), None)
    except OSError as error:
        if error.errno == errno.EISDIR:
            return "incident.json not rewritten: the agent left a folder in its place"
        return f"incident.json not rewritten: {error.strerror or error}"
    finally:
        os.close(folder)
    return ""

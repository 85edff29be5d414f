"""The per-incident workspace an agent runs in: `<root>/<incident_id>/`.

Layout (directories mode 0700, since reports quote logs and cluster objects):

    incident.json               the incident, camelCase (incidentId, faultId, status, ...)
    event.json                  the fault event as kubernetes-mcp-server sent it (faultId, ...)
    output/                     empty; the agent writes output/investigation.md here
    logs/agent.stdout.log       the agent's stdout (written by the worker, capped)
    logs/agent.stderr.log       the agent's stderr (written by the worker, capped)

A re-run of the same incident (after a requeue) starts from a fresh folder: a report left by an
earlier attempt must never be taken for this attempt's.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from incidents.context import NotJSON, load_context
from incidents.models import Incident

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


def _rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def parsed_context(text: str) -> Any:
    """The stored context as JSON; text that is not JSON is passed on as a string."""
    try:
        return load_context(text)
    except NotJSON:
        return text


def _resource(incident: Incident) -> dict[str, str]:
    return {
        "apiVersion": incident.resource_api_version,
        "kind": incident.resource_kind,
        "name": incident.resource_name,
        "namespace": incident.resource_namespace,
        "uid": incident.resource_uid,
    }


def event_document(incident: Incident) -> dict[str, Any]:
    """This occurrence of the fault, in upstream's camelCase payload shape.

    Built from the incident's copy of the fault's fields: that copy is this occurrence's (the
    fault event row holds the latest correction of the fault as a whole).
    """
    return {
        "faultId": incident.fault_id,
        "subscriptionId": incident.subscription_id,
        "cluster": incident.cluster,
        "faultType": incident.fault_type,
        "severity": incident.severity,
        "resource": _resource(incident),
        "context": parsed_context(incident.context),
        "timestamp": _rfc3339(incident.timestamp),
    }


def incident_document(incident: Incident, *, execution_id: object) -> dict[str, Any]:
    """The incident being triaged, camelCase, with the id of this agent execution."""
    return {
        "incidentId": str(incident.incident_id),
        "executionId": str(execution_id),
        "faultId": incident.fault_id,
        "status": incident.status,
        "createdAt": _rfc3339(incident.created_at),
        "startedAt": _rfc3339(incident.started_at),
        "cluster": incident.cluster,
        "subscriptionId": incident.subscription_id,
        "resource": _resource(incident),
        "faultType": incident.fault_type,
        "severity": incident.severity,
        "context": parsed_context(incident.context),
        "timestamp": _rfc3339(incident.timestamp),
    }


def _write_json(path: Path, document: dict[str, Any]) -> None:
    # O_EXCL: the folder is brand new, so an existing file means something raced us.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    # A lone surrogate (kept from upstream's "\ud800" escapes in the context) cannot be UTF-8:
    # backslashreplace writes it back as that same JSON escape, inside its JSON string.
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
        json.dump(document, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def prepare_workspace(root: Path, incident: Incident, *, execution_id: object) -> Workspace:
    """Make a fresh `<root>/<incident_id>/` with the incident, the event and empty folders.

    The root is created if missing (mode 0700). Any earlier folder for the incident is removed
    first (rmtree does not follow symlinks an agent may have left). Raises WorkspaceError naming
    the path and the operating system's reason; nothing is half-made that a retry would trip on.
    """
    root = Path(root)
    workspace = Workspace(root / str(incident.incident_id))
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied", str(root))
        if workspace.path.is_symlink() or workspace.path.is_file():
            workspace.path.unlink()
        elif workspace.path.exists():
            shutil.rmtree(workspace.path)
        workspace.path.mkdir(mode=0o700)
        workspace.path.chmod(0o700)  # mkdir's mode is filtered by the umask
        for folder in (workspace.output_dir, workspace.log_dir):
            folder.mkdir(mode=0o700)
        _write_json(workspace.incident_file, incident_document(incident, execution_id=execution_id))
        _write_json(workspace.event_file, event_document(incident))
    except OSError as error:
        reason = error.strerror or str(error)
        where = f": {error.filename}" if error.filename else ""
        raise WorkspaceError(f"workspace {workspace.path} not writable: {reason}{where}") from error
    return workspace

"""Why a triage run failed, in words, and what the agent printed: for the incident page.

The worker (`incidents.worker.pipeline`) records a failure reason that starts with a fixed
phrase (its verdict table) and may end with the tail of the agent's stderr. `explain` maps the
phrase to a sentence an on-call engineer can act on; `log_tail` reads the end of a log the
worker wrote, and `undersized_report` the few bytes of a report too small to keep.

Logs are read only from inside TRIAGE_WORKSPACE_ROOT (a stored path elsewhere, or a symlink, is
refused) and never by a path taken from the request: the page names the stream (stdout or
stderr) of an execution, and the execution row names the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from incidents.choices import Status
from incidents.context import printable
from incidents.models import AgentExecution, Incident

TAIL_LINES = 200
# The last 200 lines of an agent's log, read from its end: at most this many bytes.
TAIL_BYTES = 256 * 1024
# The worker keeps no report under 100 bytes (MIN_REPORT_BYTES); read a little more in case.
UNDERSIZED_BYTES = 4096
STREAMS = ("stdout", "stderr")

_EXIT = re.compile(r"^agent exited with code (-?\d+)")
_SIGNAL = re.compile(r"^agent killed by signal (\w+)")
_TIMED_OUT = re.compile(r"^timed out after ([\d.]+) s")
_SMALL = re.compile(r"^investigation report too small: (\d+) bytes")
_LARGE = re.compile(r"^investigation report too large: (\d+) bytes")

# Exit codes of the agent's wrapper (see WRAPPER_TIMEOUT_EXITS in the pipeline).
_EXIT_SENTENCES = {
    124: "The agent ran out of time: its own timeout wrapper stopped it (exit code 124) before "
    "it wrote a report.",
    137: "The agent was killed with SIGKILL (exit code 137): its timeout wrapper's hard stop or "
    "the out-of-memory killer ended it before it wrote a report.",
}
# (prefix of the worker's failure reason, the sentence shown); first match wins.
_SENTENCES = (
    ("agent timed out (exit 124", _EXIT_SENTENCES[124]),
    ("agent killed (exit 137", _EXIT_SENTENCES[137]),
    (
        "investigation report missing",
        "The agent finished (exit code 0) but wrote no report (output/investigation.md).",
    ),
    (
        "investigation report is not a regular file",
        "The agent finished, but its report was a link or a special file, which the worker "
        "refuses to read.",
    ),
    (
        "investigation report unreadable",
        "The agent finished, but the worker could not read its report.",
    ),
    ("agent could not start", "The agent never started: the worker could not run its command."),
    ("worker lost", "The worker running this incident stopped (restarted or crashed) mid-run."),
    ("worker error", "The worker failed while handling this incident (not the agent)."),
    ("workspace", "The worker could not prepare the incident's workspace, so no agent ran."),
)


def _sentence(reason: str, exit_code: int | None) -> str | None:
    if match := _EXIT.match(reason):
        return (
            f"The agent ran and exited with code {match.group(1)}: it did not finish the "
            "investigation. Its own output below says why."
        )
    if match := _SIGNAL.match(reason):
        return f"The agent was killed by signal {match.group(1)}, which the worker did not send."
    if match := _TIMED_OUT.match(reason):
        return (
            f"The agent was still running after {match.group(1)} seconds, the worker's time "
            "limit (TRIAGE_AGENT_TIMEOUT), and was stopped."
        )
    if match := _SMALL.match(reason):
        return (
            f"The agent finished, but its report is only {match.group(1)} bytes: too short to "
            "be an investigation, so it was not kept. Its text is shown below."
        )
    if match := _LARGE.match(reason):
        return f"The agent finished, but its report is {match.group(1)} bytes, over the limit."
    for prefix, sentence in _SENTENCES:
        if reason.startswith(prefix):
            return sentence
    return _EXIT_SENTENCES.get(exit_code) if exit_code is not None else None


def explain(incident: Incident) -> str:
    """A sentence saying what happened to a failed or agent_failed incident ("" otherwise)."""
    if incident.status not in (Status.FAILED, Status.AGENT_FAILED):
        return ""
    reason = (incident.failure_reason or "").strip()
    sentence = _sentence(reason, incident.exit_code)
    if sentence:
        return sentence
    if incident.status == Status.FAILED:
        code = "" if incident.exit_code is None else f" with code {incident.exit_code}"
        return f"The agent ran and exited{code}: it did not finish the investigation."
    return "The agent itself broke: it could not produce a usable report."


# --- the agent's logs ---------------------------------------------------------------------


class LogUnavailable(Exception):
    """A log cannot be shown; the message says why, without the server's path."""


def log_path(execution: AgentExecution, stream: str) -> Path:
    """The file of `stream` (stdout or stderr) the worker recorded for this execution, if it
    lies inside the workspace root. Raises LogUnavailable otherwise."""
    if stream not in STREAMS:
        raise LogUnavailable(f"no stream {stream!r}: stdout or stderr")
    for text in execution.log_path_list:
        path = Path(text)
        if path.name.endswith(f"{stream}.log"):
            break
    else:
        raise LogUnavailable(f"no {stream} log was recorded for this run")
    root = Path(settings.TRIAGE_WORKSPACE_ROOT).resolve()
    # resolve() follows links: a link pointing out of the root ends up outside it.
    if not path.is_absolute() or not path.resolve().is_relative_to(root):
        raise LogUnavailable(f"the {stream} log is outside the workspace root")
    return path


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise LogUnavailable("the file is gone (workspace cleaned up?)") from None
    except OSError as error:
        raise LogUnavailable(f"the web server cannot read it ({error.strerror})") from None


def read_log(execution: AgentExecution, stream: str, *, limit: int | None = None) -> bytes:
    """The log's bytes (the last `limit` of them when given)."""
    fd = _open(log_path(execution, stream))
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if limit is not None and size > limit:
            handle.seek(size - limit)
        return handle.read() if limit is None else handle.read(limit)


@dataclass(frozen=True)
class LogTail:
    stream: str
    text: str  # printable, the last TAIL_LINES lines ("" when empty)
    lines: int  # how many lines are shown
    cut: bool  # the log has more before what is shown
    problem: str  # why there is no text ("" when there is)


def log_tail(execution: AgentExecution, stream: str) -> LogTail:
    """The last TAIL_LINES lines of one of the execution's logs, ANSI and controls stripped."""
    try:
        data = read_log(execution, stream, limit=TAIL_BYTES)
    except LogUnavailable as error:
        return LogTail(stream, "", 0, False, str(error))
    lines = printable(data.decode("utf-8", errors="replace")).splitlines()
    cut = len(data) >= TAIL_BYTES or len(lines) > TAIL_LINES
    if len(data) >= TAIL_BYTES and lines:
        lines = lines[1:]  # the first line read from the middle of the file is partial
    shown = lines[-TAIL_LINES:]
    return LogTail(stream, "\n".join(shown), len(shown), cut, "")


def undersized_report(execution: AgentExecution) -> str | None:
    """The text of a report the worker refused as too small (in the run's workspace, beside
    its logs), or None when it cannot be read."""
    try:
        logs = log_path(execution, "stdout").parent
    except LogUnavailable:
        return None
    path = logs.parent / "output" / "investigation.md"
    root = Path(settings.TRIAGE_WORKSPACE_ROOT).resolve()
    if not path.resolve().is_relative_to(root):
        return None
    try:
        fd = _open(path)
    except LogUnavailable:
        return None
    with os.fdopen(fd, "rb") as handle:
        return printable(handle.read(UNDERSIZED_BYTES).decode("utf-8", errors="replace"))

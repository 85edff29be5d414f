"""Running one agent process: another user, own process group, capped logs, nothing left behind.

Guarantees of `run_agent`:

- The agent runs as `identity` (a root worker's agents never run as root; see
  `incidents.worker.isolation`) in a new session, so its own process group: a Ctrl-C or
  SIGTERM aimed at the worker does not reach it, and on timeout the whole group gets SIGTERM,
  then SIGKILL after `kill_grace` seconds.
- stdout and stderr go through pipes to one reader thread each, which writes them to the log
  files up to `log_limit` bytes per stream and then keeps reading but discards the rest (with a
  note at the end of the file saying how much was dropped). The agent never blocks on a full pipe,
  and an agent printing gigabytes cannot fill the disk or the worker's memory: each reader holds
  one 64 KiB chunk plus the last few KiB of stderr for the error message. (RLIMIT_FSIZE was the
  alternative; it would kill the agent at the limit and also cap the files the agent writes.)
  The log files are opened before the agent starts, never through a symlink.
- When the agent exits, every process it started is killed: its process group, and (the worker
  being a child subreaper) every process that left the group with `setsid()` and was handed to
  the worker when its parent died. The reader threads end with the run; nothing accumulates.
- The agent's environment is built from an allow-list (`agent_environment`): the worker's
  secrets never reach it, whatever their names.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from django.utils import timezone

from incidents.worker.isolation import AgentIdentity, children_of, reap_orphans

logger = logging.getLogger("incidents.worker")

CHUNK = 64 * 1024
STDERR_TAIL_BYTES = 4096
# What an agent may see of the worker's environment: the basics, the agent CLIs' own keys and
# nightcrier's run-agent.sh settings. Anything else (DATABASE_URL, DJANGO_SECRET_KEY, PG*, AWS_*,
# other TRIAGE_* settings) stays with the worker unless TRIAGE_AGENT_PASS_ENV names it.
AGENT_ENV = frozenset(
    {
        "PATH", "LANG", "LANGUAGE", "TZ", "KUBECONFIG", "KUBERNETES_CONTEXT", "DOCKER_HOST",
        "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
        "AGENT_CLI", "AGENT_IMAGE", "LLM_MODEL", "AGENT_ALLOWED_TOOLS", "OUTPUT_FORMAT",
        "AGENT_VERBOSE", "AGENT_MAX_TURNS", "CONTAINER_MEMORY", "CONTAINER_CPUS",
        "CONTAINER_NETWORK", "CONTAINER_USER", "SKILLS_DIR", "SYSTEM_PROMPT_FILE",
        "TRIAGE_STUB_OUTCOME", "TRIAGE_STUB_DELAY",
    }
)  # fmt: skip
AGENT_ENV_PREFIXES = ("LC_",)
# Never passed, even when TRIAGE_AGENT_PASS_ENV names them: the worker's own credentials.
SECRET_ENV = frozenset({"DATABASE_URL", "DATABASE_REPLICA_URLS"})
SECRET_ENV_PREFIXES = ("DJANGO_", "PG")


@dataclass(frozen=True)
class AgentResult:
    """What happened to one agent process."""

    started_at: datetime
    completed_at: datetime
    returncode: int | None  # None: it never started; negative: killed by that signal
    timed_out: bool
    start_error: str = ""
    stderr_tail: str = ""
    dropped_bytes: int = 0  # output beyond the log limit, both streams

    @property
    def duration_s(self) -> float:
        return (self.completed_at - self.started_at).total_seconds()


def agent_environment(
    base: Mapping[str, str], extra: Mapping[str, str], *, pass_env: Sequence[str] = ()
) -> dict[str, str]:
    """The allow-listed part of `base` (plus the names in `pass_env`), updated with `extra`."""
    allowed = AGENT_ENV | set(pass_env)
    env = {
        name: value
        for name, value in base.items()
        if (name in allowed or name.startswith(AGENT_ENV_PREFIXES))
        and name not in SECRET_ENV
        and not name.startswith(SECRET_ENV_PREFIXES)
    }
    env.update(extra)
    return env


class _LogPump(threading.Thread):
    """Copies one pipe to one file, up to a limit; keeps a tail of what it read."""

    def __init__(self, path: Path, limit: int, keep_tail: int = 0) -> None:
        super().__init__(name=f"log-pump {path.name}", daemon=True)
        self.pipe: BinaryIO | None = None  # set before start()
        self.path = path
        self.limit = limit
        self.keep_tail = keep_tail
        self.tail = b""
        self.written = 0
        self.dropped = 0
        # Opened now, before the agent runs, so it cannot swap the file for a symlink first.
        self.log = self._open()

    def run(self) -> None:
        # The pipe is read to its end whatever happens to the log file (disk full, a quota, the
        # agent deleting logs/): a reader that stopped would leave the agent blocked on a full
        # pipe until its timeout. What cannot be written counts as dropped.
        pipe = self.pipe
        if pipe is None:
            raise RuntimeError(f"log pump for {self.path.name} started without a pipe")
        fd = pipe.fileno()
        log = self.log
        try:
            while chunk := os.read(fd, CHUNK):
                room = max(self.limit - self.written, 0) if log is not None else 0
                if room and log is not None:
                    try:
                        log.write(chunk[:room])
                    except OSError as error:
                        self._close(log, error)
                        log, room = None, 0
                    else:
                        self.written += min(room, len(chunk))
                self.dropped += max(len(chunk) - room, 0)
                if self.keep_tail:
                    self.tail = (self.tail + chunk)[-self.keep_tail :]
            if self.dropped and log is not None:
                try:
                    log.write(
                        f"\n[run_triage: log truncated at {self.limit} bytes; "
                        f"{self.dropped} more bytes dropped]\n".encode()
                    )
                except OSError as error:
                    self._close(log, error)
                    log = None
        finally:
            if log is not None:
                self._close(log, None)
            pipe.close()

    def _open(self) -> BinaryIO | None:
        try:
            return open(self.path, "ab", opener=_private_opener)  # closed by run()
        except OSError as error:
            self._close(None, error)
            return None

    def discard(self) -> None:
        """Close the log of a pump that will never run (the agent did not start)."""
        if self.log is not None:
            self._close(self.log, None)
            self.log = None

    def _close(self, log: BinaryIO | None, error: OSError | None) -> None:
        """Close the log (ignoring what closing raises: its buffer may not fit either)."""
        if error is not None:
            logger.warning(
                "agent log %s not writable (%s): the rest of the stream is dropped",
                self.path,
                error.strerror or error,
                extra={"step": "log not writable", "path": str(self.path)},
            )
        if log is not None:
            try:
                log.close()
            except OSError:
                pass


def _private_opener(path: str, flags: int) -> int:
    # Logs quote cluster data: owner-only, and never through a symlink.
    return os.open(path, flags | os.O_NOFOLLOW, 0o600)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


# Agents running now in this worker (their pids), so that one slot's clean-up never takes
# another slot's agent for a leftover. Held while an agent starts and while leftovers are reaped.
_running: set[int] = set()
_running_lock = threading.Lock()


def _start(argv: Sequence[str], cwd: Path, env: Mapping[str, str], identity: AgentIdentity | None):
    """Popen the agent as `identity`, registered in `_running` before any clean-up can look."""
    as_user: dict[str, Any] = {}  # Popen's user, group and extra_groups, each typed apart
    if identity is not None and not identity.is_worker:
        as_user = {"user": identity.uid, "group": identity.gid, "extra_groups": identity.groups}
    with _running_lock:
        before = children_of(os.getpid())
        process = subprocess.Popen(  # noqa: S603 - the operator's configured agent command
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            umask=0o077,
            **as_user,
        )
        _running.add(process.pid)
    return process, before


def _clean_up(process: subprocess.Popen, before: set[int]) -> int:
    """Kill what the finished agent left: its group, then the orphans handed to the worker."""
    _signal_group(process.pid, signal.SIGKILL)
    killed = 0
    with _running_lock:
        _running.discard(process.pid)
        for _ in range(5):  # a killed process's own children are handed over in turn
            reaped = reap_orphans(before | _running)
            killed += reaped
            if not reaped:
                break
    return killed


def run_agent(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout_log: Path,
    stderr_log: Path,
    timeout: float,
    kill_grace: float,
    log_limit: int,
    identity: AgentIdentity | None = None,
) -> AgentResult:
    """Run `argv` in `cwd` until it exits or `timeout` seconds pass; see the module docstring.

    `identity`: the user to run it as (None: the worker's own).
    """
    started_at = timezone.now()
    pumps = [
        _LogPump(stdout_log, log_limit),
        _LogPump(stderr_log, log_limit, keep_tail=STDERR_TAIL_BYTES),
    ]
    try:
        process, before = _start(argv, cwd, env, identity)
    except (OSError, subprocess.SubprocessError) as error:
        for pump in pumps:
            pump.discard()
        return AgentResult(
            started_at=started_at,
            completed_at=timezone.now(),
            returncode=None,
            timed_out=False,
            start_error=f"{argv[0]}: {getattr(error, 'strerror', None) or error}",
        )
    for pump, pipe in zip(pumps, (process.stdout, process.stderr), strict=True):
        pump.pipe = pipe
        pump.start()
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=kill_grace)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    completed_at = timezone.now()
    # Children the agent left behind may still be writing their last lines: a moment, then
    # every one of them goes (the pipes close with the last writer).
    deadline = time.monotonic() + 1.0
    for pump in pumps:
        pump.join(timeout=max(deadline - time.monotonic(), 0))
    leftovers = _clean_up(process, before)
    if leftovers:
        logger.info(
            "killed %d process(es) the agent left running",
            leftovers,
            extra={"step": "leftovers killed", "count": leftovers},
        )
    for pump in pumps:
        pump.join(timeout=5)
        if pump.is_alive():  # a pipe passed to a process outside the worker's tree
            logger.warning("agent log reader still open after the run: %s", pump.path)
    return AgentResult(
        started_at=started_at,
        completed_at=completed_at,
        returncode=process.returncode,
        timed_out=timed_out,
        stderr_tail=pumps[1].tail.decode("utf-8", errors="replace"),
        dropped_bytes=sum(pump.dropped for pump in pumps),
    )

"""Running one agent process: own process group, capped logs, a timeout that really kills.

Guarantees of `run_agent`:

- The agent runs in a new session (so its own process group): a Ctrl-C or SIGTERM aimed at the
  worker does not reach it, and on timeout the whole group (the agent and every child it spawned)
  gets SIGTERM, then SIGKILL after `kill_grace` seconds.
- stdout and stderr go through pipes to one reader thread each, which writes them to the log
  files up to `log_limit` bytes per stream and then keeps reading but discards the rest (with a
  note at the end of the file saying how much was dropped). The agent never blocks on a full pipe,
  and an agent printing gigabytes cannot fill the disk or the worker's memory: each reader holds
  one 64 KiB chunk plus the last few KiB of stderr for the error message. (RLIMIT_FSIZE was the
  alternative; it would kill the agent at the limit and also cap the files the agent writes.)
- When the agent exits, anything it left running in its group is killed, so a background child
  holding the pipes open cannot hang the worker.
- The agent's environment is the worker's minus the worker's own secrets (DATABASE_URL,
  DJANGO_*, PG*), plus the TRIAGE_* variables describing the workspace.
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
from typing import IO, BinaryIO

from django.utils import timezone

logger = logging.getLogger("incidents.worker")

CHUNK = 64 * 1024
STDERR_TAIL_BYTES = 4096
# Variables that are the worker's credentials, not the agent's business.
HIDDEN_ENV = frozenset({"DATABASE_URL"})
HIDDEN_ENV_PREFIXES = ("DJANGO_", "PG")


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


def agent_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """`base` without the worker's secrets, updated with `extra`."""
    env = {
        name: value
        for name, value in base.items()
        if name not in HIDDEN_ENV and not name.startswith(HIDDEN_ENV_PREFIXES)
    }
    env.update(extra)
    return env


class _LogPump(threading.Thread):
    """Copies one pipe to one file, up to a limit; keeps a tail of what it read."""

    def __init__(self, pipe: IO[bytes], path: Path, limit: int, keep_tail: int = 0) -> None:
        super().__init__(name=f"log-pump {path.name}", daemon=True)
        self.pipe = pipe
        self.path = path
        self.limit = limit
        self.keep_tail = keep_tail
        self.tail = b""
        self.written = 0
        self.dropped = 0

    def run(self) -> None:
        # The pipe is read to its end whatever happens to the log file (disk full, a quota, the
        # agent deleting logs/): a reader that stopped would leave the agent blocked on a full
        # pipe until its timeout. What cannot be written counts as dropped.
        fd = self.pipe.fileno()
        log = self._open()
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
            self.pipe.close()

    def _open(self) -> BinaryIO | None:
        try:
            return open(self.path, "ab", opener=_private_opener)  # closed by run()
        except OSError as error:
            self._close(None, error)
            return None

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
) -> AgentResult:
    """Run `argv` in `cwd` until it exits or `timeout` seconds pass; see the module docstring."""
    started_at = timezone.now()
    try:
        process = subprocess.Popen(  # noqa: S603 - the operator's configured agent command
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as error:
        return AgentResult(
            started_at=started_at,
            completed_at=timezone.now(),
            returncode=None,
            timed_out=False,
            start_error=f"{argv[0]}: {error.strerror or error}",
        )
    if process.stdout is None or process.stderr is None:  # never: both are PIPE
        raise RuntimeError("the agent's output pipes were not opened")
    pumps = [
        _LogPump(process.stdout, stdout_log, log_limit),
        _LogPump(process.stderr, stderr_log, log_limit, keep_tail=STDERR_TAIL_BYTES),
    ]
    for pump in pumps:
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
    # Children the agent left behind keep the pipes open: give them a moment, then kill them.
    deadline = time.monotonic() + 1.0
    for pump in pumps:
        pump.join(timeout=max(deadline - time.monotonic(), 0))
    if any(pump.is_alive() for pump in pumps):
        _signal_group(process.pid, signal.SIGKILL)
        for pump in pumps:
            pump.join(timeout=5)  # a child that escaped the group is abandoned, not waited for
    return AgentResult(
        started_at=started_at,
        completed_at=completed_at,
        returncode=process.returncode,
        timed_out=timed_out,
        stderr_tail=pumps[1].tail.decode("utf-8", errors="replace"),
        dropped_bytes=sum(pump.dropped for pump in pumps),
    )

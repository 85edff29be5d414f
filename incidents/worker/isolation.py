"""Keeping agents away from the worker: another user, no secrets, no way back into the worker.

- `agent_identity` picks the user agents run as. A worker running as root runs every agent as
  `TRIAGE_AGENT_USER` (default `nobody`) and never as root; a worker running as an ordinary
  user runs agents as itself (it cannot switch users).
- `harden_worker` makes the worker process non-dumpable, so a process of the same user can
  neither read `/proc/<worker>/environ` (DATABASE_URL, DJANGO_SECRET_KEY) nor ptrace it, and a
  child subreaper, so every process an agent leaves behind (including `setsid()` daemons)
  becomes the worker's child and can be found and killed (`reap_orphans`).
- `can_reach` tells whether a user can execute or read a path, from the permission bits of the
  path and of every folder on the way, so a misconfigured agent command fails at start-up
  rather than once per incident.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pwd
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("incidents.worker")

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class AgentIdentity:
    """The user an agent runs as (None fields: the worker's own user)."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @property
    def is_worker(self) -> bool:
        return self.uid == os.geteuid()


def agent_identity(requested: str = "") -> AgentIdentity:
    """The user agents run as; raises ValueError naming TRIAGE_AGENT_USER when it cannot be."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        if requested and requested not in (me.pw_name, str(me.pw_uid)):
            raise ValueError(
                f"TRIAGE_AGENT_USER={requested}: only a worker running as root can run agents "
                f"as another user (this worker runs as {me.pw_name})"
            )
        return AgentIdentity(me.pw_name, me.pw_uid, os.getegid(), tuple(os.getgroups()))
    name = requested or "nobody"
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"TRIAGE_AGENT_USER={name}: no such user") from None
    if entry.pw_uid == 0:
        raise ValueError(
            f"TRIAGE_AGENT_USER={name}: a worker running as root never runs an agent as root"
        )
    groups = tuple(gid for gid in os.getgrouplist(entry.pw_name, entry.pw_gid) if gid != 0)
    return AgentIdentity(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl({option}, {value}): {os.strerror(code)}")


def harden_worker() -> None:
    """Non-dumpable and a child subreaper, for the whole worker process (see the module doc)."""
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _allows(info: os.stat_result, identity: AgentIdentity, bits: int) -> bool:
    """Whether the owner/group/other bits `bits` (r=4, w=2, x=1) apply to `identity`."""
    if identity.uid == 0:
        return True
    if info.st_uid == identity.uid:
        return bool(info.st_mode >> 6 & bits == bits)
    if info.st_gid == identity.gid or info.st_gid in identity.groups:
        return bool(info.st_mode >> 3 & bits == bits)
    return bool(info.st_mode & bits == bits)


def can_reach(path: Path, identity: AgentIdentity, *, bits: int) -> bool:
    """Whether `identity` can traverse to `path` (resolved) and has `bits` on it (ACLs aside)."""
    try:
        target = Path(path).resolve(strict=True)
        for folder in reversed(target.parents):
            if not _allows(folder.stat(), identity, 1):
                return False
        return _allows(target.stat(), identity, bits)
    except OSError:
        return False


# -- processes left behind ---------------------------------------------------------------------
def children_of(pid: int) -> set[int]:
    """The direct children of `pid`, from /proc (a process that vanishes meanwhile is skipped)."""
    children: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.add(int(entry.name))
    return children


def _kill_tree(pid: int) -> set[int]:
    """SIGKILL `pid` and every descendant (stopped first, so none can fork meanwhile); returns
    the pids that were signalled."""
    tree, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        try:
            os.kill(current, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        except PermissionError:
            # A setuid program the agent ran: a non-root worker cannot kill it. Its children
            # are still searched; it stays, and is logged.
            logger.warning("cannot kill pid %d the agent left running: not ours", current)
        else:
            tree.append(current)
        frontier.extend(children_of(current))
    killed = set()
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.add(member)
    return killed


def reap_orphans(keep: set[int]) -> int:
    """Kill and reap every child of this worker not in `keep`, with all its descendants.

    As a child subreaper the worker inherits whatever an agent left running once the agent
    exits (a `setsid()` daemon too). `keep` holds the children that are not leftovers: the
    agents still running and whatever the worker had started itself before. Returns how many
    processes were killed.
    """
    killed = 0
    for pid in children_of(os.getpid()) - keep:
        signalled = _kill_tree(pid)
        killed += len(signalled)
        if pid not in signalled:
            continue  # never waited for: it may not die
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # reaped elsewhere
    return killed


def is_private_file(info: os.stat_result) -> bool:
    """A regular file with a single link: not a device, FIFO or link to someone else's file."""
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1

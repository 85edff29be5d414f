"""Agents for the worker's tests, and where they can run.

The suite runs as root (here and in CI), so the worker runs every agent as `nobody`: an agent's
interpreter, its script and the folders it works in must be reachable by that user. A root
worker's own Python often lives under /root (pyenv), out of nobody's reach; the scripted agents
need the standard library only, so they run on a system python3 when there is one.
"""

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from incidents.worker.isolation import agent_identity, can_reach

HERE = Path(__file__).parent


def agent_python() -> str:
    """A Python the worker's agent user can execute."""
    identity = agent_identity()
    for candidate in (sys.executable, shutil.which("python3", path="/usr/local/bin:/usr/bin")):
        if candidate and can_reach(Path(candidate), identity, bits=1):
            return candidate
    raise RuntimeError(f"no Python that {identity.name} can execute: install python3 in /usr/bin")


@contextmanager
def reachable_folder(mode: int = 0o711) -> Iterator[Path]:
    """A fresh folder under the system temp dir that the agent user can reach (0711) or also
    write to (0o1777); pytest's own tmp_path sits in a 0700 folder of root's."""
    folder = Path(tempfile.mkdtemp(prefix="triage-test-", dir="/tmp"))
    os.chmod(folder, mode)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_copies: dict[str, Path] = {}


def agent_script(name: str) -> Path:
    """tests/agents/NAME copied once into a folder the agent user can read (the checkout may
    sit under a folder it cannot enter); removed when the test session ends."""
    if name not in _copies:
        folder = Path(tempfile.mkdtemp(prefix="triage-agents-", dir="/tmp"))
        os.chmod(folder, 0o755)  # noqa: S103 - the agent user reads it
        atexit.register(shutil.rmtree, folder, True)
        copy = folder / name
        shutil.copy2(HERE / name, copy)
        os.chmod(copy, 0o755)  # noqa: S103 - the agent user runs it
        _copies[name] = copy
    return _copies[name]

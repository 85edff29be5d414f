"""The worker's settings for one run of `run_triage`."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """How the worker runs agents. Every worker sharing a database should use the same timeout:
    it decides when an investigating incident counts as lost (see `lost_after`)."""

    agent_command: str
    workspace_root: Path
    # Seconds per agent run (TRIAGE_AGENT_TIMEOUT).
    timeout: float = field(default_factory=lambda: float(settings.TRIAGE_AGENT_TIMEOUT))
    kill_grace: float = 10.0  # seconds between SIGTERM and SIGKILL
    poll_interval: float = 5.0  # seconds between looks at an empty queue
    concurrency: int = 1
    # Bytes kept of each output stream (TRIAGE_AGENT_LOG_MAX_BYTES).
    log_limit_bytes: int = field(default_factory=lambda: settings.TRIAGE_AGENT_LOG_MAX_BYTES)

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("the agent command is empty")
        for name in ("timeout", "kill_grace", "poll_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")

    @property
    def argv(self) -> list[str]:
        """The agent command split like a shell would (no shell runs it).

        A relative program path (`scripts/agent`) is made absolute against the worker's working
        directory, since the agent itself runs in its workspace.
        """
        argv = shlex.split(self.agent_command)
        if argv and os.sep in argv[0] and not os.path.isabs(argv[0]):
            argv[0] = os.path.abspath(argv[0])
        return argv

    @property
    def lost_after(self) -> timedelta:
        """How long after its start an investigating incident must have finished.

        A run takes at most timeout + kill_grace; the second grace covers the few database
        writes after it. Older than this, the worker that claimed it is gone.
        """
        return timedelta(seconds=self.timeout + 2 * self.kill_grace)

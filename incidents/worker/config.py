"""The worker's settings for one run of `run_triage`."""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from incidents.worker.isolation import AgentIdentity, agent_identity, can_reach

# The agent command's placeholders: each is replaced inside the one argument it appears in.
PLACEHOLDERS = ("workspace", "incident_id", "execution_id", "timeout", "prompt")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
# `TRIAGE_AGENT_COMMAND=stub`: the shipped demo agent, which writes synthetic reports.
STUB = "stub"
STUB_MODULE = "incidents.stub_agent"
SYSTEM_PYTHONS = "/usr/local/bin:/usr/bin:/bin"


class UnknownProfile(LookupError):
    """An incident asks for an agent profile this worker is not configured with."""

    def __init__(self, profile: str, known: list[str]) -> None:
        self.profile = profile
        names = ", ".join(known) or "none"
        super().__init__(
            f"agent profile {profile!r} is not in this worker's TRIAGE_AGENT_PROFILES "
            f"(configured: {names})"
        )


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
    prompt: str | None = None  # the text of TRIAGE_AGENT_PROMPT_FILE
    kubeconfig_dir: Path | None = None
    pass_env: tuple[str, ...] = ()  # extra variable names the agent may see
    identity: AgentIdentity = field(default_factory=agent_identity)
    # TRIAGE_AGENT_PROFILES: name -> agent command, for incidents re-run with a profile.
    profiles: Mapping[str, str] = field(default_factory=dict)
    daily_budget: Decimal | None = None  # TRIAGE_DAILY_BUDGET_USD; None: no budget

    def __post_init__(self) -> None:
        if not self.template:
            raise ValueError("the agent command is empty")
        for name, command in self.profiles.items():
            if not self.template_for(command):
                raise ValueError(f"agent profile {name!r}: the command is empty")
            self._check_placeholders(command, f"agent profile {name!r}: ")
        if self.daily_budget is not None and self.daily_budget < 0:
            raise ValueError(f"daily_budget must not be negative, not {self.daily_budget}")
        for name in ("timeout", "kill_grace", "poll_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        self._check_placeholders(self.agent_command)

    def _check_placeholders(self, command: str, where: str = "") -> None:
        for name in _PLACEHOLDER.findall(command):
            if name not in PLACEHOLDERS:
                known = ", ".join(f"{{{known}}}" for known in PLACEHOLDERS)
                raise ValueError(f"{where}unknown placeholder {{{name}}} (known: {known})")
        if "{prompt}" in command and self.prompt is None:
            raise ValueError(
                f"{where}{{prompt}} needs TRIAGE_AGENT_PROMPT_FILE (the prompt's text)"
            )

    @property
    def is_stub(self) -> bool:
        return self.agent_command.strip() == STUB

    @property
    def template(self) -> list[str]:
        """The default agent command (TRIAGE_AGENT_COMMAND), split; see `template_for`."""
        return self.template_for(self.agent_command)

    def template_for(self, command: str) -> list[str]:
        """An agent command split like a shell would (no shell runs it), placeholders unfilled.

        `stub` is the shipped demo agent, run with a Python the agent's user can execute. A
        relative program path (`scripts/agent`) is made absolute against the worker's working
        directory, since the agent itself runs in its workspace.
        """
        if command.strip() == STUB:
            return [stub_python(self.identity), "-m", STUB_MODULE]
        argv = shlex.split(command)
        if argv and os.sep in argv[0] and not os.path.isabs(argv[0]):
            argv[0] = os.path.abspath(argv[0])
        return argv

    def command_for(self, profile: str) -> str:
        """The agent command of a profile ("" is the default command). Raises UnknownProfile
        when this worker has no such profile (its TRIAGE_AGENT_PROFILES differ from the web's)."""
        if not profile:
            return self.agent_command
        if profile not in self.profiles:
            raise UnknownProfile(profile, sorted(self.profiles))
        return self.profiles[profile]

    def argv(self, profile: str = "", **values: str) -> list[str]:
        """The command for one run of `profile`: every placeholder replaced by its value, within
        its argument (a prompt with spaces and quotes stays one argument)."""
        return [
            _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), arg)
            for arg in self.template_for(self.command_for(profile))
        ]

    @property
    def container_timeout(self) -> int:
        """CONTAINER_TIMEOUT and `{timeout}`: whole seconds, below our own timeout, so an agent
        wrapper's own `timeout` (nightcrier's run-agent.sh) fires first and reports 124: 10 %
        less, by 5 s to 60 s (a wrapper needs seconds to stop a container), at least 1 s."""
        margin = min(60.0, max(5.0, self.timeout * 0.1))
        return max(1, math.floor(self.timeout - margin))

    @property
    def lost_after(self) -> timedelta:
        """How long after its start an investigating incident must have finished.

        A run takes at most timeout + kill_grace; the second grace covers the few database
        writes after it. Older than this, the worker that claimed it is gone.
        """
        return timedelta(seconds=self.timeout + 2 * self.kill_grace)


def stub_python(identity: AgentIdentity) -> str:
    """This Python when the agent's user can run it, else a system python3 it can (the stub
    needs the standard library only): a root worker's Python often lives under /root."""
    candidates = [sys.executable, shutil.which("python3", path=SYSTEM_PYTHONS)]
    for candidate in candidates:
        if candidate and can_reach(Path(candidate), identity, bits=5):
            return candidate
    return sys.executable

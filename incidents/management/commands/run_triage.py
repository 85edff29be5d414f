"""`manage.py run_triage`: the triage worker (see `incidents.worker` for what it guarantees)."""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser
from django.db import connections

from incidents import metrics
from incidents.management.base import TriageCommand
from incidents.profiles import agent_profiles
from incidents.worker import Mode, Worker, WorkerConfig
from incidents.worker.isolation import AgentIdentity, agent_identity, can_reach, harden_worker

USAGE_ERROR = 2
DATABASE_FAILURE = 3  # as ingest_events: the database failed, the run stopped early
WORKSPACE_FAILURE = 4  # the workspace root is unusable and could not be repaired


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError(text)
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(TriageCommand):
    help = (
        "Triage pending incidents, oldest first: run the agent for each in its own workspace and "
        "record the execution, the report and the outcome. Runs until SIGTERM/SIGINT unless "
        "--once or --until-empty is given; a signal stops claiming and lets running agents finish. "
        "Exit status: 0; 2 for a configuration error; 3 when the database failed under --once or "
        "--until-empty; 4 when the workspace root is unusable (the worker then claims nothing "
        "more and its summary says what was left)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--once", action="store_true", help="Triage at most one incident, then exit."
        )
        mode.add_argument(
            "--until-empty",
            action="store_true",
            help="Exit when no pending incident is left (after the running ones finish).",
        )
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            default=1,
            help="Agents run at once (default 1).",
        )
        parser.add_argument(
            "--poll-interval",
            type=positive_float,
            default=5.0,
            help="Seconds between looks at an empty queue (default 5).",
        )
        parser.add_argument(
            "--timeout",
            type=positive_float,
            default=float(settings.TRIAGE_AGENT_TIMEOUT),
            help="Seconds an agent may run before it is terminated "
            "(default TRIAGE_AGENT_TIMEOUT, %(default)g).",
        )
        parser.add_argument(
            "--kill-grace",
            type=positive_float,
            default=10.0,
            help="Seconds between SIGTERM and SIGKILL for an agent that timed out (default 10).",
        )
        parser.add_argument(
            "--agent-command",
            default=settings.TRIAGE_AGENT_COMMAND,
            help="The agent to run, split like a shell would, with the placeholders {workspace}, "
            "{incident_id}, {execution_id}, {timeout} and {prompt} each filled in within its "
            "argument; `stub` runs the shipped demo agent, which writes synthetic reports "
            "(default TRIAGE_AGENT_COMMAND, which must be set).",
        )
        parser.add_argument(
            "--prompt-file",
            type=Path,
            default=Path(settings.TRIAGE_AGENT_PROMPT_FILE)
            if settings.TRIAGE_AGENT_PROMPT_FILE
            else None,
            help="The prompt: written to prompt-sent.md and given as {prompt} "
            "(default TRIAGE_AGENT_PROMPT_FILE).",
        )
        parser.add_argument(
            "--workspace-root",
            type=Path,
            default=settings.TRIAGE_WORKSPACE_ROOT,
            help="Where each incident gets a folder (default TRIAGE_WORKSPACE_ROOT).",
        )
        parser.add_argument(
            "--metrics-port",
            type=metrics.listen_address,
            metavar="[ADDRESS:]PORT",
            help="Serve Prometheus metrics (agent run durations) here (address: 127.0.0.1).",
        )

    def handle(self, *args, **options) -> None:
        config = self._config(options)
        if options["once"]:
            mode = Mode.ONCE
        elif options["until_empty"]:
            mode = Mode.UNTIL_EMPTY
        else:
            mode = Mode.FOREVER
        # Before any agent runs: no agent may read this process's environment or ptrace it, and
        # whatever an agent leaves running is handed to this process to be killed.
        harden_worker()
        if options["metrics_port"]:
            metrics.serve_metrics(options["metrics_port"])
        worker = Worker(config, mode=mode)
        summary = self._run_with_signals(worker)
        self.stdout.write(summary.line())
        if summary.failure:
            code = DATABASE_FAILURE if summary.failure_kind == "database" else WORKSPACE_FAILURE
            raise CommandError(f"stopped early: {summary.failure}", returncode=code)

    def _config(self, options: dict) -> WorkerConfig:
        """The worker's configuration, or a one-line CommandError (exit 2) saying what to fix."""
        command = (options["agent_command"] or "").strip()
        if not command:
            raise CommandError(
                "TRIAGE_AGENT_COMMAND is not set: name the agent to run (or --agent-command; "
                "`stub` is the demo agent, whose reports are synthetic)",
                returncode=USAGE_ERROR,
            )
        try:
            identity = agent_identity(settings.TRIAGE_AGENT_USER)
            prompt = None
            if options["prompt_file"] is not None:
                prompt = options["prompt_file"].read_text(encoding="utf-8")
            config = WorkerConfig(
                agent_command=command,
                workspace_root=options["workspace_root"],
                timeout=options["timeout"],
                kill_grace=options["kill_grace"],
                poll_interval=options["poll_interval"],
                concurrency=options["concurrency"],
                log_limit_bytes=settings.TRIAGE_AGENT_LOG_MAX_BYTES,
                prompt=prompt,
                kubeconfig_dir=Path(settings.TRIAGE_KUBECONFIG_DIR)
                if settings.TRIAGE_KUBECONFIG_DIR
                else None,
                pass_env=tuple(settings.TRIAGE_AGENT_PASS_ENV),
                identity=identity,
                profiles=agent_profiles(),
                daily_budget=settings.TRIAGE_DAILY_BUDGET_USD,
            )
        except ImproperlyConfigured as error:
            raise CommandError(str(error), returncode=USAGE_ERROR) from None
        except OSError as error:
            raise CommandError(
                f"TRIAGE_AGENT_PROMPT_FILE {options['prompt_file']}: {error.strerror or error}",
                returncode=USAGE_ERROR,
            ) from None
        except ValueError as error:
            raise CommandError(
                f"--agent-command {command!r}: {error}", returncode=USAGE_ERROR
            ) from None
        self._check_reachable(config, identity)
        return config

    def _check_database_file(self, identity: AgentIdentity) -> None:
        """An SQLite database the agent's user can read hands it every session and password
        hash: refused in production, a warning in development (`make demo`)."""
        database = connections["default"].settings_dict
        if identity.is_worker or "sqlite" not in database["ENGINE"]:
            return
        path = Path(str(database["NAME"]))
        if not path.exists() or not can_reach(path, identity, bits=4):
            return
        message = (
            f"the agent user {identity.name} can read the database {path}: "
            f"chmod 600 it (or use PostgreSQL)"
        )
        if not settings.DEBUG:
            raise CommandError(message, returncode=USAGE_ERROR)
        self.stderr.write(f"warning: {message}")

    def _check_reachable(self, config: WorkerConfig, identity: AgentIdentity) -> None:
        """The agent's program and the workspace root must be reachable by the agent's user."""
        template = config.template
        executable = shutil.which(template[0])
        if executable is None:
            raise CommandError(
                f"--agent-command {config.agent_command!r}: {template[0]} is not an "
                "executable file or on PATH",
                returncode=USAGE_ERROR,
            )
        if not can_reach(Path(executable), identity, bits=1):
            raise CommandError(
                f"--agent-command {config.agent_command!r}: the agent user {identity.name} "
                f"cannot execute {executable} (TRIAGE_AGENT_USER; check the folders' modes)",
                returncode=USAGE_ERROR,
            )
        self._check_database_file(identity)
        root = Path(config.workspace_root).absolute()
        # The root itself is the worker's to make or repair (see ensure_root); the way to it is not.
        existing = next(folder for folder in root.parents if folder.is_dir())
        if not can_reach(existing, identity, bits=1):
            raise CommandError(
                f"--workspace-root {root}: the agent user {identity.name} cannot reach it "
                "(every folder above it needs the x bit for that user)",
                returncode=USAGE_ERROR,
            )

    def _run_with_signals(self, worker: Worker):
        """Run the worker with SIGTERM/SIGINT meaning "stop claiming", restoring the handlers."""
        if threading.current_thread() is not threading.main_thread():
            return worker.run()  # signal handlers can only be set from the main thread

        def stop(signum: int, frame: object) -> None:
            self.stderr.write(
                f"{signal.Signals(signum).name}: no new incidents; waiting for running agents"
            )
            worker.stop()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return worker.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

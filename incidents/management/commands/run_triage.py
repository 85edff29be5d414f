"""`manage.py run_triage`: the triage worker (see `incidents.worker` for what it guarantees)."""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents import metrics
from incidents.worker import Mode, Worker, WorkerConfig


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


class Command(BaseCommand):
    help = (
        "Triage pending incidents, oldest first: run the agent for each in its own workspace and "
        "record the execution, the report and the outcome. Runs until SIGTERM/SIGINT unless "
        "--once or --until-empty is given; a signal stops claiming and lets running agents finish."
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
            help="The agent to run, split like a shell would (default TRIAGE_AGENT_COMMAND).",
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
        try:
            config = WorkerConfig(
                agent_command=options["agent_command"],
                workspace_root=options["workspace_root"],
                timeout=options["timeout"],
                kill_grace=options["kill_grace"],
                poll_interval=options["poll_interval"],
                concurrency=options["concurrency"],
                log_limit_bytes=settings.TRIAGE_AGENT_LOG_MAX_BYTES,
            )
        except ValueError as error:
            raise CommandError(f"--agent-command {options['agent_command']!r}: {error}") from None
        executable = config.argv[0]
        if shutil.which(executable) is None:
            raise CommandError(
                f"--agent-command {options['agent_command']!r}: {executable} is not an "
                "executable file or on PATH"
            )
        if options["once"]:
            mode = Mode.ONCE
        elif options["until_empty"]:
            mode = Mode.UNTIL_EMPTY
        else:
            mode = Mode.FOREVER
        if options["metrics_port"]:
            metrics.serve_metrics(options["metrics_port"])
        worker = Worker(config, mode=mode)
        summary = self._run_with_signals(worker)
        self.stdout.write(summary.line())

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

"""Issue 14 papercut: `manage.py <command> --help` needs neither DJANGO_DEBUG nor a secret key."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from triage_site.settings import asking_for_help

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "DJANGO_SECRET_KEY")}
    env.pop("PYTEST_VERSION", None)  # production settings, as an operator's shell has them
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [("ingest_events", "--help"), ("run_triage", "-h"), ("subscribe_mcp", "--help"), ("help",),
     ("help", "seed_demo")],
)  # fmt: skip
def test_help_works_without_debug_or_secret(args):
    result = manage(*args)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout or "subcommand" in result.stdout


def test_anything_else_still_needs_the_secret():
    result = manage("check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["manage.py"], True),
        (["manage.py", "migrate", "--help"], True),
        (["manage.py", "ingest_events", "--", "-h"], False),  # a file named -h: a real run
        (["manage.py", "migrate"], False),
        (["gunicorn", "--help"], False),
    ],
)
def test_asking_for_help(argv, expected):
    assert asking_for_help(argv) is expected

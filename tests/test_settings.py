"""Settings from the environment: the secret-key guard, production checks, database options."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from triage_site.settings import database_config

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_DEBUG", "DJANGO_SECRET_KEY", "PYTEST_VERSION"}
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_without_secret_key_stops_with_one_line():
    result = manage("check", DJANGO_DEBUG="0")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "DJANGO_SECRET_KEY" in lines[0]


def test_check_deploy_is_clean_in_production():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="a-long-random-test-key-" + "x7Qz9" * 12,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_sqlite_url_gets_wal_busy_timeout_and_immediate_transactions():
    config = database_config("sqlite:////srv/triage/db.sqlite3")
    assert config["NAME"] == "/srv/triage/db.sqlite3"
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["timeout"] == 20


def test_postgres_url_uses_the_psycopg_pool():
    config = database_config("postgres://triage@db.internal:5432/triage")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["NAME"], config["USER"]) == ("db.internal", "triage", "triage")
    assert config["OPTIONS"]["pool"]["max_size"] >= 1
    assert config["CONN_MAX_AGE"] == 0


@pytest.mark.parametrize("value", ["1", "true", "yes", "on"])
def test_debug_flag_values(value):
    result = manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)",
                    DJANGO_DEBUG=value)  # fmt: skip
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr

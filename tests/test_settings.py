"""Settings from the environment: the secret-key guard, production checks, database options."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import load_command_class

from incidents.ingest import IngestionService
from incidents.worker import WorkerConfig
from triage_site.settings import database_config

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_DEBUG", "DJANGO_SECRET_KEY"}
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


def print_setting(expression: str, **env: str) -> subprocess.CompletedProcess:
    return manage("shell", "-c", f"from django.conf import settings; print({expression})", **env)


def test_running_under_pytest_changes_no_setting():
    # pytest sets PYTEST_VERSION; the suite asks for development settings itself (pytest-env).
    result = print_setting("settings.DEBUG", PYTEST_VERSION="9.2.0", DJANGO_SECRET_KEY="k" * 50)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr


def test_a_malformed_number_stops_start_up_naming_the_variable():
    result = manage("check", DJANGO_DEBUG="1", TRIAGE_AGENT_TIMEOUT="soon")
    assert result.returncode != 0
    assert "ImproperlyConfigured: TRIAGE_AGENT_TIMEOUT:" in result.stderr


def test_a_variable_set_to_nothing_counts_as_unset():
    result = print_setting(
        "settings.ALLOWED_HOSTS, settings.TRIAGE_INGEST_BATCH_SIZE",
        DJANGO_DEBUG="1", DJANGO_ALLOWED_HOSTS="", TRIAGE_INGEST_BATCH_SIZE=" ",
    )  # fmt: skip
    assert result.stdout.strip().splitlines()[-1] == "['localhost', '127.0.0.1'] 1000"


def test_lists_are_trimmed():
    result = print_setting(
        "settings.ALLOWED_HOSTS", DJANGO_DEBUG="1", DJANGO_ALLOWED_HOSTS=" a.example , b.example"
    )
    assert result.stdout.strip().splitlines()[-1] == "['a.example', 'b.example']"


def test_every_variable_read_is_in_the_readme_table():
    settings_text = (ROOT / "triage_site" / "settings.py").read_text()
    read = set(re.findall(r'env\.\w+\(\s*"(\w+)"', settings_text))
    assert {"DATABASE_URL", "DJANGO_DEBUG", "TRIAGE_AGENT_TIMEOUT"} <= read
    table = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert {name for name in read if f"`{name}`" not in table} == set()


def test_the_services_take_their_defaults_from_settings(settings, tmp_path):
    settings.TRIAGE_AGENT_TIMEOUT = 42
    settings.TRIAGE_AGENT_LOG_MAX_BYTES = 4096
    settings.TRIAGE_INGEST_BATCH_SIZE = 7
    config = WorkerConfig(agent_command="agent", workspace_root=tmp_path)
    assert (config.timeout, config.log_limit_bytes) == (42.0, 4096)
    assert IngestionService(dry_run=True).batch_size == 7


@pytest.mark.parametrize("command", ["ingest_events", "subscribe_mcp"])
def test_the_commands_batch_size_defaults_to_the_setting(settings, command):
    settings.TRIAGE_INGEST_BATCH_SIZE = 2
    parser = load_command_class("incidents", command).create_parser("manage.py", command)
    assert parser.get_default("batch_size") == 2

"""Issue 20 F1, F4, F5: a hostile agent against a real `run_triage` process running as root.

Each test starts the worker as a production process (DEBUG off, its secrets in its own
environment, its own SQLite database in a folder only root can enter), lets the hostile agent
(`tests/agents/hostile_agent.py`) attack it, and asserts that the agent got nothing, changed
nothing, and that nothing it started outlived its run. The suite runs as root here and in CI;
on a machine where it does not, these tests say so and are skipped (a non-root worker cannot
run agents as another user, which is the defence under test).
"""

import json
import os
import re
import shlex
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.agents import agent_python, agent_script, reachable_folder

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="F1/F4/F5 attacks need a root worker (as in CI); run as root"
)

MARKER = "hunter2-f1-marker"
SECRET_KEY = f"django-secret-{MARKER}"
RECORD = {
    "subscriptionId": "sub-0000beef",
    "cluster": "prod-eu-1",
    "faultType": "CrashLoop",
    "severity": "critical",
    "resource": {"apiVersion": "v1", "kind": "Pod", "name": "api", "namespace": "ns", "uid": "u1"},
    "context": "Back-off restarting failed container",
    "timestamp": "2025-12-20T15:30:00Z",
}


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """A migrated SQLite database, copied by each test (migrating takes seconds)."""
    db = tmp_path_factory.mktemp("template") / "db.sqlite3"
    done = manage("migrate", "--no-input", env=base_env(db) | {"DJANGO_DEBUG": "1"})
    assert done.returncode == 0, done.stderr
    return db


def base_env(db: Path) -> dict[str, str]:
    # Built from nothing: the worker's environment is exactly what a deployment would give it.
    return {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": f"sqlite:///{db}",
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "DJANGO_DEBUG": "0",
    }


class Deployment:
    """A worker's database (under a folder named after the marker) and workspace root."""

    def __init__(self, tmp_path: Path, migrated: Path, root: Path) -> None:
        secret_dir = tmp_path / f"private-{MARKER}"  # DATABASE_URL now holds the marker too
        secret_dir.mkdir()
        self.db = secret_dir / "db.sqlite3"
        shutil.copy(migrated, self.db)
        self.root = root
        self.env = base_env(self.db) | {"TRIAGE_WORKSPACE_ROOT": str(root)}

    def ingest(self, count: int) -> None:
        lines = [json.dumps(RECORD | {"faultId": f"{n:016x}"}) for n in range(count)]
        records = self.db.parent / "records.jsonl"
        records.write_text("\n".join(lines) + "\n")
        done = manage("ingest_events", str(records), env=self.env)
        assert done.returncode == 0, done.stderr

    def triage(self, attack: str, *args: str, mode: str = "--until-empty"):
        command = shlex.join([agent_python(), str(agent_script("hostile_agent.py")), attack, *args])
        return manage(
            "run_triage", mode, "--timeout", "30", "--agent-command", command,
            env=self.env,
        )  # fmt: skip

    def rows(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.db) as connection:
            return connection.execute(sql).fetchall()

    def only_workspace(self) -> Path:
        (folder,) = [path for path in self.root.iterdir()]
        return folder

    def attack_result(self) -> dict:
        return json.loads((self.only_workspace() / "attack.json").read_text())


@pytest.fixture
def deployment(tmp_path, migrated) -> Deployment:
    with reachable_folder() as folder:
        yield Deployment(tmp_path, migrated, folder / "workspaces")


def published(deployment: Deployment) -> str:
    """Everything the agent managed to publish: stored reports and failure reasons."""
    reports = deployment.rows("SELECT report_markdown FROM triage_reports")
    reasons = deployment.rows("SELECT coalesce(failure_reason, '') FROM incidents")
    return "\n".join(row[0] for row in reports + reasons)


# -- F1: secrets, files, the process -----------------------------------------------------------
def test_agent_reads_no_worker_secret_from_proc_or_its_environment(deployment):
    deployment.ingest(1)
    done = deployment.triage("environ", MARKER)
    assert done.returncode == 0, done.stderr
    result = deployment.attack_result()
    assert result["uid"] != 0  # a root worker never runs an agent as root
    assert result["loot"]["parent"] == {"ok": False, "error": "Permission denied"}
    assert result["loot"]["processes_with_pattern"] == []
    assert not [value for value in result["env"].values() if MARKER in value]
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY"}.isdisjoint(result["env"])
    assert MARKER not in published(deployment)
    assert deployment.rows("SELECT status FROM incidents") == [("resolved",)]


def test_agent_cannot_ptrace_or_kill_its_worker(deployment):
    deployment.ingest(2)  # one attack each; the worker must live to run the second
    for attack in ("ptrace", "kill"):
        done = deployment.triage(attack, mode="--once")
        assert done.returncode == 0, done.stderr  # not -9: the worker survived
        newest = max(deployment.root.iterdir(), key=lambda path: path.stat().st_mtime)
        loot = json.loads((newest / "attack.json").read_text())["loot"]
        assert loot["ok"] is False and loot["error"] in ("Operation not permitted",), loot
    assert deployment.rows("SELECT status FROM incidents") == [("resolved",), ("resolved",)]


@pytest.mark.parametrize("attack", ["hardlink", "own-hardlink", "symlink-output"])
def test_agent_cannot_publish_a_file_of_the_workers_as_its_report(deployment, tmp_path, attack):
    secret_dir = tmp_path / "worker-files"
    secret_dir.mkdir(mode=0o700)
    secret = secret_dir / "investigation.md"
    secret.write_text(f"# worker-only\n{MARKER}\n" + "s" * 200)
    secret.chmod(0o600)
    os.chmod(tmp_path, 0o711)  # noqa: S103 - the links must resolve as far as root's 0700 folder
    deployment.ingest(1)
    target = str(secret_dir) if attack == "symlink-output" else str(secret)
    done = deployment.triage(attack, target)
    assert done.returncode == 0, done.stderr
    assert MARKER not in published(deployment)
    ((status, reason),) = deployment.rows("SELECT status, failure_reason FROM incidents")
    if attack == "hardlink":  # the kernel refuses nobody a link to root's 0600 file
        assert deployment.attack_result()["loot"]["ok"] is False
        assert status == "resolved"  # its fallback report, which holds nothing of ours
    else:
        assert (status, reason) == ("agent_failed", "investigation report is not a regular file")
    assert secret.read_text().startswith("# worker-only")


# -- F4: chmod 000 of the workspace root --------------------------------------------------------
def test_agent_chmod_of_the_root_changes_nothing_and_drains_nothing(deployment):
    deployment.ingest(20)
    done = deployment.triage("chmod-root")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(deployment.root.stat().st_mode) == 0o711
    assert deployment.rows("SELECT status, count(*) FROM incidents GROUP BY status") == [
        ("resolved", 20)
    ]
    for folder in deployment.root.iterdir():
        loot = json.loads((folder / "attack.json").read_text())["loot"]
        assert loot == {"ok": False, "error": "Operation not permitted"}


def test_worker_repairs_a_root_whose_mode_was_taken(deployment):
    deployment.ingest(3)
    deployment.root.mkdir(mode=0o711, parents=True)
    deployment.root.chmod(0)  # as an agent of a same-user worker could have
    done = deployment.triage("environ", MARKER)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(deployment.root.stat().st_mode) == 0o711
    assert "had mode 0; repaired to 711" in done.stdout + done.stderr
    assert deployment.rows("SELECT status, count(*) FROM incidents GROUP BY status") == [
        ("resolved", 3)
    ]


# -- F5: nothing an agent started outlives its run --------------------------------------------
def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_a_setsid_daemon_dies_with_its_run(deployment):
    deployment.ingest(1)
    done = deployment.triage("setsid")
    assert done.returncode == 0, done.stderr
    daemon = deployment.attack_result()["loot"]["daemon"]
    assert not _alive(daemon)
    log = deployment.only_workspace() / "daemon.log"
    size = log.stat().st_size
    time.sleep(0.5)
    assert log.stat().st_size == size  # nothing writes to the workspace any more
    assert re.search(r"killed [1-9]\d* process\(es\) the agent left running", done.stdout)


# -- F1 with the worker as an ordinary user: agent and worker share a uid -----------------------
WORKER_AS_USER = """
import importlib.util, subprocess, sys
spec = importlib.util.spec_from_file_location("isolation", sys.argv[2])
isolation = sys.modules["isolation"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(isolation)
if sys.argv[1] == "hardened":
    isolation.harden_worker()  # what run_triage does before its first agent
print(subprocess.run([sys.executable, sys.argv[3]], capture_output=True, text=True).stdout)
"""
ATTACK_PARENT = """
import ctypes, json, os
try:
    environ = open(f"/proc/{os.getppid()}/environ", "rb").read().decode()
except OSError as error:
    environ = error.strerror
libc = ctypes.CDLL(None, use_errno=True)
traced = libc.ptrace(0x4206, os.getppid(), None, None) == 0  # PTRACE_SEIZE: no stop
print(json.dumps({"environ": environ, "ptrace": traced}))
"""


@pytest.mark.parametrize("worker", ["hardened", "plain"])
def test_same_user_agent_reads_nothing_of_a_hardened_worker(worker):
    """A worker running as an ordinary user runs agents as itself: only non-dumpability keeps
    its environment and memory out of their reach (the plain run shows the attack works)."""
    with reachable_folder(0o755) as folder:
        isolation = folder / "isolation.py"
        shutil.copy(settings.BASE_DIR / "incidents" / "worker" / "isolation.py", isolation)
        attack = folder / "attack.py"
        attack.write_text(ATTACK_PARENT)
        for path in (isolation, attack):
            path.chmod(0o644)
        done = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", agent_python(),
             "-c", WORKER_AS_USER, worker, str(isolation), str(attack)],
            env={"PATH": os.environ["PATH"], "DJANGO_SECRET_KEY": SECRET_KEY},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    if worker == "hardened":
        assert seen == {"environ": "Permission denied", "ptrace": False}
    else:
        assert MARKER in seen["environ"] and seen["ptrace"] is True


def test_a_production_worker_refuses_a_database_file_its_agents_could_read(deployment):
    with reachable_folder(0o755) as folder:  # the mistake under test: a 0644 file in reach
        deployment.db = Path(shutil.copy(deployment.db, folder / "db.sqlite3"))
        deployment.db.chmod(0o644)
        deployment.env["DATABASE_URL"] = f"sqlite:///{deployment.db}"
        deployment.ingest(1)
        done = deployment.triage("environ", MARKER)
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"CommandError: the agent user nobody can read the database {deployment.db}: "
            "chmod 600 it (or use PostgreSQL)"
        )
        assert deployment.rows("SELECT status FROM incidents") == [("pending",)]

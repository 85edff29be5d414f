"""Faults survived: the database going away mid-ingestion, an agent flooding its output, the
workspace disk missing, refusing writes or filling up.

A worker killed with SIGKILL mid-run is recovered by the next worker: that fault is tested in
tests/test_run_triage_command.py
(`test_incident_of_a_worker_killed_mid_run_is_recovered_by_the_next`).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from incidents.choices import Status
from incidents.models import AgentExecution, FaultEvent, Incident
from incidents.roles import viewer_group
from incidents.worker import Mode, Worker, WorkerConfig
from tests.agents import agent_python, agent_script, reachable_folder
from tests.builders import make_incident
from tests.databases import database_url

ROOT = Path(settings.BASE_DIR)
MIB = 1 << 20


def agent(*args: str) -> str:
    return shlex.join([agent_python(), str(agent_script("scripted_agent.py")), *args])


@pytest.fixture
def agent_tmp() -> Path:
    """A workspace root the agents' user (nobody, under a root worker) can reach."""
    with reachable_folder() as folder:
        yield folder


def manage(*args: str, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_DEBUG": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def wait_for(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- the database going away mid-ingestion ---------------------------------------------------------
EVENTS = 60_000
BATCH = 200


def write_events(path: Path, n: int) -> None:
    with path.open("w") as handle:
        for i in range(n):
            record = {
                "faultId": f"kill-{i:07d}",
                "cluster": "prod-us-east-1",
                "faultType": "CrashLoop",
                "severity": "high",
                "timestamp": "2025-12-20T15:30:00Z",
                "resource": {"kind": "Pod", "name": f"api-{i}", "namespace": "payments"},
            }
            handle.write(json.dumps(record) + "\n")


APP_NAME = "triage-under-fault"  # libpq's PGAPPNAME: marks a subprocess's connections


def terminate_backends(application_name: str | None = None) -> int:
    """Kill every other connection to the test database (or those of one application name), as
    a failover or an admin would; how many were killed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND (%s::text IS NULL OR application_name = %s)",
            [connection.settings_dict["NAME"], application_name, application_name],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def fresh_pool_after(transactional_db):
    """Killing backends also kills idle connections in this process's psycopg pool (checks are
    off: CONN_HEALTH_CHECKS = False); start the next test from a new pool."""
    yield
    connection.close()
    connection.close_pool()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_database_killed_mid_ingestion_fails_clearly_and_a_rerun_stores_each_event_once(
    tmp_path,
):
    events = tmp_path / "events.jsonl"
    write_events(events, EVENTS)
    process = manage(
        "ingest_events", str(events), "--batch-size", str(BATCH), env={"PGAPPNAME": APP_NAME}
    )
    try:
        # Kill its connection once some batches have committed and well before the end.
        wait_for(
            lambda: Incident.objects.count() >= 5 * BATCH or process.poll() is not None,
            timeout=120,
            what="the first batches",
        )
        assert process.poll() is None, "ingestion finished before the fault could be injected"
        assert terminate_backends(APP_NAME) >= 1
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr
    assert re.search(
        # psycopg words it by when the kill lands: mid-statement or between statements.
        r"CommandError: database error, stopped: .*(terminating connection due to administrator "
        r"command|server closed the connection unexpectedly|the connection is closed).*"
        r"So far \(committed batches only\): received \d+: created \d+, duplicate 0.*"
        r"Rerun the same input to store the rest",
        stderr,
        re.S,
    ), stderr
    stored = Incident.objects.count()
    assert 0 < stored < EVENTS
    # Batches commit whole: no half batch, and no fault without its incident or the reverse.
    assert stored % BATCH == 0
    assert FaultEvent.objects.count() == stored
    assert not Incident.objects.filter(fault__isnull=True).exists()
    created_before = int(re.search(r"created (\d+)", stderr).group(1))
    assert created_before == stored  # the message counts exactly what was committed

    rerun = manage("ingest_events", str(events), "--batch-size", "5000")
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert stdout.splitlines()[-1] == (
        f"received {EVENTS}: created {EVENTS - stored}, duplicate {stored}, coalesced 0, "
        "silenced 0, rejected 0, ignored 0"
    )
    assert FaultEvent.objects.count() == EVENTS
    assert Incident.objects.count() == EVENTS
    assert Incident.objects.values("fault_id").distinct().count() == EVENTS


# -- an agent writing gigabytes to stdout and stderr ---------------------------------------------
FLOOD_AGENT = textwrap.dedent(
    """
    import os, sys
    total = int(sys.argv[1])
    chunk = b"y" * (1 << 20)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for i in range(total >> 20):
        out.write(chunk)
        if i % 4 == 0:
            err.write(chunk)
    with open(os.environ["TRIAGE_REPORT_FILE"], "w") as report:
        report.write("# Flood\\n\\n" + "The agent printed a lot and still reported. " * 5)
    """
)


def rss_kib() -> int:
    for entry in Path("/proc/self/status").read_text().splitlines():
        if entry.startswith("VmRSS:"):
            return int(entry.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


class PeakRss(threading.Thread):
    """Samples this process's resident memory every 20 ms while the block runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.baseline = rss_kib()
        self.peak = self.baseline
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, rss_kib())

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self.join()
        self.peak = max(self.peak, rss_kib())


@pytest.mark.django_db
def test_agent_writing_gigabytes_has_its_logs_capped_and_worker_memory_stays_flat(
    agent_tmp, settings, capsys
):
    tmp_path = agent_tmp
    settings.TRIAGE_AGENT_LOG_MAX_BYTES = cap = MIB
    flood = 2048 * MIB  # 2 GiB on stdout, 512 MiB on stderr
    incident = make_incident()
    command = shlex.join([agent_python(), "-c", FLOOD_AGENT, str(flood)])
    began = time.monotonic()
    with PeakRss() as memory:
        call_command(
            "run_triage", "--once", "--agent-command", command, "--workspace-root", str(tmp_path)
        )
    elapsed = time.monotonic() - began
    incident.refresh_from_db()
    assert incident.status == Status.RESOLVED, incident.failure_reason
    logs = tmp_path / str(incident.incident_id) / "logs"
    out, err = (logs / "agent.stdout.log").read_bytes(), (logs / "agent.stderr.log").read_bytes()
    note = b"\n[run_triage: log truncated at 1048576 bytes; %d more bytes dropped]\n"
    assert out == b"y" * cap + note % (flood - cap)
    assert err == b"y" * cap + note % (flood // 4 - cap)
    grown_mib = (memory.peak - memory.baseline) / 1024
    with capsys.disabled():
        print(f"\n2.5 GiB of agent output in {elapsed:.1f} s; worker RSS grew {grown_mib:.1f} MiB")
    assert grown_mib < 32, f"worker memory grew {grown_mib:.0f} MiB reading 2.5 GiB of output"


def run_agent_with_file_size_limit(tmp_path: Path, limit: int, agent_code: str) -> dict:
    """Run `run_agent` in a process whose files cannot grow past `limit` bytes (RLIMIT_FSIZE:
    what a full disk or a quota does to a writer, without needing either)."""
    script = textwrap.dedent(
        f"""
        import json, os, resource, sys
        from pathlib import Path
        import django
        django.setup()
        from incidents.worker.agent import run_agent
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        folder = Path({str(tmp_path)!r})
        result = run_agent(
            [sys.executable, "-c", {agent_code!r}], cwd=folder, env=dict(os.environ),
            stdout_log=folder / "out.log", stderr_log=folder / "err.log",
            timeout=20, kill_grace=1, log_limit=10 * 1024 * 1024,
        )
        print(json.dumps({{"returncode": result.returncode, "timed_out": result.timed_out,
                          "dropped": result.dropped_bytes}}))
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "triage_site.settings", "DJANGO_DEBUG": "1"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    result["output"] = done.stdout + done.stderr  # the worker logs to stdout, as JSON
    return result


def test_a_disk_filling_up_mid_run_cuts_the_logs_without_hanging_the_agent(tmp_path):
    # The agent writes 4 MiB; the "disk" takes 64 KiB per file. Before the fix the log reader
    # died on EFBIG, the agent blocked on a full pipe and the run ended "timed out".
    code = "import sys; sys.stdout.buffer.write(b'x' * (4 << 20)); sys.stdout.flush()"
    result = run_agent_with_file_size_limit(tmp_path, 64 * 1024, code)
    assert (result["returncode"], result["timed_out"]) == (0, False)  # not stuck to its timeout
    assert (tmp_path / "out.log").stat().st_size == 64 * 1024
    assert result["dropped"] == 4 * MIB - 64 * 1024
    assert "agent log" in result["output"]
    assert "not writable (File too large)" in result["output"]


# -- the workspace disk: missing, refusing writes, full --------------------------------------------
# A root below a regular file (ENOTDIR) is tested in tests/test_worker.py
# (`test_unusable_workspace_root_stops_claiming_and_drains_nothing`). Tests run as root,
# which ignores permission bits, so the cases below use what refuses root too.


@pytest.mark.django_db
def test_a_workspace_root_deleted_between_runs_is_made_again(agent_tmp):
    root = agent_tmp / "workspaces"
    config = WorkerConfig(agent_command=agent(), workspace_root=root)
    first = make_incident()
    Worker(config, mode=Mode.ONCE).run()
    shutil.rmtree(root)
    second = make_incident()
    Worker(config, mode=Mode.ONCE).run()
    for incident in (first, second):
        incident.refresh_from_db()
        assert incident.status == Status.RESOLVED, incident.failure_reason
    assert (root / str(second.incident_id) / "incident.json").exists()


def _sysfs_refuses_mkdir() -> bool:
    try:
        os.mkdir("/sys/triage-probe")
    except OSError:
        return True
    os.rmdir("/sys/triage-probe")
    return False


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _sysfs_refuses_mkdir(),
    reason="needs Linux sysfs, which refuses new directories even to root",
)
@pytest.mark.django_db
def test_a_workspace_root_on_a_filesystem_refusing_writes_stops_claiming():
    root = Path("/sys/triage-workspaces")
    config = WorkerConfig(agent_command=agent(), workspace_root=root)
    first, second = make_incident(), make_incident()
    summary = Worker(config, mode=Mode.UNTIL_EMPTY).run()
    assert summary.triaged == 0
    assert summary.failure == (f"workspace root {root} unusable: Operation not permitted: {root}")
    for incident in (first, second):  # never claimed: the queue is not drained into failures
        incident.refresh_from_db()
        assert incident.status == Status.PENDING
    assert not AgentExecution.objects.exists()


def limit_file_size(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_full_workspace_disk_fails_each_incident_with_the_reason_and_the_worker_goes_on(
    agent_tmp,
):
    tmp_path = agent_tmp
    # RLIMIT_FSIZE 0: no file the worker writes can hold a byte (EFBIG), as on a full disk.
    first, second = make_incident(), make_incident()
    worker = manage(
        "run_triage", "--until-empty", "--agent-command", agent(),
        "--workspace-root", str(tmp_path), preexec_fn=limit_file_size(0),
    )  # fmt: skip
    stdout, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stderr
    assert "triaged 2: resolved 0, failed 0, agent_failed 2" in stdout
    for incident in (first, second):
        incident.refresh_from_db()
        assert incident.status == Status.AGENT_FAILED
        folder = tmp_path / str(incident.incident_id)
        assert incident.failure_reason == f"workspace {folder} not writable: File too large"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_workspace_disk_filling_up_during_the_run_still_records_the_outcome(agent_tmp):
    tmp_path = agent_tmp
    # Room for the workspace files and the report, not for 4 MiB of agent output.
    incident = make_incident()
    worker = manage(
        "run_triage", "--once", "--agent-command", agent("--stdout-bytes", str(4 * MIB)),
        "--workspace-root", str(tmp_path), "--timeout", "60", preexec_fn=limit_file_size(64 * 1024),
    )  # fmt: skip
    stdout, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 0, stderr
    incident.refresh_from_db()
    # Resolved, not timed out after 60 s (agent_failed): the agent was never blocked.
    assert incident.status == Status.RESOLVED, incident.failure_reason
    log = tmp_path / str(incident.incident_id) / "logs" / "agent.stdout.log"
    assert log.stat().st_size == 64 * 1024
    assert "not writable (File too large)" in stdout + stderr


# -- the database going away under live ingestion (subscribe_mcp's ingest thread) -----------------
def fault_envelope(fault_id: str) -> dict:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {
            "level": "warning",
            "logger": "kubernetes/resource-faults",
            "data": {
                "faultId": fault_id,
                "cluster": "prod-us-east-1",
                "faultType": "CrashLoop",
                "severity": "high",
                "timestamp": "2025-12-20T15:30:00Z",
            },
        },
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_live_ingestion_survives_its_connection_being_killed(caplog, fresh_pool_after):
    from incidents.subscriber import IngestWorker

    worker = IngestWorker(source="mcp-test", batch_size=1)
    worker.start()
    try:
        worker.wait_ready()
        worker.submit(fault_envelope("live-1"), sequence=1)
        wait_for(lambda: worker.counts.created == 1, timeout=10, what="the first event")
        assert terminate_backends() >= 1
        worker.submit(fault_envelope("live-2"), sequence=2)
        wait_for(
            lambda: worker.counts.created == 2 or not worker.is_alive(),
            timeout=30,
            what="the event after the kill",
        )
    finally:
        worker.stop()
        worker.join(timeout=30)
    assert worker.failure is None, f"the ingest thread died: {worker.failure!r}"
    assert set(FaultEvent.objects.values_list("fault_id", flat=True)) == {"live-1", "live-2"}
    assert Incident.objects.count() == 2
    # The kill was felt (and retried on a new connection), not missed.
    assert "terminating connection due to administrator command" in caplog.text


# -- the database restarting under the dashboard --------------------------------------------------
def fill_the_pool(n: int) -> None:
    """Leave n idle connections in the pool, as n concurrent requests would."""
    from django.db import connections

    barrier = threading.Barrier(n)

    def use_a_connection() -> None:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            barrier.wait(timeout=10)  # all n hold one at once
        connections.close_all()  # back to the pool

    threads = [threading.Thread(target=use_a_connection) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_dashboard_answers_after_every_database_connection_was_killed(
    client, django_user_model, fresh_pool_after
):
    client.raise_request_exception = False
    viewer = django_user_model.objects.create_user("viewer", password="x")
    viewer.groups.add(viewer_group())  # recreated: an earlier transactional test flushed it
    client.force_login(viewer)
    incident = make_incident()
    pages = ["/", f"/incidents/{incident.incident_id}/", "/healthz"]
    assert [client.get(page).status_code for page in pages] == [200, 200, 200]
    fill_the_pool(4)
    assert terminate_backends() >= 4  # a PostgreSQL restart, as the pooled connections see it
    assert [client.get(page).status_code for page in pages * 4] == [200, 200, 200] * 4

"""Process counters outside the web server: run_triage's agent runs, --metrics-port, and
gunicorn's multiprocess mode."""

import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from io import StringIO

import pytest
from django.core.management import call_command
from prometheus_client.parser import text_string_to_metric_families

from incidents import metrics
from incidents.ingest import IngestCounts
from tests.agents import reachable_folder
from tests.builders import make_incident


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _samples(text: str) -> dict[str, float]:
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _runs(outcome: str) -> float:
    key = "triage_agent_run_duration_seconds_count" + str([("outcome", outcome)])
    return _samples(metrics.generate_latest(metrics.REGISTRY).decode()).get(key, 0)


@pytest.mark.django_db(transaction=True)
def test_run_triage_observes_each_agent_run():
    make_incident()
    before = _runs("resolved") + _runs("failed") + _runs("agent_failed")
    with reachable_folder() as folder:  # the agent runs as another user when we are root
        root = str(folder / "ws")
        call_command(
            "run_triage", "--once", "--agent-command", "stub", "--workspace-root", root,
            stdout=StringIO(), stderr=StringIO(),
        )  # fmt: skip
    after = _runs("resolved") + _runs("failed") + _runs("agent_failed")
    assert after == before + 1


def test_metrics_port_serves_the_process_counters_and_extra_collectors():
    port = _free_port()
    counts = IngestCounts(received=2, created=1, ignored=1)
    metrics.serve_metrics(("127.0.0.1", port), metrics.IngestCountsCollector("mcp", lambda: counts))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    samples = _samples(text)
    assert (
        samples["triage_ingested_records_total" + str([("outcome", "created"), ("source", "mcp")])]
        == 1
    )
    assert "triage_build_info" in text
    # One family per name: the process's own (empty) ingestion counter is left out.
    assert text.count("# TYPE triage_ingested_records_total counter") == 1


@pytest.mark.parametrize("value", ["0", "70000", "host:", "x", ""])
def test_metrics_port_rejects_bad_values(value):
    with pytest.raises(Exception, match="PORT"):
        metrics.listen_address(value)


def test_metrics_port_values():
    assert metrics.listen_address("9100") == ("127.0.0.1", 9100)
    assert metrics.listen_address("0.0.0.0:9100") == ("0.0.0.0", 9100)  # noqa: S104


def test_multiprocess_mode_adds_up_every_process(tmp_path):
    """Two processes count into PROMETHEUS_MULTIPROC_DIR; a third scrapes the sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = textwrap.dedent(
        """
        import django; django.setup()
        from incidents import metrics
        from incidents.ingest import IngestCounts
        metrics.count_ingested("api", IngestCounts(received=3, created=3))
        metrics.observe_agent_run("failed", 7)
        """
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True)  # noqa: S603
    scrape = textwrap.dedent(
        """
        import django; django.setup()
        from incidents import metrics
        print(metrics.generate_latest(metrics._process_registry()).decode())
        """
    )
    text = subprocess.run(  # noqa: S603
        [sys.executable, "-c", scrape], env=env, check=True, capture_output=True, text=True
    ).stdout
    samples = _samples(text)
    assert (
        samples["triage_ingested_records_total" + str([("outcome", "created"), ("source", "api")])]
        == 6
    )
    assert samples["triage_agent_run_duration_seconds_count" + str([("outcome", "failed")])] == 2

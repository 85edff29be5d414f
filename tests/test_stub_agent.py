"""The shipped stub agent: its reports per fault type, its seeded outcomes, and its process."""

import json
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from incidents import stub_agent
from incidents.rendering import render_markdown
from tests.test_rendering import outline, source_lists

# The k8s4agents template's sections, as real agents write them (../shared/UPSTREAM.md).
SECTIONS = [
    "## 0. Executive Triage Card",
    "### Primary Hypothesis",
    "### Top 3 Recommended Actions",
    "### Escalation Triggers",
    "### Alternative Hypotheses Considered",
    "## 1. Problem Statement",
    "### Exit Criteria Checklist",
    "## 2. Assessment & Findings",
    "### Observed Facts",
    "### Derived Inferences",
    "## 3. Root Cause Analysis",
    "### Remaining Unknowns",
    "## 4. Remediation Plan",
    "## 5. Proof of Work",
    "## 6. Supporting Evidence",
]
FAULT_TYPES = [
    "CrashLoop", "PodCrash", "OOMKilled", "NodeUnhealthy", "DeploymentFailure", "JobFailure",
    "ImagePullBackOff", "FailedScheduling", "ProbeFailure", "SomethingNew",
]  # fmt: skip


def incident_document(**overrides) -> dict:
    document = {
        "incidentId": "0d9c6a52-8f5e-4a8e-9a0e-2a4f0b6f6c11",
        "faultId": "f7a3b2c1d4e5f6a7",
        "cluster": "prod-eu-west-1",
        "faultType": "CrashLoop",
        "severity": "critical",
        "resource": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "checkout-api-7f8b9c",
            "namespace": "checkout",
            "uid": "abc-123",
        },  # fmt: skip
        "context": {
            "context": "Back-off restarting failed container",
            "logs": [
                {
                    "container": "api",
                    "previous": True,
                    "hasPanic": True,
                    "sample": "panic: missing env STRIPE_KEY\ngoroutine 1 [running]:",
                }
            ],
            "restartCount": 14,
        },
        "timestamp": "2025-12-20T15:30:00Z",
    }
    document.update(overrides)
    return document


@pytest.mark.parametrize("fault_type", FAULT_TYPES)
def test_report_is_in_the_k8s4agents_form_and_says_it_is_synthetic(fault_type):
    report = stub_agent.build_report(incident_document(faultType=fault_type))
    assert report.startswith(f"{stub_agent.SYNTHETIC_NOTE}\n\n# Kubernetes Incident Triage Report")
    positions = [report.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert "| `checkout/Pod/checkout-api-7f8b9c` on `prod-eu-west-1` |" in report
    assert "f7a3b2c1d4e5f6a7" in report and f"`{fault_type}`" in report
    assert "**[FACT-1]**" in report and "**[INF-1]**" in report and "- [ ] " in report
    assert "**Evidence For**:\n- " in report  # a list right under the line, as agents write
    assert "\n  - Based on: FACT-1" in report  # sub-items nested by 2 spaces
    assert "panic: missing env STRIPE_KEY" in report  # the log sample, quoted
    assert "`restartCount`" in report  # further context is named
    html = render_markdown(report)
    assert html.startswith("<blockquote>\n<p><strong>Synthetic demo report.</strong>")
    assert html.count("<table>") == 4  # card, actions, classification, mitigation
    assert html.count("<details>") == 2 and html.count("<hr>") == 1
    assert '<code class="md-language-bash">' in html and '<code class="md-language-json">' in html
    lists, nested, _items = source_lists(report)
    page = outline(html)
    assert (page.lists, page.nested) == (lists, nested) and nested == 2
    assert len(page.checkboxes) == report.count("- [ ] ")


def test_each_fault_type_gets_its_own_playbook():
    causes = {
        stub_agent.build_report(incident_document(faultType=fault_type))
        .split("### Primary Hypothesis\n")[1]
        .split(" — ")[0]
        for fault_type in FAULT_TYPES
    }
    assert len(causes) == len(FAULT_TYPES)
    image = stub_agent.build_report(incident_document(faultType="ImagePullBackOff"))
    assert "kubectl -n checkout describe pod checkout-api-7f8b9c" in image


@pytest.mark.parametrize(
    ("fault_type", "playbook"),
    [
        ("NodeNotReady", "NodeUnhealthy"),
        ("BackoffLimitExceeded", "JobFailure"),
        ("PVCPending", "FailedScheduling"),
        ("OOMKilling", "OOMKilled"),
        ("SomethingNew", "generic"),
    ],
)
def test_upstream_names_of_a_fault_use_its_playbook(fault_type, playbook):
    report = stub_agent.build_report(incident_document(faultType=fault_type))
    assert f"- Playbook: `{playbook}` for `{fault_type}`" in report
    assert f"kubernetes-mcp-server fault `{fault_type}`" in report


@pytest.mark.django_db
def test_the_report_page_says_a_stub_report_is_a_synthetic_demo(admin_client):
    from tests.builders import make_incident, make_report

    report = make_report(
        make_incident(status="resolved"),
        report_markdown=stub_agent.build_report(incident_document()),
    )
    html = admin_client.get(report.get_absolute_url()).content.decode()
    body = html[html.index('<article class="prose report-body">') :]
    assert body.index("Synthetic demo report.") < body.index("Kubernetes Incident Triage Report")


def test_a_panic_in_the_logs_is_a_finding():
    report = stub_agent.build_report(incident_document())
    assert "Container `api` (previous instance) logged `panic: missing env STRIPE_KEY`" in report
    assert "1 log sample(s) came with the event, 1 with a panic" in report


def test_log_evidence_reranks_hypotheses():
    quiet = incident_document(faultType="ImagePullBackOff", context="Back-off pulling image")
    denied = incident_document(
        faultType="ImagePullBackOff",
        context={"logs": [{"sample": "401 Unauthorized: authentication required, denied"}]},
    )
    assert "### H1: The tag does not exist" in stub_agent.build_report(quiet)
    ranked = stub_agent.build_report(denied)
    assert "### H1: Registry credentials missing or expired" in ranked
    assert "logs mention 'unauthorized', 'denied'" in ranked


def test_hostile_context_cannot_break_out_of_code_or_tables():
    hostile = incident_document(
        resource={"name": "a|b", "namespace": "ns", "kind": "Pod"},
        context={
            "context": "<script>alert(1)</script>",
            "logs": [{"sample": "```\n# injected heading\n<img src=x onerror=alert(1)>"}],
        },
    )
    report = stub_agent.build_report(hostile)
    assert "````text\n```\n# injected heading" in report  # a longer fence around the backticks
    html = render_markdown(report)
    assert "<script" not in html and "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown as text inside the code block
    assert "<h1>injected heading" not in html and "injected-heading" not in html


@pytest.mark.parametrize("context", ["plain text context", None, ["a", "list"], {}])
def test_any_context_shape_gives_a_report(context):
    report = stub_agent.build_report(incident_document(context=context))
    assert all(section in report for section in SECTIONS)


def test_partial_report_stops_after_the_root_cause():
    report = stub_agent.build_report(incident_document(), partial=True)
    assert "## 3. Root Cause Analysis" in report and "## 4. Remediation" not in report
    assert "Investigation incomplete" in report


def test_outcome_is_deterministic_from_fault_and_timestamp(monkeypatch):
    monkeypatch.delenv("TRIAGE_STUB_OUTCOME", raising=False)
    first = incident_document(incidentId="one")
    second = incident_document(incidentId="two")  # same fault occurrence, another incident
    assert stub_agent.outcome_for(first) == stub_agent.outcome_for(second)


def test_outcome_shares_are_small_and_every_outcome_occurs(monkeypatch):
    monkeypatch.delenv("TRIAGE_STUB_OUTCOME", raising=False)
    counts = Counter(
        stub_agent.outcome_for({"faultId": f"fault-{n}", "timestamp": "2025-12-20T15:30:00Z"})
        for n in range(5000)
    )
    assert set(counts) == set(stub_agent.OUTCOMES)
    for outcome, share in stub_agent.OUTCOME_SHARES.items():
        assert abs(counts[outcome] / 5000 * 100 - share) < 1.5, (outcome, counts)


def test_forced_outcome_and_a_bad_one(monkeypatch):
    monkeypatch.setenv("TRIAGE_STUB_OUTCOME", "crash")
    assert stub_agent.outcome_for(incident_document()) == "crash"
    monkeypatch.setenv("TRIAGE_STUB_OUTCOME", "explode")
    with pytest.raises(ValueError, match="TRIAGE_STUB_OUTCOME must be one of"):
        stub_agent.outcome_for(incident_document())


# -- as a process --------------------------------------------------------------------------------
def run_stub(workspace: Path, outcome: str) -> subprocess.CompletedProcess:
    (workspace / "output").mkdir(parents=True)
    (workspace / "incident.json").write_text(json.dumps(incident_document()))
    env = {
        **os.environ,
        "PYTHONPATH": str(settings.BASE_DIR),
        "TRIAGE_INCIDENT_FILE": str(workspace / "incident.json"),
        "TRIAGE_OUTPUT_DIR": str(workspace / "output"),
        "TRIAGE_STUB_OUTCOME": outcome,
    }
    return subprocess.run(
        [sys.executable, "-m", "incidents.stub_agent"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("outcome", "exit_code", "report_size"),
    [
        ("resolved", 0, range(2000, 20000)),
        ("partial", 3, range(500, 9000)),
        ("crash", 2, None),
        ("missing", 0, None),
        ("small", 0, range(1, 100)),
    ],
)
def test_runs_as_a_module_from_the_workspace(tmp_path, outcome, exit_code, report_size):
    result = run_stub(tmp_path, outcome)
    assert result.returncode == exit_code, result.stderr
    report = tmp_path / "output" / "investigation.md"
    if report_size is None:
        assert not report.exists()
    else:
        assert report.stat().st_size in report_size


def test_unreadable_incident_file_is_exit_two_with_a_reason(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(settings.BASE_DIR)}
    env["TRIAGE_INCIDENT_FILE"] = str(tmp_path / "missing.json")
    result = subprocess.run(
        [sys.executable, "-m", "incidents.stub_agent"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "stub agent: cannot start:" in result.stderr and "missing.json" in result.stderr


# -- the demo's sample events: each workload's logs look like its own ----------------------------
def sample_logs():
    """(workload, log sample) of every record in the demo's sample files."""
    for name in ("events.jsonl", "arriving.jsonl"):
        for line in (Path(settings.BASE_DIR) / "samples" / name).read_text().splitlines():
            record = json.loads(line)
            data = record.get("params", {}).get("data", record)
            data = json.loads(data) if isinstance(data, str) else data
            context = data.get("context")
            nested = context.get("logs") if isinstance(context, dict) else None
            for entry in data.get("logs") or nested or []:
                yield entry["container"], entry["sample"], data


JVM_WORKLOADS = {"spark-driver", "kafka-connect", "indexer"}
PYTHON_WORKLOADS = {"airflow-scheduler", "fraud-scorer", "feature-store", "ledger-worker",
                    "outbox-relay"}  # fmt: skip


def test_sample_logs_match_each_workloads_runtime():
    seen = 0
    for container, sample, _data in sample_logs():
        seen += 1
        if container not in JVM_WORKLOADS:
            assert "java." not in sample and "Exception in thread" not in sample, container
        if container not in PYTHON_WORKLOADS:
            assert "Traceback" not in sample, container
    assert seen > 50


def test_system_pods_in_the_samples_carry_no_service_mesh_sidecar_logs():
    for _container, _sample, data in sample_logs():
        namespace = data.get("resource") or data.get("event", {}).get("involvedObject") or {}
        if namespace.get("namespace") in ("kube-system", "ingress-nginx", "monitoring"):
            assert _container != "istio-proxy"


def test_a_kube_proxy_oom_report_quotes_go_logs_not_a_java_stack_trace():
    generate = pytest.importorskip("samples.generate")
    sample = generate._runtime_sample(generate.JAVA_OOM, "kube-proxy").format(service="kube-proxy")
    report = stub_agent.build_report(
        incident_document(
            faultType="OOMKilled",
            resource={"kind": "Pod", "name": "kube-proxy-x7k2p", "namespace": "kube-system"},
            context={"logs": [{"container": "kube-proxy", "previous": True, "sample": sample}]},
        )
    )
    assert "kube-proxy.go" in report
    assert "java" not in report.lower() and "Exception in thread" not in report


@pytest.mark.parametrize(
    ("outcome", "writes_result"),
    [("resolved", True), ("partial", True), ("crash", True), ("missing", False), ("small", False)],
)
def test_result_json_is_valid_and_its_cost_follows_its_tokens(tmp_path, outcome, writes_result):
    from incidents.stub_agent import MODEL_PRICES
    from incidents.worker.result import parse_result

    run_stub(tmp_path, outcome)
    path = tmp_path / "output" / "result.json"
    assert path.exists() == writes_result
    if not writes_result:
        return
    result = parse_result(path.read_bytes())
    assert result.error == "" and result.model in MODEL_PRICES
    prices = MODEL_PRICES[result.model]
    usage = result.usage
    expected = (
        usage["input_tokens"] * prices[0]
        + usage["output_tokens"] * prices[1]
        + usage["cache_read_tokens"] * prices[2]
    ) / 1_000_000
    assert result.cost_usd == Decimal(str(round(expected, 6))) > 0

"""Headless Chromium (Debian's package, driven by Playwright) against Django's live server.

Every test here is marked `browser` and skips with the reason when /usr/bin/chromium is absent
(`TRIAGE_TEST_CHROMIUM` names another; under CI=true the skip fails the run: see conftest.py).
Screenshots go to var/screenshots/; `make screenshots` copies them to docs/.
Playwright's sync API runs an event loop in the test's thread, which Django's async-safety check
would refuse: DJANGO_ALLOW_ASYNC_UNSAFE lets the ORM run beside it, set only while the browser
runs (see `chromium`).
"""

import json
import os
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from incidents.choices import Severity, Status
from tests.builders import make_execution, make_fault_event, make_incident, make_report

CHROMIUM = Path(os.environ.get("TRIAGE_TEST_CHROMIUM") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "correct horse battery staple"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def chromium() -> Iterator[object]:
    """One browser for this package's tests, stopped after them: while Playwright's loop runs,
    the ORM needs DJANGO_ALLOW_ASYNC_UNSAFE, and nothing outside these tests should inherit it
    (it would leak into subprocesses such as `check --deploy`, too)."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()


@pytest.fixture
def page(chromium) -> Iterator[object]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def sre(django_user_model):
    """An on-call engineer without admin rights: a member of the viewer group."""
    from incidents.roles import viewer_group

    user = django_user_model.objects.create_user("oncall", "oncall@example.com", PASSWORD)
    user.groups.add(viewer_group())
    return user


def screenshot(page, name: str, *, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def open_filters(page) -> None:
    """Unfold the filter panel (folded by default so the incidents come first)."""
    panel = page.locator("details.filters")
    if panel.get_attribute("open") is None:
        panel.locator("summary").click()


def sign_in(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(user.get_username())
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/")


# --- a realistic history: three clusters, every status and severity, reports ----------------

CLUSTERS = ["prod-us-east-1", "prod-eu-west-1", "staging-us-west-2"]
NAMESPACES = ["payments", "checkout", "inventory", "search", "identity", "ingest"]
WORKLOADS = {
    "payments": ["payments-api", "ledger-writer", "fraud-scorer"],
    "checkout": ["checkout-web", "cart-service"],
    "inventory": ["stock-sync", "inventory-api"],
    "search": ["indexer", "query-frontend"],
    "identity": ["auth-gateway", "token-issuer"],
    "ingest": ["kafka-consumer", "event-router"],
}
FAULTS = [
    ("CrashLoop", "Back-off restarting failed container", Severity.CRITICAL),
    ("OOMKilled", "Container exceeded its memory limit (512Mi)", Severity.HIGH),
    ("ImagePullBackOff", "Back-off pulling image: manifest unknown", Severity.MEDIUM),
    (
        "ProbeFailure",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
        Severity.HIGH,
    ),
    ("PVCPending", "waiting for a volume to be created by external provisioner", Severity.MEDIUM),
    ("Evicted", "The node was low on resource: ephemeral-storage", Severity.LOW),
]
FAILURE_REASONS = {
    Status.FAILED: [
        "Root cause not fixable automatically: DATABASE_URL secret missing in namespace",
        "Rollback required: release 2024.12.3 crashes on start (nil pointer in config loader)",
    ],
    Status.AGENT_FAILED: [
        "agent exited with code 137 (killed: out of memory) after 4m",
        "agent timed out after 600 s without writing a report",
    ],
}

REPORT = """# Investigation: {fault} of {namespace}/{name}

## Executive triage card

| field | value |
|---|---|
| cluster | {cluster} |
| severity | {severity} |
| verdict | {verdict} |
| confidence | high |

## What happened

The pod `{name}` in `{namespace}` entered **{fault}** at {when:%H:%M} UTC. The previous container
exited with code 2 after 3.1 s; the restart back-off reached 5m.

## Evidence

```text
{log}
```

- `kubectl describe pod {name}`: last state *Terminated*, reason *Error*.
- The deployment was rolled out 12 minutes before the first restart.

## Recommended actions

1. Restore the `db-credentials` secret (or roll back the deployment).
2. Add a startup check so the pod fails its readiness probe instead of crash-looping.

### Commands

```bash
kubectl -n {namespace} rollout undo deployment/{workload}
kubectl -n {namespace} get events --sort-by=.lastTimestamp | tail -20
```
"""

PANIC_LOG = (
    "2024-12-20T15:29:57Z INFO starting {workload} version=2024.12.3\n"
    "2024-12-20T15:29:58Z \x1b[31mERROR\x1b[0m config: DATABASE_URL is not set\n"
    "panic: missing DATABASE_URL\n\n"
    "goroutine 1 [running]:\nmain.loadConfig(...)\n\t/src/cmd/{workload}/main.go:42 +0x1c5\n"
    "main.main()\n\t/src/cmd/{workload}/main.go:17 +0x25\n"
)


def build_demo_history(count: int = 72, seed: int = 20241220) -> list:
    """Incidents over the last 14 days across CLUSTERS; every status and severity appears.

    Returns the incidents, newest first. Finished ones have an execution and a report; a few
    faults recur (several incidents of one fault).
    """
    rng = random.Random(seed)
    now = timezone.now()
    statuses = [
        *[Status.RESOLVED] * 9,
        *[Status.FAILED] * 3,
        *[Status.AGENT_FAILED] * 2,
        *[Status.INVESTIGATING] * 2,
        *[Status.PENDING] * 2,
    ]
    incidents = []
    events: list = []
    for n in range(count):
        age = timedelta(minutes=3 + n * 14 * 24 * 60 / count + rng.randint(0, 50))
        created = now - age
        if events and rng.random() < 0.15:
            event = rng.choice(events)  # a recurring fault
        else:
            namespace = rng.choice(NAMESPACES)
            workload = rng.choice(WORKLOADS[namespace])
            fault_type, message, severity = rng.choice(FAULTS)
            if rng.random() < 0.25:
                severity = rng.choice(list(Severity))
            name = f"{workload}-{rng.randrange(16**6):06x}-{rng.randrange(36**5):05x}"
            log = PANIC_LOG.format(workload=workload)
            context = {
                "context": message,
                "restartCount": rng.randint(1, 40),
                "node": f"ip-10-{rng.randint(0, 255)}-{rng.randint(0, 255)}-{rng.randint(0, 255)}",
                "logs": [
                    {"container": workload, "previous": True, "hasPanic": True, "sample": log},
                    {
                        "container": "istio-proxy",
                        "previous": False,
                        "hasPanic": False,
                        "sample": '[2024-12-20T15:30:01Z] "GET /healthz HTTP/1.1" 503 UF\n',
                    },
                ],
            }
            event = make_fault_event(
                cluster=rng.choice(CLUSTERS),
                resource_namespace=namespace,
                resource_name=name,
                resource_kind="Pod",
                fault_type=fault_type,
                severity=severity,
                context=json.dumps(context),
                timestamp=created - timedelta(seconds=40),
                save=True,
            )
            events.append(event)
        # The newest are still pending or running; older ones are mostly finished.
        status = (
            statuses[n % len(statuses)] if n > 3 else [Status.PENDING, Status.INVESTIGATING][n % 2]
        )
        busy = any(i.fault_id == event.fault_id and i.is_open for i in incidents)
        if busy and status in (Status.PENDING, Status.INVESTIGATING):
            status = Status.RESOLVED
        started = created + timedelta(seconds=rng.randint(4, 240))
        completed = started + timedelta(seconds=rng.randint(60, 900))
        overrides: dict = {"status": status, "created_at": created, "timestamp": created}
        if status != Status.PENDING:
            overrides["started_at"] = started
        if status in (Status.RESOLVED, Status.FAILED, Status.AGENT_FAILED):
            overrides["completed_at"] = completed
            overrides["exit_code"] = {Status.RESOLVED: 0, Status.FAILED: 1}.get(status, 137)
            if status in FAILURE_REASONS:
                overrides["failure_reason"] = rng.choice(FAILURE_REASONS[status])
        incident = make_incident(event=event, **overrides)
        incidents.append(incident)
        if status in (Status.RESOLVED, Status.FAILED, Status.AGENT_FAILED):
            execution = make_execution(
                incident,
                started_at=started,
                completed_at=completed,
                exit_code=overrides["exit_code"],
                error_message="" if status != Status.AGENT_FAILED else overrides["failure_reason"],
                log_paths=(
                    f"/var/workspaces/{incident.pk}/logs/agent.stdout.log,"
                    f"/var/workspaces/{incident.pk}/logs/agent.stderr.log"
                ),
            )
            if status != Status.AGENT_FAILED:
                workload = event.resource_name.rsplit("-", 2)[0]
                make_report(
                    incident,
                    execution,
                    generated_at=completed,
                    report_markdown=REPORT.format(
                        fault=event.fault_type,
                        namespace=event.resource_namespace,
                        name=event.resource_name,
                        workload=workload,
                        cluster=event.cluster,
                        severity=event.severity,
                        verdict="fixed by rollback"
                        if status == Status.RESOLVED
                        else "needs a human",
                        when=created,
                        log="panic: missing DATABASE_URL\n\tmain.loadConfig() main.go:42",
                    ),
                )
    return sorted(incidents, key=lambda incident: incident.created_at, reverse=True)


@pytest.fixture
def demo_history(transactional_db) -> list:
    from django.core.cache import cache

    cache.clear()
    return build_demo_history()

"""Delivery against a real HTTP receiver on loopback: routing end to end, signatures, retries,
Retry-After, timeouts, permanent failures, crashed and concurrent deliverers."""

import hashlib
import hmac
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from incidents.ingest import IngestionService
from incidents.models import Incident, Notification, NotificationChannel, TriageReport
from incidents.notifications import outbox
from incidents.notifications.channels import create_channel
from incidents.notifications.delivery import Deliverer, DeliveryPolicy, Mode
from incidents.notifications.kinds import DeliveryStatus
from incidents.store import DjangoStateStore
from incidents.worker import Mode as WorkerMode
from incidents.worker import Worker, WorkerConfig
from tests.agents import reachable_folder
from tests.builders import make_execution, make_fault_event
from tests.notify_receiver import Answer, Receiver

pytestmark = pytest.mark.django_db

BASE = "https://triage.example.com"
FAST = DeliveryPolicy(timeout=2, backoff_base=0.05, backoff_cap=0.2, max_attempts=4)
SECRET = "whsec-test-0123456789"


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def webhook(receiver, path, name=None, **overrides):
    values = {"kind": "webhook", "url": receiver.url(path), "secret": SECRET}
    values.update(overrides)
    return create_channel(name=name or path.strip("/"), **values)


def deliver(policy=FAST, mode=Mode.UNTIL_EMPTY, **kwargs):
    return Deliverer(policy, mode=mode, base_url=BASE, poll_interval=0.1, **kwargs).run()


def verified(request, secret=SECRET, tolerance=300) -> dict:
    """What the README tells a receiver to do: recompute the HMAC, compare in constant time,
    refuse an old timestamp; then parse the body."""
    timestamp = request.headers["x-triage-timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(request.headers["x-triage-signature"], f"sha256={expected}")
    assert abs(time.time() - int(timestamp)) <= tolerance
    return json.loads(request.body)


def all_keys() -> list[str]:
    return sorted(str(pk) for pk in Notification.objects.values_list("pk", flat=True))


def queued(receiver, path="/hook", n=1, **channel):
    """A channel, and n incidents opened through the store (each writes its incident_opened)."""
    webhook(receiver, path, **channel)
    store = DjangoStateStore()
    incidents = [store.create_incident(make_fault_event()) for _ in range(n)]
    while outbox.batches_waiting(using="default"):  # routed, as a deliverer would first
        outbox.fan_out(using="default")
    return incidents


# -- end to end -----------------------------------------------------------------------------------
def test_ingested_and_triaged_faults_reach_the_right_channels_with_signatures_that_verify(
    receiver, tmp_path
):
    webhook(receiver, "/all")
    webhook(receiver, "/critical", min_severity="critical")
    webhook(receiver, "/staging", clusters=["staging"])
    create_channel(name="slack", kind="slack", url=receiver.url("/slack"), events=["report_ready"])
    service = IngestionService()
    for fault_id, severity in (("crit", "critical"), ("warn", "warning")):
        service.add(
            {
                "faultId": fault_id,
                "cluster": "prod-us-east-1",
                "faultType": "CrashLoop",
                "severity": severity,
                "resource": {"kind": "Pod", "name": f"api-{fault_id}", "namespace": "payments"},
                "context": "panic: missing DATABASE_URL",
                "timestamp": "2025-12-20T15:30:00Z",
            }
        )
    service.flush()
    with reachable_folder() as folder:
        config = WorkerConfig(agent_command="stub", workspace_root=folder / "ws")
        Worker(config, mode=WorkerMode.UNTIL_EMPTY).run()
    summary = deliver()

    def events(path):
        return sorted(
            (b["event"], b["incident"]["fault_id"]) for b in map(verified, receiver.to(path))
        )

    assert events("/all") == [
        ("incident_opened", "crit"), ("incident_opened", "warn"),
        ("report_ready", "crit"), ("report_ready", "warn"),
    ]  # fmt: skip
    assert events("/critical") == [("incident_opened", "crit"), ("report_ready", "crit")]
    assert receiver.to("/staging") == []
    slack = [json.loads(request.body) for request in receiver.to("/slack")]
    assert len(slack) == 2 and all("blocks" in message for message in slack)
    assert summary.delivered == 8 and summary.failed == summary.retried == 0
    body = next(b for b in map(verified, receiver.to("/all")) if b["event"] == "report_ready")
    incident = Incident.objects.get(pk=body["incident"]["incident_id"])
    assert body["incident"]["url"] == f"{BASE}/incidents/{incident.pk}/"
    assert body["report"]["url"].startswith(f"{BASE}/reports/")
    # The stub agent writes the k8s4agents form, "— Confidence: High (54%)".
    assert body["report"]["root_cause"]
    assert re.fullmatch(r"(High|Medium|Low) \(\d+%\)", body["report"]["confidence"])
    keys = [request.headers["idempotency-key"] for request in receiver.requests]
    assert len(set(keys)) == len(keys) == 8
    assert set(Notification.objects.values_list("status", flat=True)) == {"delivered"}


def test_the_body_names_its_idempotency_key_and_the_signature_covers_the_timestamp(receiver):
    queued(receiver)
    deliver()
    (request,) = receiver.to("/hook")
    body = verified(request)
    assert body["idempotency_key"] == request.headers["idempotency-key"]
    assert request.headers["x-triage-event"] == body["event"] == "incident_opened"
    tampered = type(request)(request.path, {**request.headers, "x-triage-timestamp": "1"},
                             request.body, request.at)  # fmt: skip
    with pytest.raises(AssertionError):
        verified(tampered)
    with pytest.raises(AssertionError):
        verified(request, secret="another secret")


# -- retries --------------------------------------------------------------------------------------
def test_503_twice_then_200_is_one_notification_delivered_with_one_key(receiver):
    queued(receiver)
    receiver.answer("/hook", Answer(503), Answer(503, body=b"still down"))
    summary = deliver()
    requests = receiver.to("/hook")
    assert len(requests) == 3
    assert len({request.headers["idempotency-key"] for request in requests}) == 1
    (row,) = Notification.objects.all()
    assert str(row.pk) == requests[0].headers["idempotency-key"]
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 200)
    assert row.delivered_at is not None and row.last_error == ""
    assert (summary.retried, summary.delivered) == (2, 1)


def test_429_with_retry_after_waits_at_least_that_long(receiver):
    queued(receiver)
    receiver.answer("/hook", Answer(429, headers={"Retry-After": "2"}))
    deliver(mode=Mode.ONCE)
    (row,) = Notification.objects.all()
    assert (row.status, row.last_status_code) == ("pending", 429)
    assert row.next_attempt_at - row.last_attempt_at >= timedelta(seconds=2)
    deliver()
    first, second = receiver.to("/hook")
    assert second.at - first.at >= 2
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("delivered", 2)


def test_a_receiver_that_never_answers_times_out_and_is_retried(receiver):
    queued(receiver)
    receiver.answer("/hook", Answer(hang=True))
    # A backoff of at least half a second: --once must not reach the retry in the same run.
    policy = DeliveryPolicy(timeout=0.5, backoff_base=1, max_attempts=3)
    deliver(policy=policy, mode=Mode.ONCE)
    (row,) = Notification.objects.all()
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error.startswith("timed out after 0.5 s") and row.last_status_code is None
    deliver(policy=policy)
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("delivered", 2)
    assert len(receiver.to("/hook")) == 2


def test_a_refused_connection_is_retried_then_failed_after_the_last_attempt(receiver):
    webhook(receiver, "/hook")
    receiver.server.server_close()  # nothing listens on the port any more
    DjangoStateStore().create_incident(make_fault_event())
    deliver(policy=DeliveryPolicy(timeout=1, backoff_base=0.01, max_attempts=3))
    (row,) = Notification.objects.all()
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error.startswith("gave up after 3 attempts: connection error: ConnectError")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 301])
def test_other_4xx_and_redirects_fail_at_once_and_can_be_retried(receiver, status):
    queued(receiver)
    receiver.answer("/hook", Answer(status, headers={"Location": "https://elsewhere.example/"}))
    summary = deliver()
    (row,) = Notification.objects.all()
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 1, status)
    assert row.last_error.startswith(f"HTTP {status}") and summary.failed == 1
    assert outbox.retry_now([row.pk]) == 1
    deliver()
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("delivered", 1)
    assert len(receiver.to("/hook")) == 2


def test_backoff_grows_and_stays_within_its_jitter():
    import random

    policy = DeliveryPolicy(backoff_base=10, backoff_cap=100)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)]:
        delays = [policy.backoff(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1  # jittered


# -- crashes and concurrency ----------------------------------------------------------------------
def test_a_deliverer_that_dies_after_its_claim_loses_nothing(receiver):
    """In-process stand-in for a crash: a row claimed and never settled is taken again once its
    lease ends, and the others are not held up."""
    queued(receiver, n=3)
    lease = timedelta(seconds=1)
    dead = outbox.claim(using="default", token="dead-deliverer", lease=lease)
    assert dead is not None
    deliver()
    assert Notification.objects.filter(status="delivered").count() == 3
    keys = [request.headers["idempotency-key"] for request in receiver.to("/hook")]
    assert sorted(keys) == sorted(
        str(pk) for pk in Notification.objects.values_list("pk", flat=True)
    )


def test_a_result_after_the_lease_ended_is_not_written(receiver):
    queued(receiver)
    claimed = outbox.claim(using="default", token="slow", lease=timedelta(seconds=-1))
    again = outbox.claim(using="default", token="next", lease=timedelta(seconds=30))
    assert again.pk == claimed.pk
    assert not outbox.settle(using="default", notification=claimed, token="slow", attempts=9)
    assert outbox.settle(using="default", notification=again, token="next", attempts=1)


def database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def start_deliverer(*args: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_DEBUG": "1",
           "TRIAGE_BASE_URL": BASE}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "deliver_notifications", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {condition}")
        time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_deliverer_killed_with_sigkill_mid_batch_loses_nothing(receiver):
    queued(receiver, n=5)
    receiver.answer("/hook", Answer(hang=True))  # the first send never returns
    # A 3 s timeout leaves the test ample time to kill it mid-send, however busy the machine;
    # its lease (3 x 3 + 5 s) is what the next deliverer waits out for that one notification.
    first = start_deliverer("--concurrency", "1", "--timeout", "3")
    try:
        wait_for(lambda: len(receiver.to("/hook")) == 1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    assert Notification.objects.filter(status="pending").count() == 5
    deliver(policy=DeliveryPolicy(timeout=1, backoff_base=0.05))
    assert Notification.objects.filter(status="delivered").count() == 5
    keys = [request.headers["idempotency-key"] for request in receiver.to("/hook")]
    assert sorted(set(keys)) == sorted(
        str(pk) for pk in Notification.objects.values_list("pk", flat=True)
    )
    assert len(keys) == 6  # the interrupted one twice, with the same key


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_deliverers_at_once_deliver_each_notification_once(receiver):
    queued(receiver, n=40)
    workers = [start_deliverer("--until-empty", "--concurrency", "3") for _ in range(2)]
    outputs = [worker.communicate(timeout=60) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    keys = [request.headers["idempotency-key"] for request in receiver.to("/hook")]
    assert len(keys) == len(set(keys)) == 40
    assert Notification.objects.filter(status="delivered", attempts=1).count() == 40
    delivered = [int(out.strip().splitlines()[-1].split()[1].rstrip(",")) for out, _ in outputs]
    assert sum(delivered) == 40


# -- secrets and start-up -------------------------------------------------------------------------
def test_urls_and_secrets_stay_out_of_logs_and_stored_errors(receiver, caplog):
    path = "/services/T0SECRET/B0SECRET/xoxSECRETTOKEN"
    queued(receiver, path=path, name="hook")
    receiver.answer(
        path,
        Answer(500, body=f"bad {path} {SECRET}".encode()),
        Answer(404, body=receiver.url(path).encode()),
    )
    once = DeliveryPolicy(timeout=2, max_attempts=1)
    with caplog.at_level(logging.DEBUG):  # every logger, httpx2's included
        deliver(policy=once)
        outbox.retry_now(Notification.objects.values_list("pk", flat=True))
        deliver(policy=once)
    text = caplog.text + "".join(Notification.objects.values_list("last_error", flat=True))
    assert "gave up after 1 attempts: HTTP 500" in caplog.text and "HTTP 404" in text
    assert "SECRET" not in text and SECRET not in text
    assert len(receiver.to(path)) == 2


def test_the_deliverer_will_not_start_without_a_base_url_when_channels_exist(settings, receiver):
    settings.TRIAGE_BASE_URL = ""
    call_command("deliver_notifications", "--once")  # no channel: nothing to link to
    webhook(receiver, "/hook")
    with pytest.raises(CommandError, match="TRIAGE_BASE_URL is not set"):
        call_command("deliver_notifications", "--once")


def test_the_command_delivers_and_prints_a_summary(receiver, settings, capsys):
    settings.TRIAGE_BASE_URL = BASE
    queued(receiver, n=2)
    call_command("deliver_notifications", "--until-empty", "--concurrency", "1")
    assert capsys.readouterr().out.strip().startswith("delivered 2, retried 0, failed 0 in ")
    assert Notification.objects.filter(status=DeliveryStatus.DELIVERED).count() == 2


def test_a_report_ready_whose_report_is_gone_is_sent_without_it(receiver):
    incident = queued(receiver, events=["report_ready"])[0]
    with transaction.atomic():
        outbox.enqueue("report_ready", incident, report_id="00000000-0000-0000-0000-000000000000")
    deliver()
    (request,) = receiver.to("/hook")
    body = verified(request)
    assert body["report"] is None and body["incident"]["incident_id"] == str(incident.pk)


# -- Slack ----------------------------------------------------------------------------------------
HOSTILE_CARD = """# Triage

## 0. Executive Triage Card

### Primary Hypothesis
<!channel> <https://evil.example|click> & *bold* — Confidence: High
"""


def slack_report(receiver, markdown: str, **fault) -> dict:
    create_channel(name="slack", kind="slack", url=receiver.url("/slack"))
    store = DjangoStateStore()
    incident = store.create_incident(make_fault_event(**fault))
    started = timezone.now() - timedelta(minutes=3, seconds=12)
    store.update_incident_status(incident.pk, "investigating", started_at=started)
    execution = make_execution(incident, started_at=started)
    store.record_triage_report(
        TriageReport(incident=incident, execution=execution, report_markdown=markdown)
    )
    store.complete_incident(incident.pk, 0)
    deliver()
    (request,) = [r for r in receiver.to("/slack") if b"Triage report ready" in r.body]
    assert request.headers["content-type"] == "application/json"
    return json.loads(request.body)


def test_slack_gets_block_kit_with_the_reports_headline_and_a_button(receiver):
    report = settings.BASE_DIR.parent / "shared" / "upstream" / "report-k8s4agents.md"
    markdown = report.read_text() if report.exists() else HOSTILE_CARD
    message = slack_report(
        receiver, markdown, severity="critical", cluster="prod-eu", resource_namespace="pay",
        resource_kind="Pod", resource_name="api-1", fault_type="CrashLoop",
    )  # fmt: skip
    header, fields, headline, actions = message["blocks"]
    assert header["type"] == "header" and "Triage report ready: CrashLoop" in header["text"]["text"]
    texts = [field["text"] for field in fields["fields"]]
    for expected in ("*Severity*\ncritical", "*Cluster*\nprod-eu", "*Resource*\npay/Pod/api-1",
                     "*Fault type*\nCrashLoop", "*Triage took*\n3m 12s"):  # fmt: skip
        assert expected in texts
    if report.exists():
        assert "*Root cause:* The container exits with code 1" in headline["text"]["text"]
        assert "*Confidence:* High" in headline["text"]["text"]
    (view_report, view_incident) = actions["elements"]
    assert view_report["text"]["text"] == "View report" and view_report["style"] == "primary"
    assert view_report["url"].startswith(f"{BASE}/reports/")
    assert view_incident["url"].startswith(f"{BASE}/incidents/")
    assert "critical CrashLoop on pay/Pod/api-1 in prod-eu" in message["text"]


def test_slack_text_from_a_report_cannot_ping_everyone_or_forge_links(receiver):
    message = slack_report(receiver, HOSTILE_CARD)
    headline = message["blocks"][2]["text"]["text"]
    assert "<!channel>" not in headline and "<https://evil" not in headline
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp;" in headline


def test_a_channel_switched_off_after_the_event_sends_nothing_and_keeps_the_row(receiver):
    queued(receiver)
    NotificationChannel.objects.update(enabled=False)
    deliver()
    (row,) = Notification.objects.all()
    assert (row.status, row.last_error) == ("failed", "channel disabled")
    assert receiver.to("/hook") == []


def test_on_call_events_carry_who_and_why_into_slack(receiver):
    create_channel(name="slack", kind="slack", url=receiver.url("/slack"), events=["closed"])
    incident = DjangoStateStore().create_incident(make_fault_event())
    with transaction.atomic():
        note = "<!here> rolled back"
        outbox.enqueue("closed", incident, by="alice", resolution="fixed", note=note)
    deliver()
    (request,) = receiver.to("/slack")
    message = json.loads(request.body)
    assert message["blocks"][0]["text"]["text"].endswith("Incident closed: CrashLoop")
    text = message["blocks"][2]["text"]["text"]
    assert "*By:* alice" in text and "*Resolution:* fixed" in text
    assert "*Note:* &lt;!here&gt; rolled back" in text

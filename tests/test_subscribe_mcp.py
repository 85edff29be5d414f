"""subscribe_mcp: live ingestion from a kubernetes-mcp-server stand-in over loopback.

The stand-in (tests/mcp_standin.py) is a real MCP server built on the SDK's `MCPServer`, run as a
subprocess so it can be killed and restarted. The subscriber runs in a thread of the test process
(its ingest worker has its own database connection, hence transactional tests), except for the
command test, which runs `manage.py subscribe_mcp` itself and stops it with SIGTERM.
"""

import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from mcp import types

from incidents import subscriber as subscriber_module
from incidents.events import parse_record
from incidents.ingest import IngestionService
from incidents.management.commands.subscribe_mcp import read_header_file
from incidents.mcp_client import (
    LogMessage,
    SubscriptionFilters,
    SubscriptionRefused,
    parse_header,
    subscription_id_from,
)
from incidents.models import FaultEvent, Incident
from incidents.subscriber import (
    BACKOFF_CAP,
    FLUSH_AFTER,
    IngestFailed,
    IngestWorker,
    Subscriber,
    SubscriberConfig,
    backoff_delay,
    run_in_thread,
)

STANDIN = Path(__file__).with_name("mcp_standin.py")
SUMMARY = re.compile(
    r"^received (\d+): created (\d+), duplicate (\d+), coalesced (\d+), silenced (\d+), "
    r"rejected (\d+), ignored (\d+)$"
)


# -- helpers and fixtures -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def read_calls(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def standin() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start stand-in servers; every one is killed at teardown, whatever the test did."""
    processes: list[subprocess.Popen] = []

    def start(port: int, *args: str, wait: bool = True) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, str(STANDIN), "--port", str(port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        if wait:
            wait_until(lambda: listening(port), timeout=20, what=f"the stand-in on port {port}")
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.fixture
def subscriber_thread() -> Iterator[Callable[[SubscriberConfig], Subscriber]]:
    """Run subscribers in threads; each is stopped and joined at teardown."""
    running: list[tuple[Subscriber, object]] = []

    def start(config: SubscriberConfig) -> Subscriber:
        subscriber, thread = run_in_thread(config)
        running.append((subscriber, thread))
        return subscriber

    yield start
    for subscriber, thread in running:
        subscriber.stop()
        thread.join(timeout=30)


def stop(subscriber: Subscriber) -> None:
    """Stop a subscriber started by `subscriber_thread` and wait until it has written everything."""
    subscriber.stop()
    subscriber.worker.join(timeout=30)
    assert not subscriber.worker.is_alive()


def settled(subscriber: Subscriber, count: int) -> Callable[[], bool]:
    """True once `count` notifications have been received and every one has an outcome."""

    def check() -> bool:
        c = subscriber.counts
        outcomes = c.created + c.duplicate + c.coalesced + c.rejected + c.ignored
        return subscriber.notifications >= count and outcomes >= count

    return check


def config_for(port: int, **overrides) -> SubscriberConfig:
    values = {"url": f"http://127.0.0.1:{port}/mcp", "heartbeat_interval": 0.3}
    values.update(overrides)
    return SubscriberConfig(**values)


def lone_fault_envelope(fault_id: str) -> dict:
    return LogMessage(
        level="warning",
        logger="kubernetes/resource-faults",
        data={
            "faultId": fault_id,
            "cluster": "prod",
            "faultType": "OOMKilled",
            "severity": "high",
            "timestamp": "2026-01-05T10:00:00Z",
        },
    ).envelope()


# -- pure parts -----------------------------------------------------------------------------------
def test_backoff_starts_at_one_second_doubles_and_stops_at_thirty():
    rng = random.Random(7)
    nominal = [1, 2, 4, 8, 16, 30, 30, 30]
    for attempt, expected in enumerate(nominal):
        delays = [backoff_delay(attempt, rng=rng) for _ in range(200)]
        assert all(0.8 * expected <= delay <= expected for delay in delays), attempt
        assert len(set(delays)) > 1, "no jitter"
    assert backoff_delay(10_000, rng=rng) <= BACKOFF_CAP


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Authorization: Bearer abc:def", ("Authorization", "Bearer abc:def")),
        ("X-Cluster:prod", ("X-Cluster", "prod")),
        ("X-Empty:", ("X-Empty", "")),
    ],
)
def test_parse_header_splits_at_the_first_colon(raw, expected):
    assert parse_header(raw) == expected


@pytest.mark.parametrize("raw", ["Authorization Bearer abc", ": value", "Bad Name: v"])
def test_parse_header_refuses_what_is_not_name_colon_value(raw):
    with pytest.raises(ValueError, match="Name: value"):
        parse_header(raw)


def test_subscription_id_is_read_from_upstreams_markdown_text():
    text = '# Event Subscription Created\n\n{\n  "subscriptionId": "sub-7f3a",\n  "mode": "x"\n}'
    result = types.CallToolResult(content=[types.TextContent(type="text", text=text)])
    assert subscription_id_from(result) == "sub-7f3a"


def test_subscription_id_is_read_from_structured_content():
    result = types.CallToolResult(content=[], structured_content={"subscriptionId": "sub-1"})
    assert subscription_id_from(result) == "sub-1"


def test_a_subscribe_answer_without_an_id_is_refused():
    result = types.CallToolResult(content=[types.TextContent(type="text", text="# No luck")])
    with pytest.raises(SubscriptionRefused, match="no subscriptionId"):
        subscription_id_from(result)


def test_filters_become_events_subscribe_arguments_and_unset_ones_are_left_out():
    assert SubscriptionFilters().arguments() == {"mode": "resource-faults"}
    filters = SubscriptionFilters(
        mode="faults", cluster="prod", namespace="payments", label_selector="app=api"
    )
    assert filters.arguments() == {
        "mode": "faults",
        "cluster": "prod",
        "namespace": "payments",
        "namespaces": ["payments"],
        "labelSelector": "app=api",
    }


def test_a_notification_is_wrapped_in_the_envelope_ingest_events_reads():
    payload = {
        "faultId": "f7a3b2c1d4e5f6a7",
        "cluster": "prod-us-east-1",
        "faultType": "CrashLoop",
        "severity": "critical",
        "timestamp": "2025-12-20T15:30:00Z",
    }
    message = LogMessage(level="warning", logger="kubernetes/resource-faults", data=payload)
    envelope = message.envelope()
    assert envelope == {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "warning", "logger": "kubernetes/resource-faults", "data": payload},
    }
    assert parse_record(envelope).fault_id == "f7a3b2c1d4e5f6a7"


# -- against the stand-in -------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_notifications_become_incidents_and_the_rest_is_counted(
    standin, subscriber_thread, tmp_path
):
    port = free_port()
    calls = tmp_path / "calls.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    standin(port, "--scenario", "mixed", "--tag", "a", "--record", str(calls))
    subscriber = subscriber_thread(
        config_for(
            port,
            filters=SubscriptionFilters(cluster="prod", namespace="payments", label_selector="x=y"),
            headers={"Authorization": "Bearer s3cret"},
            rejects_path=rejects,
        )
    )
    wait_until(settled(subscriber, 6), timeout=20, what="6 notifications with an outcome")
    stop(subscriber)

    counts = subscriber.counts
    assert (counts.received, counts.created, counts.rejected, counts.ignored) == (6, 3, 1, 2)
    assert subscriber.subscription_errors == 1  # and counted as ignored by the service
    assert Incident.objects.count() == 3
    stored = set(FaultEvent.objects.values_list("fault_id", flat=True))
    assert {"a-000001", "a-000002"} < stored  # the kubernetes/resource-faults shape
    event_shape = FaultEvent.objects.get(resource_name="web-a")  # the kubernetes/faults shape
    assert (event_shape.fault_type, event_shape.resource_namespace) == ("BackOff", "shop")
    (rejected,) = rejects.read_text().splitlines()
    assert json.loads(rejected)["params"]["data"]["severity"] == "apocalyptic"

    subscribe_call, unsubscribe_call = read_calls(calls)
    assert subscribe_call["tool"] == "events_subscribe"
    assert subscribe_call["arguments"]["mode"] == "resource-faults"
    assert subscribe_call["arguments"]["cluster"] == "prod"
    assert subscribe_call["arguments"]["labelSelector"] == "x=y"
    assert subscribe_call["authorization"] == "Bearer s3cret"
    assert unsubscribe_call == {
        "tool": "events_unsubscribe",
        "arguments": {"subscriptionId": "sub-a-1"},
        "authorization": "Bearer s3cret",
    }


@pytest.mark.django_db(transaction=True)
def test_a_killed_and_restarted_server_is_resubscribed_and_later_events_are_stored(
    standin, subscriber_thread, tmp_path
):
    port = free_port()
    first_calls, second_calls = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first = standin(port, "--tag", "a", "--record", str(first_calls))
    subscriber = subscriber_thread(config_for(port))
    wait_until(settled(subscriber, 6), timeout=20, what="the first server's notifications")

    first.kill()
    first.wait(timeout=10)
    wait_until(lambda: subscriber.reconnects >= 1, timeout=10, what="the loss to be noticed")
    standin(port, "--tag", "b", "--record", str(second_calls))
    wait_until(settled(subscriber, 12), timeout=30, what="the restarted server's notifications")
    stop(subscriber)

    assert subscriber.subscriptions == 2
    assert [call["tool"] for call in read_calls(second_calls)] == [
        "events_subscribe",
        "events_unsubscribe",
    ]
    assert FaultEvent.objects.filter(fault_id__in=["b-000001", "b-000002"]).count() == 2
    assert FaultEvent.objects.filter(fault_id__startswith="a-").count() == 2
    assert subscriber.counts.created == 6
    assert Incident.objects.count() == 6


@pytest.mark.django_db(transaction=True)
def test_a_server_restarted_between_heartbeats_is_noticed_by_its_unknown_session(
    standin, subscriber_thread, caplog
):
    port = free_port()
    first = standin(port, "--tag", "a")
    subscriber = subscriber_thread(config_for(port, heartbeat_interval=4.0))
    wait_until(settled(subscriber, 6), timeout=20, what="the first server's notifications")
    first.kill()
    first.wait(timeout=10)
    standin(port, "--tag", "b")  # up again before the next ping
    assert subscriber.reconnects == 0
    wait_until(settled(subscriber, 12), timeout=30, what="the restarted server's notifications")
    stop(subscriber)
    assert subscriber.subscriptions == 2
    assert "MCPError: Session not found" in caplog.text  # the new server never saw it
    assert FaultEvent.objects.filter(fault_id__in=["b-000001", "b-000002"]).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_server_that_stops_answering_is_left_and_resubscribed_when_it_answers_again(
    standin, subscriber_thread, caplog
):
    port = free_port()
    server = standin(port, "--tag", "h", "--interval", "0.2")
    subscriber = subscriber_thread(config_for(port, request_timeout=1.0))
    wait_until(settled(subscriber, 6), timeout=20, what="the first notifications")
    server.send_signal(signal.SIGSTOP)  # alive, port open, but silent: a network partition
    try:
        wait_until(lambda: subscriber.reconnects >= 1, timeout=10, what="the silence noticed")
    finally:
        server.send_signal(signal.SIGCONT)
    wait_until(lambda: subscriber.subscriptions >= 2, timeout=30, what="a new subscription")
    stop(subscriber)
    assert re.search(r"failed: (ReadTimeout|MCPError: .*timed out)", caplog.text)
    counts = subscriber.counts
    assert counts.created + counts.rejected + counts.ignored == counts.received


@pytest.mark.django_db(transaction=True)
def test_a_notification_stream_quiet_for_longer_than_the_request_timeout_stays_open(
    standin, subscriber_thread
):
    port = free_port()
    standin(port, "--tag", "q", "--interval", "2.5")  # 2.5 s of silence between faults
    subscriber = subscriber_thread(config_for(port, request_timeout=1.0))
    wait_until(settled(subscriber, 8), timeout=20, what="two faults after quiet spells")
    stop(subscriber)
    assert subscriber.subscriptions == 1 and subscriber.reconnects == 0


@pytest.mark.django_db(transaction=True)
def test_a_notification_stream_the_sdk_gave_up_on_leads_to_a_new_subscription(
    standin, subscriber_thread, caplog
):
    port = free_port()
    standin(port, "--tag", "g", "--interval", "0.3", "--break-stream-after", "2")
    subscriber = subscriber_thread(config_for(port, stream_grace=1.5))
    wait_until(
        lambda: "notification stream has been closed" in caplog.text,
        timeout=20,
        what="the lost stream noticed while pings still succeed",
    )
    before = subscriber.notifications
    wait_until(
        lambda: subscriber.notifications >= before + 6,
        timeout=30,
        what="notifications on a new subscription",
    )
    stop(subscriber)
    assert subscriber.subscriptions >= 2
    counts = subscriber.counts
    outcomes = counts.created + counts.coalesced + counts.rejected + counts.ignored
    assert outcomes == counts.received  # the event-shape fault repeats: coalesced


@pytest.mark.django_db(transaction=True)
def test_a_thousand_events_sent_as_fast_as_possible_are_all_stored(
    standin, subscriber_thread, capsys
):
    port = free_port()
    standin(port, "--scenario", "burst", "--count", "1000", "--tag", "burst")
    started = time.monotonic()
    subscriber = subscriber_thread(config_for(port, heartbeat_interval=5.0))
    wait_until(settled(subscriber, 1000), timeout=120, what="1,000 stored notifications")
    elapsed = time.monotonic() - started
    stop(subscriber)

    assert subscriber.notifications == 1000
    assert subscriber.counts.created == 1000
    assert FaultEvent.objects.filter(fault_id__startswith="burst-").count() == 1000
    assert Incident.objects.filter(fault__fault_id__startswith="burst-").count() == 1000
    with capsys.disabled():
        print(f"\n1,000 notifications received and stored in {elapsed:.2f} s ({connection.vendor})")


@pytest.mark.django_db(transaction=True)
def test_a_lone_event_is_stored_within_a_second_without_waiting_for_a_full_batch():
    envelope = lone_fault_envelope("lone-1")
    worker = IngestWorker(source="test", batch_size=1000)
    worker.start()
    try:
        worker.wait_ready()
        submitted = time.monotonic()
        worker.submit(envelope, sequence=1)
        wait_until(lambda: worker.counts.created == 1, timeout=5, what="the lone event")
        assert time.monotonic() - submitted < 1.0
        assert FLUSH_AFTER < 1.0
    finally:
        worker.stop()
        worker.join(timeout=30)
    assert FaultEvent.objects.filter(fault_id="lone-1").exists()


@pytest.mark.django_db(transaction=True)
def test_max_events_hook_stops_after_n_notifications_flushed_and_unsubscribed(standin, tmp_path):
    port = free_port()
    calls = tmp_path / "calls.jsonl"
    standin(port, "--tag", "m", "--record", str(calls))
    subscriber, thread = run_in_thread(config_for(port, max_events=2))
    thread.join(timeout=30)
    assert not thread.is_alive()
    # What arrived while unsubscribing is kept too: at least 2, every one with an outcome.
    counts = subscriber.counts
    assert counts.received == subscriber.notifications >= 2
    assert counts.created + counts.rejected + counts.ignored == counts.received
    assert FaultEvent.objects.filter(fault_id__in=["m-000001", "m-000002"]).count() == 2
    assert [call["tool"] for call in read_calls(calls)] == [
        "events_subscribe",
        "events_unsubscribe",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_stop_while_waiting_to_reconnect_returns_at_once():
    subscriber, thread = run_in_thread(config_for(free_port()))  # nobody listens there
    wait_until(lambda: subscriber.reconnects >= 1, timeout=10, what="a refused connection")
    asked = time.monotonic()
    subscriber.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - asked < 1.0
    assert subscriber.subscriptions == 0 and subscriber.counts.received == 0


def test_notifications_the_database_never_takes_are_counted_as_unsaved(monkeypatch, caplog):
    def refuse(self):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(subscriber_module, "WRITE_RETRY_DELAY", 0)
    monkeypatch.setattr(IngestionService, "flush", refuse)
    worker = IngestWorker(source="test")
    worker.start()
    worker.wait_ready()
    worker.submit(lone_fault_envelope("unsaved-1"), sequence=1)
    worker.stop()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert worker.unsaved == 1 and worker.write_failures == 3
    assert "giving up: 1 received notifications could not be stored" in caplog.text


def test_a_dead_ingest_worker_stops_the_subscriber_with_its_reason(tmp_path):
    unwritable = tmp_path / "no-such-directory" / "rejects.jsonl"
    subscriber = Subscriber(config_for(free_port(), rejects_path=unwritable))
    started = time.monotonic()
    with pytest.raises(IngestFailed, match="No such file or directory"):
        subscriber.run(install_signal_handlers=False)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--url", "127.0.0.1:8080/mcp"], "http:// or https://"),
        (["--url", "http://h/mcp", "--header", "no colon here"], "Name: value"),
        (["--url", "http://h/mcp", "--mode", "events"], "invalid choice"),
        (["--url", "http://h/mcp", "--heartbeat", "0"], "not a positive number"),
    ],
)
def test_command_refuses_bad_arguments_with_a_clear_message(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("subscribe_mcp", *arguments)


def test_header_file_lines_become_headers_and_a_bad_line_is_named_not_echoed(tmp_path):
    good = tmp_path / "headers"
    good.write_text("# for prod\nAuthorization: Bearer s3cret\n\nX-Tenant: payments\n")
    assert read_header_file(good) == {"Authorization": "Bearer s3cret", "X-Tenant": "payments"}
    bad = tmp_path / "bad-headers"
    bad.write_text("Authorization Bearer s3cret\n")
    with pytest.raises(CommandError, match="line 1") as refused:
        read_header_file(bad)
    assert "s3cret" not in str(refused.value)


# -- the command, as a process --------------------------------------------------------------------
@pytest.fixture
def subprocess_database_url(tmp_path, transactional_db) -> str:
    """A DATABASE_URL a child process can share with this test.

    PostgreSQL: this test's own test database. SQLite: the suite's database is in memory, so a
    migrated file database instead (the test then reads the child's counts, not the ORM).
    """
    if connection.vendor == "postgresql":
        parts = urlsplit(os.environ["DATABASE_URL"])
        return parts._replace(path="/" + connection.settings_dict["NAME"]).geturl()
    url = f"sqlite:///{tmp_path / 'subscriber.sqlite3'}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=settings.BASE_DIR,
        env=child_env(url),
        check=True,
        timeout=120,
    )
    return url


def child_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    env.update({"DJANGO_DEBUG": "1", "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"})
    return env


def test_command_retries_until_the_server_is_up_then_sigterm_unsubscribes_and_exits_0(
    standin, subprocess_database_url, tmp_path
):
    port = free_port()
    calls = tmp_path / "calls.jsonl"
    output = tmp_path / "subscriber.log"
    header_file = tmp_path / "headers"
    header_file.write_text("Authorization: Bearer t0ken\n")
    with output.open("w") as out:
        command = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "subscribe_mcp",
                "--url",
                f"http://127.0.0.1:{port}/mcp",
                "--mode",
                "faults",
                "--header-file",
                str(header_file),
                "--heartbeat",
                "0.5",
                "--status-interval",
                "0.5",
            ],
            cwd=settings.BASE_DIR,
            env=child_env(subprocess_database_url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        log = output.read_text
        wait_until(lambda: "reconnecting to" in log(), timeout=30, what="a failed first attempt")
        standin(port, "--tag", "c", "--interval", "0.2", "--record", str(calls))
        wait_until(
            lambda: re.search(r"created ([4-9]|\d\d+)", log()) is not None,
            timeout=30,
            what="a status line with 4 or more created",
        )
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=30) == 0, log()
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(timeout=10)

    text = log()
    assert re.search(r"connecting to \S+ \(attempt 1\)", text)
    assert "ConnectError" in text  # the refused connection is logged with its reason
    assert "SIGTERM received" in text
    assert "subscription error from" in text
    summary = SUMMARY.match(text.strip().splitlines()[-1])
    assert summary is not None, text
    received, created, _, _, _, rejected, ignored = map(int, summary.groups())
    assert created >= 4 and rejected == 1 and ignored == 2
    assert received == created + rejected + ignored
    tools = [call["tool"] for call in read_calls(calls)]
    assert tools == ["events_subscribe", "events_unsubscribe"]
    assert read_calls(calls)[0]["arguments"]["mode"] == "faults"
    assert read_calls(calls)[0]["authorization"] == "Bearer t0ken"
    if connection.vendor == "postgresql":
        assert FaultEvent.objects.filter(fault_id__startswith="c-").count() == created - 1
        assert Incident.objects.count() == created


def test_a_full_ingest_queue_drops_and_counts_instead_of_growing(caplog):
    worker = subscriber_module.IngestWorker(
        source="mcp", max_backlog=3
    )  # not started: nothing drains it
    with caplog.at_level(logging.ERROR, logger="incidents.subscriber"):
        for sequence in range(5):
            worker.submit({"params": {}}, sequence=sequence)
    assert (worker.backlog(), worker.dropped) == (3, 2)
    assert "ingest queue full" in caplog.text
    worker.stop()  # returns although the queue is full and no thread runs

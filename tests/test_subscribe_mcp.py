"""subscribe_mcp: live ingestion from a kubernetes-mcp-server stand-in over loopback.

The stand-in (tests/mcp_standin.py) is a real MCP server built on the SDK's `MCPServer`, run as a
subprocess so it can be killed and restarted. The subscriber runs in a thread of the test process
(its ingest worker has its own database connection, hence transactional tests), except for the
command test, which runs `manage.py subscribe_mcp` itself and stops it with SIGTERM.
"""

import asyncio
import json
import logging
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from incidents import ingest_worker as worker_module
from incidents import subscriber as subscriber_module
from incidents.context import upstream_view
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
    IngestFailed,
    IngestWorker,
    Subscriber,
    SubscriberConfig,
    backoff_delay,
    run_in_thread,
)
from tests.databases import database_url

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
    """The stand-in's record of logging/setLevel and tool calls, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def call_names(path: Path) -> list[str]:
    return [call["call"] for call in read_calls(path)]


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
        logger="kubernetes/faults",
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


def test_events_subscribe_gets_upstreams_arguments_only():
    # No `cluster` (the fork has none), no namespaces/labelSelector (ignored in faults mode).
    assert SubscriptionFilters().arguments() == {"mode": "faults"}
    assert SubscriptionFilters(mode="events").arguments() == {"mode": "events"}
    assert SubscriptionFilters(mode="resource-faults").arguments() == {"mode": "faults"}
    assert SubscriptionFilters(context="kind-b").arguments() == {
        "mode": "faults",
        "context": "kind-b",
    }


def test_a_notification_is_wrapped_in_the_envelope_ingest_events_reads():
    payload = {
        "faultId": "f7a3b2c1d4e5f6a7",
        "cluster": "prod-us-east-1",
        "faultType": "CrashLoop",
        "severity": "critical",
        "timestamp": "2025-12-20T15:30:00Z",
    }
    message = LogMessage(level="warning", logger="kubernetes/faults", data=payload)
    envelope = message.envelope()
    assert envelope == {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "warning", "logger": "kubernetes/faults", "data": payload},
    }
    assert parse_record(envelope).fault_id == "f7a3b2c1d4e5f6a7"


# -- against the stand-in -------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_faults_become_incidents_with_what_upstream_sent_kept(standin, subscriber_thread, tmp_path):
    port = free_port()
    calls = tmp_path / "calls.jsonl"
    rejects = tmp_path / "rejects.jsonl"
    standin(port, "--tag", "a", "--record", str(calls), "--bad-timestamp")
    subscriber = subscriber_thread(
        config_for(port, headers={"Authorization": "Bearer s3cret"}, rejects_path=rejects)
    )
    wait_until(settled(subscriber, 7), timeout=20, what="7 notifications with an outcome")
    stop(subscriber)

    # Issue 20 F2, live: the year-9999 fault is rejected naming the field, and the subscriber
    # stores the faults before and after it.
    counts = subscriber.counts
    assert (counts.received, counts.created, counts.rejected, counts.ignored) == (7, 6, 1, 0)
    assert Incident.objects.count() == 6
    (rejected,) = rejects.read_text().splitlines()
    assert json.loads(rejected)["params"]["data"]["timestamp"] == "9999-12-31T23:30:00-01:00"
    assert FaultEvent.objects.filter(resource_uid="uid-job-a-10000").exists()

    node = FaultEvent.objects.get(resource_kind="Node")
    assert (node.cluster, node.resource_namespace, node.severity) == (
        "kind-standin",
        "",
        "critical",
    )
    crash = upstream_view(FaultEvent.objects.get(fault_type="PodCrash"))
    assert (crash["severity"], crash["cluster"]) == ("warning", "kind-standin")
    enriched = FaultEvent.objects.get(resource_name="web-a")
    sent = json.loads(upstream_view(enriched)["raw"])["params"]["data"]
    assert upstream_view(enriched)["context"] == sent["context"]  # the JSON-array string
    assert json.loads(sent["context"])[0]["hasPanic"] is True
    assert enriched.fault_id == sent["faultId"]

    set_level, subscribe_call, unsubscribe_call = read_calls(calls)
    assert set_level["call"] == "logging/setLevel"  # before subscribing, or nothing arrives
    assert subscribe_call["call"] == "events_subscribe"
    assert subscribe_call["arguments"] == {"mode": "faults", "namespaces": None,
                                           "labelSelector": None}  # fmt: skip
    assert subscribe_call["authorization"] == "Bearer s3cret"
    assert unsubscribe_call["call"] == "events_unsubscribe"
    assert re.fullmatch(r"sub-[0-9a-f]{8}", subscriber.subscription_id)
    assert unsubscribe_call["arguments"] == {"subscriptionId": subscriber.subscription_id}
    assert unsubscribe_call["authorization"] == "Bearer s3cret"


@pytest.mark.django_db(transaction=True)
def test_an_in_cluster_server_without_cluster_is_rejected_with_the_hint(standin, subscriber_thread):
    port = free_port()
    standin(port, "--tag", "n", "--in-cluster")
    subscriber = subscriber_thread(config_for(port))
    wait_until(settled(subscriber, 5), timeout=20, what="5 notifications with an outcome")
    stop(subscriber)
    assert (subscriber.counts.received, subscriber.counts.rejected) == (5, 5)
    assert not Incident.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_events_mode_counts_kubernetes_events_and_subscription_errors_as_ignored(
    standin, subscriber_thread, tmp_path
):
    port = free_port()
    calls = tmp_path / "calls.jsonl"
    standin(port, "--tag", "e", "--record", str(calls))
    subscriber = subscriber_thread(config_for(port, filters=SubscriptionFilters(mode="events")))
    wait_until(settled(subscriber, 3), timeout=20, what="2 events and a subscription error")
    stop(subscriber)
    counts = subscriber.counts
    assert (counts.received, counts.ignored, counts.created) == (3, 3, 0)
    assert subscriber.subscription_errors == 1
    assert not FaultEvent.objects.exists()
    assert read_calls(calls)[1]["arguments"]["mode"] == "events"


@pytest.mark.django_db(transaction=True)
def test_context_picks_the_cluster_on_a_multi_context_server(standin, subscriber_thread, tmp_path):
    port = free_port()
    calls = tmp_path / "calls.jsonl"
    standin(port, "--tag", "m", "--contexts", "kind-a,kind-b", "--record", str(calls))
    subscriber = subscriber_thread(config_for(port, filters=SubscriptionFilters(context="kind-b")))
    wait_until(settled(subscriber, 5), timeout=20, what="5 faults")
    stop(subscriber)
    assert read_calls(calls)[1]["arguments"]["context"] == "kind-b"
    assert set(FaultEvent.objects.values_list("cluster", flat=True)) == {"kind-b"}


@pytest.mark.parametrize(
    ("standin_args", "filters", "words"),
    [
        (["--no-subscribe-tool"], SubscriptionFilters(), "Unknown tool: events_subscribe"),
        ([], SubscriptionFilters(mode="bogus"), "invalid mode: must be 'events' or 'faults'"),
        (["--contexts", "kind-a"], SubscriptionFilters(context="nope"), "'nope' not found"),
    ],
    ids=["no tool", "invalid mode", "tool error"],
)
@pytest.mark.django_db(transaction=True)
def test_a_refused_subscription_stops_with_the_servers_words(
    standin, standin_args, filters, words, caplog
):
    port = free_port()
    standin(port, *standin_args)
    subscriber = Subscriber(config_for(port, filters=filters))
    with pytest.raises(SubscriptionRefused, match=re.escape(words)):
        subscriber.run(install_signal_handlers=False)
    assert subscriber.subscriptions == 0 and subscriber.reconnects == 0
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "refused the subscription" in error.getMessage() and words in error.getMessage()


@pytest.mark.django_db(transaction=True)
def test_a_killed_and_restarted_server_is_resubscribed_and_later_events_are_stored(
    standin, subscriber_thread, tmp_path
):
    port = free_port()
    first_calls, second_calls = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first = standin(port, "--tag", "a", "--record", str(first_calls), "--in-cluster")
    subscriber = subscriber_thread(config_for(port, cluster="prod-eu-1"))
    wait_until(settled(subscriber, 5), timeout=20, what="the first server's notifications")

    first.kill()
    first.wait(timeout=10)
    wait_until(lambda: subscriber.reconnects >= 1, timeout=10, what="the loss to be noticed")
    standin(port, "--tag", "b", "--record", str(second_calls), "--in-cluster")
    wait_until(settled(subscriber, 10), timeout=30, what="the restarted server's notifications")
    stop(subscriber)

    assert subscriber.subscriptions == 2
    assert call_names(second_calls) == [
        "logging/setLevel",
        "events_subscribe",
        "events_unsubscribe",
    ]
    assert FaultEvent.objects.filter(resource_uid__endswith="-a").count() == 5
    assert FaultEvent.objects.filter(resource_uid__endswith="-b").count() == 5
    assert subscriber.counts.created == 10
    # --cluster named every record; what the in-cluster server said ("") is kept beside it.
    assert set(Incident.objects.values_list("cluster", flat=True)) == {"prod-eu-1"}
    assert {upstream_view(f)["server_cluster"] for f in FaultEvent.objects.all()} == {""}


@pytest.mark.django_db(transaction=True)
def test_a_server_restarted_between_heartbeats_is_noticed_by_its_unknown_session(
    standin, subscriber_thread, caplog
):
    port = free_port()
    first = standin(port, "--tag", "a")
    # Long enough for the restart to finish before the next ping on a loaded machine.
    subscriber = subscriber_thread(config_for(port, heartbeat_interval=8.0))
    wait_until(settled(subscriber, 5), timeout=20, what="the first server's notifications")
    first.kill()
    first.wait(timeout=10)
    standin(port, "--tag", "b")  # up again before the next ping
    assert subscriber.reconnects == 0
    wait_until(settled(subscriber, 10), timeout=30, what="the restarted server's notifications")
    stop(subscriber)
    assert subscriber.subscriptions == 2
    assert "MCPError: Session not found" in caplog.text  # the new server never saw it
    assert FaultEvent.objects.filter(resource_uid__endswith="-b").count() == 5


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
    outcomes = counts.created + counts.duplicate + counts.coalesced + counts.rejected
    assert outcomes + counts.ignored == counts.received


@pytest.mark.django_db(transaction=True)
def test_a_notification_stream_quiet_for_longer_than_the_request_timeout_stays_open(
    standin, subscriber_thread
):
    port = free_port()
    standin(port, "--tag", "q", "--interval", "2.5")  # 2.5 s of silence between faults
    subscriber = subscriber_thread(config_for(port, request_timeout=1.0))
    wait_until(settled(subscriber, 7), timeout=20, what="two faults after quiet spells")
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
    outcomes = counts.created + counts.duplicate + counts.coalesced + counts.rejected
    # The detector faults repeat on the new subscription: coalesced (or duplicate, same second).
    assert outcomes + counts.ignored == counts.received


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
    assert FaultEvent.objects.filter(resource_uid__startswith="uid-job-burst-").count() == 1000
    assert Incident.objects.count() == 1000
    with capsys.disabled():
        print(f"\n1,000 notifications received and stored in {elapsed:.2f} s ({connection.vendor})")


@pytest.mark.django_db(transaction=True)
def test_a_lone_event_is_stored_without_waiting_for_a_full_batch_or_a_stop():
    envelope = lone_fault_envelope("lone-1")
    worker = IngestWorker(source="test", batch_size=1000)
    worker.start()
    try:
        worker.wait_ready()
        worker.submit(envelope, sequence=1)
        # Stored while the worker still runs, 999 records short of a batch: the flush deadline.
        wait_until(lambda: worker.counts.created == 1, timeout=30, what="the lone event")
        assert worker.is_alive()
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
    assert FaultEvent.objects.count() >= 2
    assert call_names(calls) == ["logging/setLevel", "events_subscribe", "events_unsubscribe"]


@pytest.mark.django_db(transaction=True)
def test_a_stop_while_waiting_to_reconnect_returns_at_once(monkeypatch):
    # An hour before the next attempt: only a stop that interrupts the wait ends the thread.
    monkeypatch.setattr(subscriber_module, "backoff_delay", lambda attempt, rng=None: 3600.0)
    subscriber, thread = run_in_thread(config_for(free_port()))  # nobody listens there
    wait_until(lambda: subscriber.reconnects >= 1, timeout=10, what="a refused connection")
    subscriber.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert subscriber.subscriptions == 0 and subscriber.counts.received == 0


def test_notifications_the_database_never_takes_are_counted_as_unsaved(monkeypatch, caplog):
    def refuse(self):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(worker_module, "WRITE_RETRY_DELAY", 0)
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


def test_a_dead_ingest_worker_stops_the_subscriber_with_its_reason(tmp_path, monkeypatch):
    # An hour before each reconnect: a subscriber that missed the dead worker would still wait.
    monkeypatch.setattr(subscriber_module, "backoff_delay", lambda attempt, rng=None: 3600.0)
    unwritable = tmp_path / "no-such-directory" / "rejects.jsonl"
    subscriber = Subscriber(config_for(free_port(), rejects_path=unwritable))
    raised: list[BaseException] = []

    def run() -> None:
        try:
            subscriber.run(install_signal_handlers=False)
        except IngestFailed as error:
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the subscriber went on without its ingest worker"
    (error,) = raised
    assert "No such file or directory" in str(error)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--url", "127.0.0.1:8080/mcp"], "http:// or https://"),
        (["--url", "http://h/mcp", "--header", "no colon here"], "Name: value"),
        (["--url", "http://h/mcp", "--mode", "bogus"], "invalid choice"),
        (["--url", "http://h/mcp", "--namespace", "payments"], "--namespace was removed"),
        (["--url", "http://h/mcp", "--label-selector", "a=b"], "--label-selector was removed"),
        (["--url", "http://h/mcp", "--cluster", " "], "--cluster: the name is empty"),
        (["--url", "http://h/mcp", "--cluster", "x" * 256], "--cluster: at most 255"),
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
def subprocess_database_url(transactional_db) -> str:
    """This test's own test database, as a child process opens it (a file on SQLite)."""
    return database_url()


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
                "resource-faults",
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
        standin(port, "--tag", "c", "--interval", "0.2", "--record", str(calls), "--bad-timestamp")
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
    # The deprecated mode's name is accepted, said once, and subscribed with as `faults`.
    assert text.count("--mode resource-faults is deprecated") == 1
    summary = SUMMARY.match(text.strip().splitlines()[-1])
    assert summary is not None, text
    received, created, _, _, _, rejected, ignored = map(int, summary.groups())
    assert created >= 4 and rejected == 1 and ignored == 0
    assert received == created + rejected + ignored
    assert call_names(calls) == ["logging/setLevel", "events_subscribe", "events_unsubscribe"]
    assert read_calls(calls)[1]["arguments"]["mode"] == "faults"
    assert read_calls(calls)[1]["authorization"] == "Bearer t0ken"
    assert FaultEvent.objects.filter(resource_uid__endswith="-c").count() == 5
    assert Incident.objects.count() == created


def test_a_full_ingest_queue_drops_and_counts_instead_of_growing(caplog):
    worker = worker_module.IngestWorker(
        source="mcp", max_backlog=3
    )  # not started: nothing drains it
    with caplog.at_level(logging.ERROR, logger="incidents.subscriber"):
        for sequence in range(5):
            worker.submit({"params": {}}, sequence=sequence)
    assert (worker.backlog(), worker.dropped) == (3, 2)
    assert "ingest queue full" in caplog.text
    worker.stop()  # returns although the queue is full and no thread runs


def stored_clusters(database_url: str) -> list[str]:
    """The cluster of every incident the child process stored, read from its database."""
    if connection.vendor == "postgresql":
        return list(Incident.objects.values_list("cluster", flat=True))
    with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as db:
        return [row[0] for row in db.execute("SELECT cluster FROM incidents")]


def test_cluster_alone_stores_an_in_cluster_servers_faults_across_a_restart_and_sigterm_exits_0(
    standin, subprocess_database_url, tmp_path
):
    # Issue 12, "Done when": the only published deployment (in-cluster, `cluster: ""`), and the
    # command with no option but --url and --cluster.
    port = free_port()
    first = standin(port, "--tag", "a", "--in-cluster")
    output = tmp_path / "subscriber.log"
    url = f"http://127.0.0.1:{port}/mcp"
    with output.open("w") as out:
        command = subprocess.Popen(
            [sys.executable, "manage.py", "subscribe_mcp", "--url", url, "--cluster", "prod-eu-1"],
            cwd=settings.BASE_DIR,
            env=child_env(subprocess_database_url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        stored = lambda: stored_clusters(subprocess_database_url)  # noqa: E731
        wait_until(lambda: len(stored()) == 5, timeout=30, what="the first server's 5 faults")
        first.kill()
        first.wait(timeout=10)
        standin(port, "--tag", "b", "--in-cluster")
        wait_until(lambda: len(stored()) == 10, timeout=60, what="the restarted server's faults")
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=30) == 0, output.read_text()
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(timeout=10)
    assert stored() == ["prod-eu-1"] * 10
    summary = SUMMARY.match(output.read_text().strip().splitlines()[-1])
    assert summary is not None and summary.groups()[:2] == ("10", "10")


def test_a_server_without_events_subscribe_makes_the_command_exit_non_zero_with_an_error_line(
    standin, subprocess_database_url, tmp_path
):
    port = free_port()
    standin(port, "--no-subscribe-tool")
    url = f"http://127.0.0.1:{port}/mcp"
    finished = subprocess.run(
        [sys.executable, "manage.py", "subscribe_mcp", "--url", url],
        cwd=settings.BASE_DIR,
        env=child_env(subprocess_database_url),
        capture_output=True,
        text=True,
        timeout=60,  # the bound: a refusal is no network blip to retry forever
    )
    assert finished.returncode != 0
    errors = [line for line in finished.stdout.splitlines() if " ERROR " in line]
    assert len(errors) == 1, finished.stdout
    assert "refused the subscription" in errors[0]
    assert "Unknown tool: events_subscribe" in errors[0]  # the server's own words
    assert "subscription refused" in finished.stderr


def test_the_standin_sends_nothing_to_a_session_that_never_set_a_level(standin):
    # What makes the setLevel-first checks above mean something: like the Go server, the
    # stand-in drops every notification for a session without a logging level.
    port = free_port()
    standin(port, "--tag", "z", "--interval", "0.1")
    received: list[LogMessage] = []

    async def session_without_set_level() -> None:
        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            received.append(LogMessage(params.level, params.logger, params.data))

        url = f"http://127.0.0.1:{port}/mcp"
        async with (
            streamable_http_client(url) as (read_stream, write_stream),
            ClientSession(read_stream, write_stream, logging_callback=on_log) as session,
        ):
            await session.initialize()
            result = await session.call_tool("events_subscribe", {"mode": "faults"})
            assert not result.is_error
            await asyncio.sleep(1.5)  # five detector faults and a dozen periodic ones

    asyncio.run(session_without_set_level())
    assert received == []

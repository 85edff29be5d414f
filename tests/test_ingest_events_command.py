"""`manage.py ingest_events`: inputs, output format, --rejects, --dry-run, --quiet, exit codes."""

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from incidents.context import upstream_view
from incidents.events import CLUSTER_HINT
from incidents.management.commands import ingest_events
from incidents.models import FaultEvent, Incident

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "events.jsonl"
BAD_SAMPLES = ROOT / "samples" / "bad-events.jsonl"
SUMMARY = re.compile(
    r"received (\d+): created (\d+), duplicate (\d+), coalesced (\d+), silenced (\d+), "
    r"rejected (\d+), ignored (\d+)"
)


def line(fault_id="f1", ts="2025-12-20T15:30:00Z", **overrides) -> str:
    values = {"faultId": fault_id, "cluster": "prod-us-east-1", "faultType": "CrashLoop",
              "severity": "critical", "timestamp": ts,
              "resource": {"kind": "Pod", "name": "api-1", "namespace": "payments"}}  # fmt: skip
    values.update(overrides)
    return json.dumps(values)


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args, stdin: bytes | None = None, monkeypatch=None, stderr=None):
    """(exit status, stdout, stderr) of the command run in this process."""
    out, err = io.StringIO(), stderr or io.StringIO()
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        call_command("ingest_events", *args, stdout=out, stderr=err)
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    except CommandError as error:
        status = error.returncode
        err.write(str(error))
    return status, out.getvalue(), err.getvalue()


def summary(stdout: str) -> dict:
    last = stdout.rstrip("\n").splitlines()[-1]
    match = SUMMARY.fullmatch(last)
    assert match, f"last line is not the summary: {last!r}"
    names = ("received", "created", "duplicate", "coalesced", "silenced", "rejected", "ignored")
    return dict(zip(names, map(int, match.groups()), strict=True))


def write(tmp_path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


# -- the sample file ------------------------------------------------------------------------
def test_the_sample_file_ingests_cleanly_and_covers_what_an_sre_sees():
    status, stdout, stderr = run(str(SAMPLES))
    assert status == 0, stderr
    got = summary(stdout)
    assert got["received"] >= 200
    assert got["rejected"] == 0
    assert min(got["created"], got["duplicate"], got["coalesced"], got["ignored"]) > 0
    assert Incident.objects.values("cluster").distinct().count() == 3
    assert Incident.objects.values("resource_kind").distinct().count() >= 6
    assert set(Incident.objects.values_list("severity", flat=True)) == {
        "critical", "high", "medium", "low",
    }  # fmt: skip
    contexts = [json.loads(c) for c in Incident.objects.values_list("context", flat=True)]
    assert any(log.get("hasPanic") for c in contexts for log in c.get("logs", []))
    raw = [json.loads(text) for text in SAMPLES.read_text().splitlines()]
    loggers = {r["params"]["logger"] for r in raw if "params" in r}
    assert loggers == {
        "kubernetes/resource-faults", "kubernetes/faults", "kubernetes/subscription_error",
    }  # fmt: skip
    assert any(isinstance(r.get("params", {}).get("data"), str) for r in raw)
    assert any("fault_id" in r for r in raw) and any("faultId" in r for r in raw)
    assert any("event" in r for r in raw)


def test_replaying_a_file_creates_nothing_new():
    run(str(SAMPLES))
    incidents, faults = Incident.objects.count(), FaultEvent.objects.count()
    status, stdout, _ = run(str(SAMPLES))
    got = summary(stdout)
    assert status == 0
    assert got["created"] == 0
    assert got["duplicate"] + got["coalesced"] + got["ignored"] == got["received"]
    assert (Incident.objects.count(), FaultEvent.objects.count()) == (incidents, faults)


# -- rejections -----------------------------------------------------------------------------
def test_rejections_are_reported_as_path_line_reason_and_exit_1(tmp_path):
    records = [line("a"), line("b", severity="urgent"), "{broken", line("c")]
    path = write(tmp_path, "events.jsonl", "\n".join(records))
    status, stdout, stderr = run(path)
    assert status == 1
    assert stderr.splitlines() == [
        f"{path}:2: severity 'urgent' is not one of critical, high, medium, low, info, warning, "
        "error",
        f"{path}:3: record is not valid JSON: Expecting property name enclosed in double quotes "
        "at line 1 column 2",
    ]
    assert summary(stdout) == {"received": 4, "created": 2, "duplicate": 0, "coalesced": 0,
                               "silenced": 0, "rejected": 2, "ignored": 0}  # fmt: skip
    assert set(Incident.objects.values_list("fault_id", flat=True)) == {"a", "c"}


def test_rejects_file_holds_exactly_the_rejected_records_unchanged(tmp_path):
    bad = [line("b", timestamp="yesterday"), '{"faultId": "c"}', "not json at all"]
    non_utf8 = b'{"faultId": "\xff\xfe"}'
    content = "\n".join([line("a"), bad[0], bad[1], line("d"), bad[2]]).encode()
    content += b"\n" + non_utf8 + b"\n"
    path = write(tmp_path, "events.jsonl", content)
    rejects = tmp_path / "rejects.jsonl"
    status, stdout, _ = run(path, "--rejects", str(rejects))
    assert status == 1
    assert summary(stdout)["rejected"] == 4
    expected = b"\n".join([b.encode() for b in bad] + [non_utf8]) + b"\n"
    assert rejects.read_bytes() == expected


def test_rejects_file_joins_a_multi_line_record_from_an_array(tmp_path):
    bad = {"faultId": "b", "severity": "urgent"}
    path = write(tmp_path, "events.json", json.dumps([json.loads(line("a")), bad], indent=2))
    rejects = tmp_path / "rejects.jsonl"
    status, _, _ = run(path, "--rejects", str(rejects))
    assert status == 1
    (joined,) = rejects.read_text().splitlines()
    assert json.loads(joined) == bad


def test_rejects_file_is_empty_when_nothing_was_rejected(tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    status, _, _ = run(write(tmp_path, "ok.jsonl", line()), "--rejects", str(rejects))
    assert status == 0
    assert rejects.read_bytes() == b""


def test_an_oversized_line_is_rejected_and_the_next_one_kept(tmp_path, settings):
    settings.TRIAGE_MAX_RECORD_BYTES = 1024 * 1024
    huge = line("huge", context="x" * (10 * 1024 * 1024))
    path = write(tmp_path, "events.jsonl", huge + "\n" + line("small") + "\n")
    status, stdout, stderr = run(path)
    assert status == 1
    assert f"{path}:1: record is {len(huge)} bytes, over the limit of 1048576 bytes" in stderr
    assert summary(stdout)["created"] == 1
    assert Incident.objects.get().fault_id == "small"


def test_quiet_prints_only_the_summary(tmp_path):
    path = write(tmp_path, "events.jsonl", line("a") + "\n{broken\n")
    status, stdout, stderr = run(path, "--quiet")
    assert status == 1
    assert stderr == ""
    assert stdout.splitlines() == [
        "received 2: created 1, duplicate 0, coalesced 0, silenced 0, rejected 1, ignored 0"
    ]


# -- inputs ---------------------------------------------------------------------------------
def test_standard_input_with_no_path_or_a_dash(monkeypatch):
    status, stdout, _ = run(stdin=(line("a") + "\n").encode(), monkeypatch=monkeypatch)
    assert (status, summary(stdout)["created"]) == (0, 1)
    status, stdout, _ = run("-", stdin=(line("a") + "\n").encode(), monkeypatch=monkeypatch)
    assert (status, summary(stdout)["duplicate"]) == (0, 1)


def test_a_json_array_on_standard_input(monkeypatch):
    array = "[\n" + ",\n".join([line("a"), line("b"), line("a")]) + "\n]\n"
    status, stdout, _ = run(stdin=array.encode(), monkeypatch=monkeypatch)
    assert status == 0
    assert summary(stdout) == {"received": 3, "created": 2, "duplicate": 1, "coalesced": 0,
                               "silenced": 0, "rejected": 0, "ignored": 0}  # fmt: skip


def test_a_pretty_printed_json_array_file_reports_lines(tmp_path):
    items = [json.loads(line("a")), json.loads(line("b", severity="urgent"))]
    path = write(tmp_path, "events.json", json.dumps(items, indent=2))
    status, _, stderr = run(path)
    assert status == 1
    # The second object starts on line 14 of the indented file.
    starts = [n for n, text in enumerate(Path(path).read_text().splitlines(), 1) if text == "  {"]
    assert stderr.startswith(f"{path}:{starts[1]}: severity 'urgent'")


def test_one_pretty_printed_object(tmp_path):
    path = write(tmp_path, "event.json", json.dumps(json.loads(line("a")), indent=2))
    status, stdout, _ = run(path)
    assert (status, summary(stdout)["created"]) == (0, 1)


def test_several_files_are_counted_together(tmp_path):
    first = write(tmp_path, "one.jsonl", line("a") + "\n")
    second = write(tmp_path, "two.jsonl", line("a") + "\n" + line("b", cluster="") + "\n")
    status, stdout, stderr = run(first, second)
    assert status == 1
    assert stderr.strip() == f"{second}:2: cluster is empty ({CLUSTER_HINT})"
    assert summary(stdout) == {"received": 3, "created": 1, "duplicate": 1, "coalesced": 0,
                               "silenced": 0, "rejected": 1, "ignored": 0}  # fmt: skip


def test_dry_run_counts_and_writes_nothing(tmp_path):
    records = [line("a"), line("a"), line("a", ts="2025-12-20T16:00:00Z")]
    path = write(tmp_path, "events.jsonl", "\n".join(records))
    status, stdout, _ = run(path, "--dry-run")
    assert status == 0
    # Nothing was created, so the words say what would have been; the summary keeps its form.
    assert stdout.splitlines()[-2] == (
        "dry run, nothing was written: would create 1, would skip 1 as duplicate, "
        "would coalesce 1, would reject 0, would ignore 0"
    )
    assert summary(stdout) == {"received": 3, "created": 1, "duplicate": 1, "coalesced": 1,
                               "silenced": 0, "rejected": 0, "ignored": 0}  # fmt: skip
    assert Incident.objects.count() == FaultEvent.objects.count() == 0


def test_quiet_keeps_ignored_notifications_out_of_the_output(tmp_path, caplog):
    ignored = json.dumps(
        {"jsonrpc": "2.0", "method": "notifications/message",
         "params": {"level": "error", "logger": "kubernetes/subscription_error", "data": {}}}
    )  # fmt: skip
    path = write(tmp_path, "events.jsonl", ignored)
    with caplog.at_level(logging.INFO, logger="incidents.ingest"):
        status, stdout, _ = run(path, "--quiet")
        assert status == 0 and summary(stdout)["ignored"] == 1
        assert not [r for r in caplog.records if r.name == "incidents.ingest"]
        run(path)  # the level comes back after a quiet run
        assert [r for r in caplog.records if r.name == "incidents.ingest"]


def test_dry_run_refuses_to_write_a_rejects_file(tmp_path):
    path = write(tmp_path, "events.jsonl", line("a"))
    status, _, stderr = run(path, "--dry-run", "--rejects", str(tmp_path / "rejects.jsonl"))
    assert status == 2
    assert "--dry-run writes nothing" in stderr
    assert not (tmp_path / "rejects.jsonl").exists()


def test_batch_size_is_honoured(tmp_path):
    path = write(tmp_path, "e.jsonl", "\n".join(line(f"f{n}") for n in range(25)))
    status, stdout, _ = run(path, "--batch-size", "4")
    assert (status, summary(stdout)["created"]) == (0, 25)


# -- progress -------------------------------------------------------------------------------
def test_progress_bar_only_when_stderr_is_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_events, "PROGRESS_INTERVAL", 0)
    path = write(tmp_path, "e.jsonl", "\n".join(line(f"f{n}") for n in range(5)))
    _, _, piped = run(path)
    assert piped == ""
    _, stdout, on_tty = run(path, stderr=TTY())
    assert "\r" in on_tty and "records" in on_tty and "/s" in on_tty
    assert on_tty.endswith("\r\x1b[K")  # the bar is cleared before the summary
    assert summary(stdout)["duplicate"] == 5


# -- usage errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/file.jsonl"], "/no/such/file.jsonl: no such file"),
        (["/"], "/: is a directory"),
        (["--batch-size", "0", "-"], "--batch-size must be at least 1, not 0"),
        (["-", "-"], "standard input ('-') can be read only once"),
        (["-", "--rejects", "/no/such/dir/rejects"], "--rejects /no/such/dir/rejects:"),
    ],
)
def test_usage_errors_exit_2_before_reading_anything(args, message, monkeypatch):
    monkeypatch.setattr(connections, "close_all", lambda: None)  # keep the test's transaction
    stderr = io.StringIO()
    command = ingest_events.Command(stdout=io.StringIO(), stderr=stderr)
    with pytest.raises(SystemExit) as exit_:
        command.run_from_argv(["manage.py", "ingest_events", *args])
    assert exit_.value.code == 2
    assert message in stderr.getvalue()
    assert Incident.objects.count() == 0


def test_exit_status_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setattr(connections, "close_all", lambda: None)
    good = write(tmp_path, "good.jsonl", line("a"))
    bad = write(tmp_path, "bad.jsonl", line("b", severity="nope"))
    for path, expected in ((good, 0), (bad, 1)):
        command = ingest_events.Command(stdout=io.StringIO(), stderr=io.StringIO())
        try:
            command.run_from_argv(["manage.py", "ingest_events", path])
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        assert code == expected, path


def test_a_real_process_exits_2_for_a_missing_file():
    env = {**os.environ, "DJANGO_DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "manage.py", "ingest_events", "/no/such/file.jsonl"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "/no/such/file.jsonl: no such file" in result.stderr
    assert result.stdout == ""


def test_bad_samples_file_exercises_each_rejection(tmp_path):
    status, stdout, stderr = run(str(BAD_SAMPLES))
    assert status == 1
    got = summary(stdout)
    assert (got["rejected"], got["created"]) == (6, 1)
    assert len(stderr.splitlines()) == 6


# -- papercuts (issue 14) and --cluster (issue 12) ------------------------------------------
@pytest.mark.parametrize("content", [b"", b"\n  \n\n"], ids=["empty", "blank lines"])
def test_an_input_without_records_warns_instead_of_a_bare_received_0(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    status, stdout, stderr = run(str(path))
    assert status == 0
    assert stderr.strip() == f"warning: {path} holds no record (empty or blank lines only)"
    assert stdout.splitlines()[-1] == (
        "received 0: created 0, duplicate 0, coalesced 0, silenced 0, rejected 0, ignored 0"
    )


def test_empty_standard_input_warns_too(monkeypatch):
    status, _stdout, stderr = run(stdin=b"", monkeypatch=monkeypatch)
    assert (status, stderr.strip()) == (0, "warning: standard input holds no record "
                                           "(empty or blank lines only)")  # fmt: skip


@pytest.mark.parametrize(
    "first", [b"not json at all", b'{"faultId": "cut-off",', b"12"], ids=["text", "cut", "number"]
)
def test_a_bad_first_line_is_one_rejected_record_and_the_rest_is_read(tmp_path, first):
    # One rule for JSON Lines: judged line by line, the first line like any other, even when
    # the line after it is broken too.
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([first, b'{"broken', line("a").encode(), line("b").encode()]))
    status, stdout, stderr = run(str(path))
    assert status == 1
    assert [entry.split(":")[1] for entry in stderr.splitlines()] == ["1", "2"]
    assert summary(stdout) == {"received": 4, "created": 2, "duplicate": 0, "coalesced": 0,
                               "silenced": 0, "rejected": 2, "ignored": 0}  # fmt: skip


def test_cluster_names_an_in_cluster_servers_records_and_keeps_its_own_value(tmp_path):
    path = write(tmp_path, "e.jsonl", "\n".join([line("a", cluster=""), line("b")]))
    status, stdout, stderr = run(path, "--cluster", "prod-eu-1")
    assert (status, stderr) == (0, "")
    assert summary(stdout)["created"] == 2
    assert set(Incident.objects.values_list("cluster", flat=True)) == {"prod-eu-1"}
    kept = {f.fault_id: upstream_view(f)["server_cluster"] for f in FaultEvent.objects.all()}
    assert kept == {"a": "", "b": "prod-us-east-1"}


@pytest.mark.parametrize("name", ["", "   ", "x" * 256])
def test_cluster_refuses_an_empty_or_too_long_name(tmp_path, name):
    path = write(tmp_path, "e.jsonl", line("a"))
    status, _stdout, stderr = run(path, "--cluster", name)
    assert status != 0 and "argument --cluster" in stderr
    assert not Incident.objects.exists()

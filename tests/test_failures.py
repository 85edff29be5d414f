"""Failed and agent_failed incidents explained: the sentence, the log tails, the log view."""

from pathlib import Path

import pytest
from django.urls import reverse

from incidents import failures
from incidents.choices import Status
from tests.builders import make_execution, make_incident

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("status", "exit_code", "reason", "expected"),
    [
        (
            Status.AGENT_FAILED,
            124,
            "agent timed out (exit 124: its timeout wrapper fired)",
            "ran out of time",
        ),
        (
            Status.AGENT_FAILED,
            137,
            "agent killed (exit 137: SIGKILL, from a timeout wrapper or the OOM killer): oom",
            "out-of-memory killer",
        ),
        (Status.AGENT_FAILED, None, "agent killed by signal SIGTERM", "signal SIGTERM"),
        (Status.AGENT_FAILED, None, "timed out after 900 s", "still running after 900 seconds"),
        (Status.AGENT_FAILED, 0, "investigation report missing", "wrote no report"),
        (
            Status.AGENT_FAILED,
            0,
            "investigation report too small: 30 bytes (at least 100 expected)",
            "only 30 bytes",
        ),
        (
            Status.AGENT_FAILED,
            None,
            "agent could not start: [Errno 2] No such file",
            "never started",
        ),
        (Status.FAILED, 2, "agent exited with code 2: kubectl: forbidden", "exited with code 2"),
        (Status.AGENT_FAILED, None, "worker lost", "worker running this incident stopped"),
        (Status.AGENT_FAILED, 137, "", "out-of-memory killer"),  # an older row: the code alone
        (Status.FAILED, 3, "", "exited with code 3"),
    ],
)
def test_each_failure_reason_becomes_a_sentence(status, exit_code, reason, expected):
    incident = make_incident(status=status, exit_code=exit_code, failure_reason=reason)
    assert expected in failures.explain(incident)


def test_no_sentence_for_incidents_that_did_not_fail():
    assert failures.explain(make_incident(status=Status.RESOLVED)) == ""
    assert failures.explain(make_incident(status=Status.INVESTIGATING)) == ""


def write_logs(root: Path, incident, *, stdout: str, stderr: str, report: str | None = None):
    folder = root / str(incident.pk)
    (folder / "logs").mkdir(parents=True)
    (folder / "output").mkdir()
    (folder / "logs" / "agent.stdout.log").write_text(stdout)
    (folder / "logs" / "agent.stderr.log").write_text(stderr)
    if report is not None:
        (folder / "output" / "investigation.md").write_text(report)
    return make_execution(
        incident,
        exit_code=incident.exit_code,
        log_paths=f"{folder}/logs/agent.stdout.log,{folder}/logs/agent.stderr.log",
    )


@pytest.fixture
def root(tmp_path, settings) -> Path:
    settings.TRIAGE_WORKSPACE_ROOT = tmp_path / "workspaces"
    settings.TRIAGE_WORKSPACE_ROOT.mkdir()
    return settings.TRIAGE_WORKSPACE_ROOT


def test_the_tail_is_the_last_200_lines_without_terminal_escapes(root):
    incident = make_incident(status=Status.FAILED, exit_code=1)
    lines = [f"\x1b[31mline {n}\x1b[0m <b>" for n in range(1, 301)]
    execution = write_logs(root, incident, stdout="\n".join(lines), stderr="")
    tail = failures.log_tail(execution, "stdout")
    shown = tail.text.splitlines()
    assert (len(shown), shown[0], shown[-1]) == (200, "line 101 <b>", "line 300 <b>")
    assert tail.cut and tail.problem == ""
    empty = failures.log_tail(execution, "stderr")
    assert (empty.text, empty.problem) == ("", "")


def test_a_log_outside_the_workspace_root_or_a_symlink_is_not_read(root, tmp_path):
    secret = tmp_path / "agent.stdout.log"
    secret.write_text("SECRET_KEY=hunter2")
    incident = make_incident(status=Status.FAILED, exit_code=1)
    outside = make_execution(incident, log_paths=f"{secret},{secret}")
    assert "outside the workspace root" in failures.log_tail(outside, "stdout").problem
    folder = root / "x" / "logs"
    folder.mkdir(parents=True)
    (folder / "agent.stdout.log").symlink_to(secret)
    linked = make_execution(incident, log_paths=f"{folder}/agent.stdout.log")
    tail = failures.log_tail(linked, "stdout")
    assert tail.text == "" and tail.problem
    with pytest.raises(failures.LogUnavailable):
        failures.log_path(linked, "../../etc/passwd")


def test_the_incident_page_explains_an_agent_failure_and_shows_the_tails(admin_client, root):
    incident = make_incident(
        status=Status.AGENT_FAILED,
        exit_code=137,
        failure_reason="agent killed (exit 137: SIGKILL, from a timeout wrapper or the OOM killer)",
    )
    execution = write_logs(
        root,
        incident,
        stdout="step 1: kubectl get pods\n",
        stderr="\x1b[1mfatal\x1b[0m: <script>alert(1)</script>\n",
    )
    html = admin_client.get(incident.get_absolute_url()).content.decode()
    assert "out-of-memory killer ended it" in html
    assert "step 1: kubectl get pods" in html
    assert "fatal: &lt;script&gt;alert(1)&lt;/script&gt;" in html  # escaped, ANSI gone
    assert "\x1b" not in html
    assert str(root) not in html  # never a server path
    assert reverse("incidents:execution-log", args=[execution.pk, "stderr"]) in html
    assert "No report yet" not in html
    assert "the run ended without a usable one" in html


def test_an_undersized_report_is_shown_as_text(admin_client, root):
    incident = make_incident(
        status=Status.AGENT_FAILED,
        exit_code=0,
        failure_reason="investigation report too small: 30 bytes (at least 100 expected)",
    )
    write_logs(root, incident, stdout="", stderr="", report="# TODO <i>write</i> the report\n")
    html = admin_client.get(incident.get_absolute_url()).content.decode()
    assert "only 30 bytes" in html
    assert "# TODO &lt;i&gt;write&lt;/i&gt; the report" in html


def test_no_report_yet_only_while_the_agent_may_still_write_one(admin_client):
    for status, shown in (
        (Status.PENDING, True),
        (Status.INVESTIGATING, True),
        (Status.FAILED, False),
    ):
        incident = make_incident(status=status)
        html = admin_client.get(incident.get_absolute_url()).content.decode()
        assert ("No report yet: the agent writes one when it finishes" in html) is shown


def test_the_log_view_gives_the_whole_log_as_text(admin_client, root):
    incident = make_incident(status=Status.FAILED, exit_code=1)
    lines = "\n".join(f"line {n}" for n in range(1, 501)) + "\n\x1b[31mred\x1b[0m <b>\n"
    execution = write_logs(root, incident, stdout=lines, stderr="boom\n")
    response = admin_client.get(reverse("incidents:execution-log", args=[execution.pk, "stdout"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    body = response.content.decode()
    assert body.startswith("line 1\n") and body.endswith("red <b>\n")
    stderr = admin_client.get(reverse("incidents:execution-log", args=[execution.pk, "stderr"]))
    assert stderr.content == b"boom\n"


def test_the_log_view_refuses_unknown_streams_and_paths_outside_the_root(
    admin_client, root, tmp_path
):
    secret = tmp_path / "agent.stdout.log"
    secret.write_text("SECRET")
    execution = make_execution(make_incident(status=Status.FAILED), log_paths=str(secret))
    response = admin_client.get(reverse("incidents:execution-log", args=[execution.pk, "stdout"]))
    assert response.status_code == 404
    assert b"SECRET" not in response.content and str(tmp_path).encode() not in response.content
    other = admin_client.get(reverse("incidents:execution-log", args=[execution.pk, "prompt"]))
    assert other.status_code == 404


def test_the_log_view_needs_sign_in(client, root):
    incident = make_incident(status=Status.FAILED, exit_code=1)
    execution = write_logs(root, incident, stdout="private\n", stderr="")
    response = client.get(reverse("incidents:execution-log", args=[execution.pk, "stdout"]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]

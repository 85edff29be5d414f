"""The cost and provenance of every run: output/result.json, validated and recorded on the
execution, shown on the incident page; a bad file is noted and never changes the outcome."""

import json
import shlex
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from incidents.choices import Status
from incidents.models import AgentExecution, TriageReport
from incidents.worker.result import MAX_RESULT_BYTES, ResultInvalid, parse_result
from tests.agents import agent_python, agent_script, reachable_folder
from tests.builders import make_execution, make_incident

pytestmark = pytest.mark.django_db

RESULT = {
    "agent": "claude-code",
    "model": "claude-sonnet-4-5",
    "usage": {"input_tokens": 12000, "output_tokens": 1800, "cache_read_tokens": 40000},
    "cost_usd": 0.0753,
    "tool_calls": 9,
    "session": {"id": "abc", "turns": 4},
}


def agent(*args: str) -> str:
    return shlex.join([agent_python(), str(agent_script("scripted_agent.py")), *args])


@pytest.fixture
def run_triage(capsys):
    with reachable_folder() as folder:

        def run(command: str) -> str:
            root = folder / "workspaces"
            call_command(
                "run_triage", "--once", "--workspace-root", str(root), "--agent-command", command
            )
            return capsys.readouterr().out.strip().splitlines()[-1]

        yield run


# -- parsing ------------------------------------------------------------------------------------
def test_a_full_result_is_parsed_exactly_and_unknown_fields_kept():
    raw = json.dumps(RESULT).encode()
    result = parse_result(raw)
    assert (result.agent, result.model) == ("claude-code", "claude-sonnet-4-5")
    assert result.usage == {
        "input_tokens": 12000,
        "output_tokens": 1800,
        "cache_read_tokens": 40000,
    }
    assert result.cost_usd == Decimal("0.075300")
    assert result.tool_calls == 9
    assert json.loads(result.raw)["session"] == {"id": "abc", "turns": 4}
    assert result.error == ""


def test_every_field_is_optional():
    result = parse_result(b"{}")
    assert (result.agent, result.model, result.cost_usd, result.tool_calls) == ("", "", None, None)
    assert result.usage == {"input_tokens": None, "output_tokens": None, "cache_read_tokens": None}
    assert parse_result(b'{"usage": null, "cost_usd": null}').cost_usd is None


def test_whole_float_counts_are_accepted():
    assert parse_result(b'{"tool_calls": 7.0, "usage": {"input_tokens": 10.0}}').tool_calls == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[1, 2]", "result.json: an object expected, not list"),
        (b'{"agent": ', "result.json is not JSON"),
        (b"\xff\xfe{}", "result.json is not UTF-8"),
        (b'{"agent": 3}', "result.json agent: a string expected, not int"),
        (b'{"model": "' + b"m" * 300 + b'"}', "result.json model: longer than 255 characters"),
        (b'{"usage": [1]}', "result.json usage: an object expected, not list"),
        (b'{"usage": {"input_tokens": -1}}', "result.json usage.input_tokens: must be between"),
        (b'{"usage": {"output_tokens": "12"}}', "usage.output_tokens: a number expected, not str"),
        (b'{"usage": {"cache_read_tokens": 1.5}}', "usage.cache_read_tokens: a whole number"),
        (b'{"tool_calls": true}', "result.json tool_calls: a number expected, not bool"),
        (b'{"tool_calls": NaN}', "result.json tool_calls: a whole number expected"),
        (b'{"cost_usd": -0.01}', "result.json cost_usd: must be between 0 and 100000"),
        (b'{"cost_usd": "0.5"}', "result.json cost_usd: a number expected, not str"),
        (b'{"cost_usd": Infinity}', "result.json cost_usd: must be between"),
        (b'{"cost_usd": 1e9}', "result.json cost_usd: must be between 0 and 100000"),
    ],
)
def test_malformed_results_are_refused_naming_the_field(text, message):
    with pytest.raises(ResultInvalid) as error:
        parse_result(text)
    assert message in str(error.value)


# -- the worker records it --------------------------------------------------------------------
def test_a_run_records_agent_model_tokens_and_cost(run_triage):
    incident = make_incident()
    run_triage(agent("--result", json.dumps(RESULT)))
    execution = AgentExecution.objects.get(incident=incident)
    assert (execution.agent, execution.model) == ("claude-code", "claude-sonnet-4-5")
    assert (execution.input_tokens, execution.output_tokens, execution.cache_read_tokens) == (
        12000,
        1800,
        40000,
    )
    assert execution.cost_usd == Decimal("0.0753")
    assert execution.tool_calls == 9
    assert json.loads(execution.result_json) == RESULT
    assert execution.result_error == ""


def test_a_run_without_result_json_records_nothing_and_no_error(run_triage):
    incident = make_incident()
    run_triage(agent())
    execution = AgentExecution.objects.get(incident=incident)
    assert (execution.agent, execution.cost_usd, execution.result_json) == ("", None, "")
    assert execution.result_error == ""


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--result", '{"cost_usd": -3}'), "result.json cost_usd: must be between 0 and 100000"),
        (("--result", "not json"), "result.json is not JSON"),
        (("--result-symlink",), "result.json is not a regular file"),
        (("--result-hardlink",), "result.json is not a regular file"),
        (
            ("--result-bytes", str(MAX_RESULT_BYTES + 1)),
            f"result.json too large: {MAX_RESULT_BYTES + 1} bytes",
        ),
    ],
)
def test_a_bad_result_json_is_noted_and_the_outcome_unchanged(run_triage, args, reason):
    incident = make_incident()
    run_triage(agent(*args))
    incident.refresh_from_db()
    assert (incident.status, incident.failure_reason) == (Status.RESOLVED, None)
    assert TriageReport.objects.filter(incident=incident).count() == 1
    execution = AgentExecution.objects.get(incident=incident)
    assert execution.result_error.startswith(reason)
    assert (execution.cost_usd, execution.agent, execution.result_json) == (None, "", "")


def test_a_failed_run_still_records_what_it_cost(run_triage):
    incident = make_incident()
    run_triage(agent("--exit", "3", "--report", "none", "--result", '{"cost_usd": 0.02}'))
    incident.refresh_from_db()
    assert incident.status == Status.FAILED
    assert AgentExecution.objects.get(incident=incident).cost_usd == Decimal("0.02")


def test_the_stub_agent_reports_tokens_and_a_cost_derived_from_them(run_triage, monkeypatch):
    monkeypatch.setenv("TRIAGE_STUB_OUTCOME", "resolved")  # not one of its demo failures
    incident = make_incident()
    run_triage("stub")
    execution = AgentExecution.objects.get(incident=incident)
    assert execution.agent == "stub-agent" and execution.model.startswith(("claude-", "gpt-"))
    assert execution.input_tokens > 1000 and execution.output_tokens > 100
    assert execution.tool_calls >= 4
    assert json.loads(execution.result_json)["synthetic"] is True
    from incidents.stub_agent import MODEL_PRICES

    price_in, price_out, price_cache = MODEL_PRICES[execution.model]
    expected = (
        execution.input_tokens * price_in
        + execution.output_tokens * price_out
        + execution.cache_read_tokens * price_cache
    ) / 1_000_000
    assert execution.cost_usd == Decimal(str(round(expected, 6)))


# -- the database refuses negative numbers ----------------------------------------------------
@pytest.mark.parametrize(
    "column", ["input_tokens", "output_tokens", "cache_read_tokens", "cost_usd", "tool_calls"]
)
def test_the_database_refuses_a_negative_usage_number(column):
    execution = make_execution(make_incident())
    table = AgentExecution._meta.db_table
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {column} = -1 WHERE execution_id = %s",
            [execution.pk.hex if connection.vendor == "sqlite" else execution.pk],
        )


def test_the_store_records_the_result_fields(store):
    incident = make_incident()
    execution = AgentExecution(
        incident_id=incident.incident_id,
        agent="a",
        model="m",
        input_tokens=1,
        output_tokens=2,
        cache_read_tokens=3,
        cost_usd=Decimal("1.5"),
        tool_calls=4,
        result_json="{}",
        agent_profile="opus",
    )
    store.record_agent_execution(execution)
    stored = AgentExecution.objects.get(pk=execution.pk)
    assert (stored.model, stored.cost_usd, stored.agent_profile) == ("m", Decimal("1.5"), "opus")
    execution.cost_usd = Decimal("-1")
    with pytest.raises(Exception, match=f"agent execution {execution.pk} is invalid"):
        store.record_agent_execution(execution)
    assert AgentExecution.objects.get(pk=execution.pk).cost_usd == Decimal("1.5")


# -- the incident page ------------------------------------------------------------------------
def test_the_incident_page_shows_each_run(admin_client):
    incident = make_incident(status=Status.RESOLVED)
    make_execution(
        incident,
        agent="claude-code",
        model="claude-sonnet-4-5",
        input_tokens=12000,
        output_tokens=1800,
        cache_read_tokens=40000,
        cost_usd=Decimal("0.0753"),
        tool_calls=9,
        agent_profile="sonnet",
    )
    make_execution(incident, result_error="result.json is not JSON: <script>x</script>")
    html = admin_client.get(incident.get_absolute_url()).content.decode()
    for text in (
        "claude-code",
        "claude-sonnet-4-5",
        "12,000 / 1,800 / 40,000",
        "$0.0753",
        "9 tool calls",
        "sonnet",
        "2m 00s",
    ):
        assert text in html, text
    assert "result.json is not JSON: &lt;script&gt;" in html
    assert "<script>x</script>" not in html

"""The migrations build the design's schema, and the models have no unmigrated change."""

import io

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = pytest.mark.django_db

DESIGN_COLUMNS = {
    "fault_events": {
        "fault_id", "subscription_id", "cluster", "received_at", "resource_api_version",
        "resource_kind", "resource_name", "resource_namespace", "resource_uid", "fault_type",
        "severity", "context", "timestamp",
    },
    "incidents": {
        "incident_id", "fault_id", "status", "created_at", "started_at", "completed_at",
        "exit_code", "cluster", "subscription_id", "resource_api_version", "resource_kind",
        "resource_name", "resource_namespace", "resource_uid", "fault_type", "severity",
        "failure_reason", "context", "timestamp",
        # The on-call issue's columns, beside the design's.
        "oncall_state", "acknowledged_at", "acknowledged_by_id", "assignee_id", "closed_at",
        "closed_by_id", "resolution", "resolution_note", "occurrences", "last_seen_at",
        # The run-cost issue's: the agent profile of its next run.
        "agent_profile",
    },
    "agent_executions": {
        "execution_id", "incident_id", "started_at", "completed_at", "exit_code",
        "error_message", "log_paths",
        # The run-cost issue's: which profile ran, and what its result.json said.
        "agent_profile", "agent", "model", "input_tokens", "output_tokens", "cache_read_tokens",
        "cost_usd", "tool_calls", "result_json", "result_error",
    },
    "triage_reports": {
        "report_id", "incident_id", "execution_id", "generated_at", "report_markdown",
        "report_html",
        # The AI-quality issue's: the headline read when the report was recorded.
        "headline_cause", "headline_confidence",
    },
}  # fmt: skip
NULLABLE = {
    "incidents": {
        "started_at",
        "completed_at",
        "exit_code",
        "failure_reason",
        "acknowledged_at",
        "acknowledged_by_id",
        "assignee_id",
        "closed_at",
        "closed_by_id",
    },
    "agent_executions": {
        "completed_at",
        "exit_code",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "tool_calls",
    },
    "triage_reports": {"report_html", "headline_cause", "headline_confidence"},
}


def test_no_missing_migrations():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.parametrize("table", sorted(DESIGN_COLUMNS))
def test_tables_have_exactly_the_design_columns(table):
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(cursor, table)
    columns = {column.name: column for column in description}
    assert set(columns) == DESIGN_COLUMNS[table]
    nullable = {name for name, column in columns.items() if column.null_ok}
    assert nullable == NULLABLE.get(table, set())


def test_constraints_and_indexes_are_named():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "incidents")
    names = set(constraints)
    assert {
        "incidents_status_valid",
        "incidents_severity_valid",
        "incidents_cluster_not_empty",
        "incidents_fault_type_not_empty",
        "incidents_terminal_has_completed_at",
        "incidents_one_open_per_fault",
        "incidents_created_idx",
        "incidents_status_created_idx",
        "incidents_cluster_created_idx",
        "incidents_severity_created_idx",
        "incidents_kind_created_idx",
        "incidents_ns_created_idx",
        "incidents_ftype_created_idx",
        "incidents_timestamp_idx",
        "incidents_oncall_ts_idx",
    } <= names
    if connection.vendor == "postgresql":
        assert "incidents_search_trgm_idx" in names


@pytest.mark.django_db(transaction=True)
def test_migrations_reverse_to_zero_and_forward_again():
    call_command("migrate", "incidents", "zero", verbosity=0)
    assert "incidents" not in connection.introspection.table_names()
    call_command("migrate", "incidents", verbosity=0)
    assert {"fault_events", "incidents", "agent_executions", "triage_reports"} <= set(
        connection.introspection.table_names()
    )

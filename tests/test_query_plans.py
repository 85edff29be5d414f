"""PostgreSQL plans of the dashboard's list: every filter and `q` is served by an index.

The table gets 30,000 seeded incidents (enough that a sequential scan is a real choice for the
planner, and statistics from ANALYZE), then each list request is made through the real view and
every query it sends to `incidents` is EXPLAINed: none may scan the table sequentially.
"""

import json
import re
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from incidents.models import Incident
from incidents.seeding import SeedOptions, flush_history, seed_history

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ROWS = 30_000
READS_INCIDENTS = re.compile(r'\bFROM "incidents"', re.IGNORECASE)


@pytest.fixture(scope="module")
def seeded_table(django_db_setup, django_db_blocker) -> Iterator[None]:
    """30,000 incidents, committed (so VACUUM ANALYZE runs) and removed after the module."""
    if connection.vendor != "postgresql":  # the postgres mark skips these tests on SQLite
        yield
        return
    with django_db_blocker.unblock():
        seed_history(SeedOptions(incidents=ROWS, seed=11))
        yield
        flush_history()


@pytest.fixture
def signed_in(client, viewer):
    cache.clear()  # the summary and filter choices are cached: make every request query them
    client.force_login(viewer)
    return client


def _value(column: str, *, most_common: bool) -> str:
    """The most (or least) common non-empty value of `column` in the seeded table."""
    rows = Incident.objects.exclude(**{column: ""}).values_list(column).annotate(n=Count("*"))
    return rows.order_by("-n" if most_common else "n", column)[0][0]


def _scans(plan: dict) -> Iterator[dict]:
    """Every plan node that reads the incidents table or one of its indexes."""
    if plan.get("Relation Name") == "incidents" or plan.get("Index Name", "").startswith(
        "incidents_"
    ):
        yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


def _explain(sql: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        (document,) = cursor.fetchone()
    if isinstance(document, str):  # psycopg returns json as text or parsed, by version
        document = json.loads(document)
    return document[0]["Plan"]


def _incident_queries(client, params: dict) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse("incidents:list"), params)
    assert response.status_code == 200, response.content[:500]
    return [query["sql"] for query in captured if READS_INCIDENTS.search(query["sql"])]


def _assert_indexed(client, params: dict) -> list[str]:
    """EXPLAIN each query the list sends to incidents; return the index names used."""
    return [
        scan["Index Name"] for _, scans in _plans(client, params) for scan in scans
        if "Index Name" in scan
    ]  # fmt: skip


def _plans(client, params: dict) -> list[tuple[str, list[dict]]]:
    """(sql, its scans of incidents) for each query the list sends; fails on a Seq Scan."""
    queries = _incident_queries(client, params)
    assert queries, f"the list with {params} read no incidents"
    plans = []
    for sql in queries:
        plan = _explain(sql)
        scans = list(_scans(plan))
        kinds = [scan["Node Type"] for scan in scans]
        assert "Seq Scan" not in kinds, f"{params}: sequential scan in\n{sql}\n{plan}"
        plans.append((sql, scans))
    return plans


def test_the_planner_sees_a_table_worth_indexing(seeded_table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'incidents'")
        (estimated,) = cursor.fetchone()
    assert estimated >= ROWS * 0.9  # ANALYZE has run: plans below are real choices


def test_the_default_list_reads_what_needs_a_human_from_the_oncall_index(seeded_table, signed_in):
    used = _assert_indexed(signed_in, {})
    # The page and count by created_at, the summary by fault time: both oncall indexes qualify.
    assert {"incidents_oncall_created_idx", "incidents_oncall_ts_idx"} & set(used)


def test_the_whole_history_uses_an_index(seeded_table, signed_in):
    assert _assert_indexed(signed_in, {"oncall": ["open", "acknowledged", "closed"]})


FILTERS = [
    # (parameter, column, the index that serves "newest first within this filter")
    ("status", "status", "incidents_status_created_idx"),
    ("severity", "severity", "incidents_severity_created_idx"),
    ("cluster", "cluster", "incidents_cluster_created_idx"),
    ("namespace", "resource_namespace", "incidents_ns_created_idx"),
    ("resource_kind", "resource_kind", "incidents_kind_created_idx"),
    ("fault_type", "fault_type", "incidents_ftype_created_idx"),
]


@pytest.mark.parametrize(("parameter", "column", "index"), FILTERS)
def test_each_single_filter_uses_its_own_index(seeded_table, signed_in, parameter, column, index):
    # The least common value: walking created_at would read most of the table to find 50 rows.
    used = _assert_indexed(signed_in, {parameter: _value(column, most_common=False)})
    assert index in used


@pytest.mark.parametrize(("parameter", "column", "index"), FILTERS)
def test_each_single_filter_with_a_common_value_avoids_a_scan(
    seeded_table, signed_in, parameter, column, index
):
    # The most common value: the planner may walk created_at newest first instead; no scan.
    assert _assert_indexed(signed_in, {parameter: _value(column, most_common=True)})


def test_q_on_a_resource_name_uses_the_trigram_index(seeded_table, signed_in):
    name = Incident.objects.filter(resource_kind="Pod").values_list("resource_name", flat=True)[0]
    fragment = name.split("-")[-2]  # the ReplicaSet hash: in a few names only
    used = _assert_indexed(signed_in, {"q": fragment.upper()})
    assert "incidents_search_trgm_idx" in used


def _search_terms() -> dict[str, str]:
    """One term of each kind, taken from a seeded incident."""
    row = Incident.objects.filter(resource_kind="Pod").exclude(resource_namespace="")[0]
    return {
        "namespace": row.resource_namespace,
        "kind and name": f"{row.resource_kind}/{row.resource_name}",
        "path": f"{row.resource_namespace}/{row.resource_kind}/{row.resource_name}",
        "cluster": row.cluster,
        "fault type": row.fault_type.lower(),
        "fault id prefix": row.fault_id[:10].upper(),
        "two words": f"{row.resource_name} {row.resource_namespace}",
        "phrase": f'"{row.resource_name} {row.cluster}"',
        "short incident id": str(row.pk)[:8],
        "incident id": str(row.pk),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "namespace",
        "kind and name",
        "path",
        "cluster",
        "fault type",
        "fault id prefix",
        "two words",
        "phrase",
        "short incident id",
        "incident id",
    ],
)
def test_every_kind_of_search_term_avoids_a_scan(seeded_table, signed_in, kind):
    term = _search_terms()[kind]
    assert _assert_indexed(signed_in, {"q": term})


@pytest.mark.parametrize(
    "params",
    [
        {"range": "1h"},
        {"range": "24h", "oncall": ["open", "acknowledged", "closed"]},
        {"range": "7d", "time": "received"},
        {"occurred_after": "now-6h", "oncall": ["open", "acknowledged", "closed"]},
        {"occurred_after": "2025-12-20", "occurred_before": "2025-12-21", "status": "failed"},
    ],
)
def test_fault_time_ranges_avoid_a_scan(seeded_table, signed_in, params):
    assert _assert_indexed(signed_in, params)


def test_the_default_view_summary_on_fault_time_reads_its_covering_index(seeded_table, signed_in):
    used = _assert_indexed(signed_in, {})
    assert "incidents_oncall_ts_idx" in used or "incidents_timestamp_idx" in used


def test_q_on_a_fault_id_uses_an_index(seeded_table, signed_in):
    fault_id = Incident.objects.values_list("fault_id", flat=True)[0]
    assert _assert_indexed(signed_in, {"q": fault_id})


def test_a_deep_page_by_keyset_uses_an_index(seeded_table, signed_in):
    response = signed_in.get(reverse("incidents:list"))
    cursor = response.context["page"].next_cursor
    for _ in range(5):  # a few pages in: the cursor condition is an index range
        response = signed_in.get(reverse("incidents:list"), {"after": cursor})
        cursor = response.context["page"].next_cursor
    used = _assert_indexed(signed_in, {"after": cursor})
    assert "incidents_oncall_created_idx" in used  # the default view's


def test_the_last_page_uses_an_index(seeded_table, signed_in):
    assert _assert_indexed(signed_in, {"last": "1"})


def test_three_filters_together_use_an_index(seeded_table, signed_in):
    params = {
        "status": "failed",
        "severity": "critical",
        "cluster": _value("cluster", most_common=True),
    }
    assert _assert_indexed(signed_in, params)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"oncall": ["open", "acknowledged", "closed"]},
        {"status": "failed", "time": "received"},
        {"fault_type": "JobFailure", "time": "received"},
    ],
)
def test_the_summary_reads_only_the_covering_index(seeded_table, signed_in, params):
    # The summary's GROUP BY columns are INCLUDEd in the created_at-ordered indexes.
    summaries = [scans for sql, scans in _plans(signed_in, params) if "GROUP BY" in sql]
    assert summaries, "the list made no summary query"
    for scans in summaries:
        assert {scan["Node Type"] for scan in scans} == {"Index Only Scan"}


def test_a_two_character_q_avoids_a_scan(seeded_table, signed_in):
    assert _assert_indexed(signed_in, {"q": "qz"})

"""Admin changelists: every filter, search by each id and text field, constant query counts."""

import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from incidents.admin.filters import leads_an_index
from incidents.choices import Status
from incidents.models import AgentExecution, FaultEvent, Incident, TriageReport
from tests.builders import make_execution, make_fault_event, make_incident, make_report

pytestmark = pytest.mark.django_db

CHANGELISTS = {
    "incident": Incident,
    "faultevent": FaultEvent,
    "agentexecution": AgentExecution,
    "triagereport": TriageReport,
}


def changelist_url(model_name: str) -> str:
    return reverse(f"admin:incidents_{model_name}_changelist")


def make_rows(count: int) -> None:
    """`count` incidents, each with its own fault, one execution and one report."""
    for n in range(count):
        incident = make_incident(
            event=make_fault_event(cluster=f"cluster-{n % 3}", severity="high"),
            status=Status.FAILED if n % 2 else Status.PENDING,
        )
        make_report(incident, make_execution(incident, exit_code=n % 2))


def shown_ids(response) -> set[str]:
    return {str(obj.pk) for obj in response.context["cl"].result_list}


@pytest.mark.parametrize("model_name", CHANGELISTS)
def test_changelist_opens_with_rows(admin_client, model_name):
    make_rows(3)
    response = admin_client.get(changelist_url(model_name))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 3
    # show_full_result_count is off: no "(N total)" next to a filtered count.
    assert response.context["cl"].show_full_result_count is False


# -- each filter of each changelist: the matching row shown, the other not -------------------
def _two_incidents():
    wanted = make_incident(
        event=make_fault_event(
            cluster="prod-eu", fault_type="OOMKilled", resource_kind="Deployment",
            resource_namespace="billing", severity="low",
        ),
        status=Status.INVESTIGATING,
    )  # fmt: skip
    other = make_incident(
        event=make_fault_event(
            cluster="prod-us", fault_type="CrashLoop", resource_kind="Pod",
            resource_namespace="payments", severity="critical",
        ),
        status=Status.PENDING,
    )  # fmt: skip
    return wanted, other


INCIDENT_FILTERS = {
    "status__exact": "investigating",
    "severity__exact": "low",
    "cluster": "prod-eu",
    "fault_type": "OOMKilled",
    "resource_kind": "Deployment",
    "resource_namespace": "billing",
}


@pytest.mark.parametrize(("parameter", "value"), INCIDENT_FILTERS.items())
def test_incident_changelist_filter(admin_client, parameter, value):
    wanted, other = _two_incidents()
    response = admin_client.get(changelist_url("incident"), {parameter: value})
    assert response.status_code == 200
    assert shown_ids(response) == {str(wanted.pk)}


FAULT_FILTERS = {
    "severity__exact": "low",
    "cluster": "prod-eu",
    "fault_type": "OOMKilled",
    "resource_kind": "Deployment",
    "resource_namespace": "billing",
}


@pytest.mark.parametrize(("parameter", "value"), FAULT_FILTERS.items())
def test_fault_event_changelist_filter(admin_client, parameter, value):
    wanted, other = _two_incidents()
    response = admin_client.get(changelist_url("faultevent"), {parameter: value})
    assert response.status_code == 200
    assert shown_ids(response) == {wanted.fault_id}


RELATED_FILTERS = {
    "incident__status__exact": "investigating",
    "incident__severity__exact": "low",
    "incident__cluster": "prod-eu",
}


@pytest.mark.parametrize("model_name", ["agentexecution", "triagereport"])
@pytest.mark.parametrize(("parameter", "value"), RELATED_FILTERS.items())
def test_execution_and_report_changelist_filter_by_incident(
    admin_client, model_name, parameter, value
):
    wanted, other = _two_incidents()
    wanted_report = make_report(wanted)
    make_report(other)
    response = admin_client.get(changelist_url(model_name), {parameter: value})
    assert response.status_code == 200
    expected = wanted_report.pk if model_name == "triagereport" else wanted_report.execution_id
    assert shown_ids(response) == {str(expected)}


@pytest.mark.parametrize(
    ("outcome", "expected"), [("running", "running"), ("succeeded", "ok"), ("failed", "bad")]
)
def test_execution_changelist_outcome_filter(admin_client, outcome, expected):
    incident = make_incident()
    executions = {
        "running": make_execution(incident, completed_at=None, exit_code=None),
        "ok": make_execution(incident, exit_code=0),
        "bad": make_execution(incident, exit_code=137),
    }
    response = admin_client.get(changelist_url("agentexecution"), {"outcome": outcome})
    assert shown_ids(response) == {str(executions[expected].pk)}


def test_date_hierarchy_drills_down(admin_client):
    incident = make_incident()
    created = incident.created_at
    response = admin_client.get(
        changelist_url("incident"),
        {"created_at__year": created.year, "created_at__month": created.month},
    )
    assert shown_ids(response) == {str(incident.pk)}
    response = admin_client.get(changelist_url("incident"), {"created_at__year": created.year - 1})
    assert shown_ids(response) == set()


# -- search ------------------------------------------------------------------------------------
RESOURCE_UID = "0c6b7c1e-5a8e-4f7b-9a0d-3f2e1d4c5b6a"


@pytest.mark.parametrize(
    "term",
    [
        "checkout-5d9",  # part of the name
        "CHECKOUT",  # any case
        "shop-ns",  # the whole namespace
        "SHOP-NS",
        RESOURCE_UID,
        RESOURCE_UID.upper(),
        "checkout shop-ns",  # every term must match
        "FAULT",
        "INCIDENT",
    ],
)
def test_incident_search(admin_client, term):
    wanted = make_incident(
        event=make_fault_event(
            fault_id="abc123search", resource_name="checkout-5d9f", resource_namespace="shop-ns",
            resource_uid=RESOURCE_UID,
        )
    )  # fmt: skip
    make_incident()
    term = {"FAULT": wanted.fault_id, "INCIDENT": str(wanted.pk)}.get(term, term)
    response = admin_client.get(changelist_url("incident"), {"q": term})
    assert shown_ids(response) == {str(wanted.pk)}


@pytest.mark.parametrize("term", ["shop", RESOURCE_UID[:8], "checkout other-ns"])
def test_incident_search_matches_namespace_and_uid_only_whole(admin_client, term):
    make_incident(
        event=make_fault_event(
            resource_name="checkout-5d9f", resource_namespace="shop-ns", resource_uid=RESOURCE_UID
        )
    )
    response = admin_client.get(changelist_url("incident"), {"q": term})
    assert shown_ids(response) == set()


def test_incident_search_by_part_of_an_id_does_not_match_it(admin_client):
    """Ids match whole (an index lookup on a million rows), not as substrings."""
    incident = make_incident()
    response = admin_client.get(changelist_url("incident"), {"q": str(incident.pk)[:8]})
    assert shown_ids(response) == set()


def test_fault_event_search_by_fault_id_and_resource(admin_client):
    wanted = make_incident(event=make_fault_event(resource_name="ledger-0")).fault
    make_incident()
    for term in (wanted.fault_id, "ledger"):
        response = admin_client.get(changelist_url("faultevent"), {"q": term})
        assert shown_ids(response) == {wanted.fault_id}, term


def test_execution_search_by_error_message_and_ids(admin_client):
    incident = make_incident()
    wanted = make_execution(incident, error_message="agent timed out after 900s")
    make_execution(make_incident(), error_message="image pull failed")
    for term in ("timed out", str(wanted.pk), str(incident.pk)):
        response = admin_client.get(changelist_url("agentexecution"), {"q": term})
        assert shown_ids(response) == {str(wanted.pk)}, term


def test_report_search_by_ids_and_resource_name(admin_client):
    incident = make_incident(event=make_fault_event(resource_name="queue-worker-9"))
    wanted = make_report(incident)
    make_report(make_incident())
    for term in (str(wanted.pk), str(incident.pk), str(wanted.execution_id), "queue-worker"):
        response = admin_client.get(changelist_url("triagereport"), {"q": term})
        assert shown_ids(response) == {str(wanted.pk)}, term


def test_search_for_hostile_text_is_escaped(admin_client):
    make_incident()
    response = admin_client.get(changelist_url("incident"), {"q": "<script>alert(1)</script>"})
    assert response.status_code == 200
    assert b"<script>alert(1)</script>" not in response.content


# -- query counts: the same for 5 rows and 100 ------------------------------------------------
# 2 (session, user) + 2 (the page's rows, its paginator COUNT; no unfiltered total since
# show_full_result_count is off) + the date hierarchy + one query per free-valued filter (4 for
# incidents and faults: cluster, fault type, kind, namespace; 1 for executions and reports: the
# incident's cluster). Nothing per row.
FILTER_QUERIES = {"incident": 4, "faultevent": 4, "agentexecution": 1, "triagereport": 1}


def date_hierarchy_queries(model_name: str) -> int:
    """Django's MIN/MAX and DISTINCT dates (2), or, where the date column leads an index,
    MIN/MAX twice and one row of index probes (3; see incidents/admin/dates.py)."""
    model = CHANGELISTS[model_name]
    field = model._meta.get_field(admin.site.get_model_admin(model).date_hierarchy)
    return 3 if leads_an_index(model, field) else 2


def changelist_queries(model_name: str) -> int:
    return 2 + 2 + date_hierarchy_queries(model_name) + FILTER_QUERIES[model_name]


def test_incident_date_hierarchy_uses_the_index():
    assert date_hierarchy_queries("incident") == 3


@pytest.mark.parametrize("rows", [5, 100])
@pytest.mark.parametrize("model_name", CHANGELISTS)
def test_changelist_query_count_is_constant(
    admin_client, django_assert_num_queries, model_name, rows
):
    make_rows(rows)
    admin_client.get(changelist_url(model_name))  # warm the content-type cache
    with django_assert_num_queries(changelist_queries(model_name)):
        response = admin_client.get(changelist_url(model_name))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == min(rows, 50)


# -- staying fast on a million rows ------------------------------------------------------------
def _captured_sql(client, url: str, params: dict) -> list[str]:
    client.get(url, params)  # warm caches
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize(
    ("model_name", "term"),
    [
        ("incident", "INCIDENT"),
        ("incident", "FAULT"),
        ("faultevent", "FAULT"),
        ("agentexecution", "INCIDENT"),
        ("triagereport", "INCIDENT"),
    ],
)
def test_whole_id_search_uses_no_text_scan(admin_client, model_name, term):
    incident = make_incident()
    make_report(incident)
    term = {"INCIDENT": str(incident.pk), "FAULT": incident.fault_id}[term]
    queries = _captured_sql(admin_client, changelist_url(model_name), {"q": term})
    assert not [sql for sql in queries if "LIKE" in sql.upper()]


def test_text_search_still_runs_when_an_id_like_term_matches_no_id(admin_client):
    uid = "6f1c2b9e-0a55-4d4e-9a51-0c1d2e3f4a5b"  # Kubernetes uids are UUIDs too
    wanted = make_incident(event=make_fault_event(resource_uid=uid))
    make_incident()
    response = admin_client.get(changelist_url("incident"), {"q": uid})
    assert shown_ids(response) == {str(wanted.pk)}


def test_free_valued_filters_list_every_value(admin_client):
    for cluster in ("c-b", "c-a", "c-c"):
        make_incident(event=make_fault_event(cluster=cluster))
    response = admin_client.get(changelist_url("incident"), {"status__exact": "failed"})
    (cluster_filter,) = [
        spec for spec in response.context["cl"].filter_specs if spec.title == "cluster"
    ]
    assert list(cluster_filter.lookup_choices) == ["c-a", "c-b", "c-c"]


@pytest.mark.postgres
def test_filter_choices_walk_the_index_on_postgresql(admin_client):
    for n in range(30):
        make_incident(event=make_fault_event(cluster=f"c-{n % 4}", resource_namespace=f"ns-{n}"))
    queries = _captured_sql(admin_client, changelist_url("incident"), {})
    assert not [sql for sql in queries if sql.startswith('SELECT DISTINCT "incidents".')]
    assert len([sql for sql in queries if sql.startswith("WITH RECURSIVE walk")]) == 4
    response = admin_client.get(changelist_url("incident"))
    choices = {spec.title: list(spec.lookup_choices) for spec in response.context["cl"].filter_specs
               if hasattr(spec, "lookup_choices")}  # fmt: skip
    assert choices["cluster"] == ["c-0", "c-1", "c-2", "c-3"]
    assert choices["resource namespace"] == sorted(
        Incident.objects.values_list("resource_namespace", flat=True).distinct()
    )


# session, user, the object, then: incident -> its executions, its reports (texts deferred);
# fault event -> nothing more (its incident count is a subquery); execution -> its reports, its
# incident; report -> its incident, its execution. None grows with the number of related rows.
# The incident's status help asks the store what it may move to: for a finished incident that is
# one more query (is another incident of the fault open?).
CHANGE_PAGE_QUERIES = {"incident": 6, "faultevent": 3, "agentexecution": 5, "triagereport": 5}


@pytest.mark.parametrize("reports", [1, 20])
@pytest.mark.parametrize("model_name", CHANGE_PAGE_QUERIES)
def test_change_page_query_count_is_constant(
    admin_client, django_assert_num_queries, model_name, reports
):
    incident = make_incident(status=Status.FAILED)
    report = make_report(incident)
    for _ in range(reports - 1):
        make_report(incident)
    pk = {
        "incident": incident.pk,
        "faultevent": incident.fault_id,
        "agentexecution": report.execution_id,
        "triagereport": report.pk,
    }[model_name]
    url = reverse(f"admin:incidents_{model_name}_change", args=[pk])
    admin_client.get(url)  # warm the content-type cache
    with django_assert_num_queries(CHANGE_PAGE_QUERIES[model_name]):
        response = admin_client.get(url)
    assert response.status_code == 200


@pytest.mark.parametrize("model_name", CHANGELISTS)
def test_changelists_offer_no_filter_counts(admin_client, model_name):
    """Django's "Show counts" runs a count per filter choice: seconds on a million rows."""
    make_rows(4)
    response = admin_client.get(changelist_url(model_name), {"_facets": "True"})
    assert response.status_code == 200
    assert "Show counts" not in response.content.decode()
    assert not re.search(r"cluster-0 \(\d+\)", response.content.decode())


@pytest.mark.parametrize("model_name", ["incident", "faultevent"])
def test_text_search_uses_like_on_the_resource_name_only(admin_client, model_name):
    """One un-indexed LIKE in the OR would make PostgreSQL read every row for each query."""
    make_incident()
    queries = _captured_sql(admin_client, changelist_url(model_name), {"q": "api"})
    like_queries = [sql for sql in queries if "LIKE" in sql.upper()]
    assert like_queries
    for sql in like_queries:
        assert sql.upper().count("LIKE") == 1 and "resource_name" in sql

"""/metrics: the token gate, the series, gauges that follow incidents, the query count."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from incidents import metrics
from incidents.api.tokens import issue_token
from incidents.ingest import IngestCounts
from tests.builders import make_incident

pytestmark = pytest.mark.django_db

TOKEN = "scrape-secret"


@pytest.fixture
def metrics_token(settings) -> str:
    settings.TRIAGE_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client) -> dict[str, dict[tuple, float]]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    series: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            series.setdefault(sample.name, {})[key] = sample.value
    return series


def test_metrics_is_404_without_a_configured_token(client, settings):
    settings.TRIAGE_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer"])
def test_metrics_wants_the_bearer_token(client, metrics_token, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/metrics", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_metrics_carries_every_series(client, metrics_token):
    metrics.observe_agent_run("resolved", 42.0)
    metrics.count_ingested("api", IngestCounts(received=1, created=1))
    series = scrape(client)
    for name in (
        "triage_open_incidents",
        "triage_recent_incidents",
        "triage_pending_incidents",
        "triage_oldest_pending_age_seconds",
        "triage_oldest_investigating_age_seconds",
        "triage_agent_run_duration_seconds_bucket",
        "triage_ingested_records_total",
        "triage_build_info",
    ):
        assert name in series, name
    # 2 open statuses x 4 severities, 5 statuses x 4 severities, even with no incident at all.
    assert len(series["triage_open_incidents"]) == 8
    assert len(series["triage_recent_incidents"]) == 20
    assert series["triage_agent_run_duration_seconds_count"][(("outcome", "resolved"),)] >= 1


def test_gauges_follow_the_incidents(client, metrics_token, store):
    before = scrape(client)
    assert before["triage_pending_incidents"][()] == 0
    assert before["triage_oldest_pending_age_seconds"][()] == 0
    old = make_incident(severity="high", created_at=timezone.now() - timedelta(minutes=20))
    make_incident(severity="low")
    after = scrape(client)
    pending_high = (("severity", "high"), ("status", "pending"))
    assert after["triage_open_incidents"][pending_high] == 1
    assert after["triage_recent_incidents"][pending_high] == 1
    assert after["triage_pending_incidents"][()] == 2
    assert 20 * 60 <= after["triage_oldest_pending_age_seconds"][()] < 21 * 60
    store.update_incident_status(old.incident_id, "investigating")
    store.complete_incident(old.incident_id, 1)
    done = scrape(client)
    assert done["triage_open_incidents"][pending_high] == 0
    assert done["triage_recent_incidents"][(("severity", "high"), ("status", "failed"))] == 1
    assert done["triage_pending_incidents"][()] == 1


def test_ingesting_through_the_api_counts_by_source(client, metrics_token):
    key = (("outcome", "rejected"), ("source", "api"))
    start = scrape(client)["triage_ingested_records_total"].get(key, 0)
    user = get_user_model().objects.create_user("ingester")
    user.user_permissions.add(Permission.objects.get(codename="add_faultevent"))
    secret = issue_token(user).secret
    client.post(
        "/api/v1/faults/",
        data=b"[{}, {}]",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    assert scrape(client)["triage_ingested_records_total"][key] == start + 2


def test_scrape_query_count_is_fixed(client, metrics_token, django_assert_num_queries):
    with django_assert_num_queries(metrics.DATABASE_QUERIES):
        scrape(client)
    for _ in range(20):
        make_incident()
    with django_assert_num_queries(metrics.DATABASE_QUERIES):
        scrape(client)
    assert metrics.DATABASE_QUERIES <= 10


def test_ingest_counts_collector_reports_live_counts():
    counts = IngestCounts(received=3, created=2, rejected=1)
    collector = metrics.IngestCountsCollector("mcp", lambda: counts)
    (family,) = collector.collect()
    values = {sample.labels["outcome"]: sample.value for sample in family.samples}
    assert values["created"] == 2 and values["rejected"] == 1 and "received" not in values
    counts.created += 5
    (family,) = collector.collect()
    assert {s.labels["outcome"]: s.value for s in family.samples}["created"] == 7


def test_oncall_deliveries_and_agents_degraded(client, metrics_token):
    from incidents.models import AgentHealth, Notification
    from incidents.notifications.channels import create_channel

    make_incident()
    make_incident(oncall_state="acknowledged", acknowledged_at=timezone.now())
    make_incident(oncall_state="closed", closed_at=timezone.now(), resolution="fixed")
    series = scrape(client)
    oncall = series["triage_oncall_incidents"]
    assert oncall == {(("state", "open"),): 1, (("state", "acknowledged"),): 1}
    assert series["triage_agents_degraded"][()] == 0
    deliveries = series["triage_recent_notifications"]
    assert set(deliveries.values()) == {0} and len(deliveries) == 3

    hook = create_channel(
        name="hook", kind="webhook", url="https://hooks.example.com/x", secret="s3cr3t"
    )
    incident = make_incident()
    for key, status in [("a", "failed"), ("b", "failed"), ("c", "pending")]:
        Notification.objects.create(
            channel=hook, event="incident_opened", incident=incident, dedup_key=key, status=status
        )
    old = Notification.objects.create(
        channel=hook, event="incident_opened", incident=incident, dedup_key="d", status="failed"
    )
    Notification.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    AgentHealth.objects.update_or_create(pk=1, defaults={"degraded_since": timezone.now()})
    series = scrape(client)
    deliveries = series["triage_recent_notifications"]
    assert deliveries[(("status", "failed"),)] == 2
    assert deliveries[(("status", "pending"),)] == 1
    assert deliveries[(("status", "delivered"),)] == 0
    assert series["triage_agents_degraded"][()] == 1

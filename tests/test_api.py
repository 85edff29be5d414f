"""The JSON API: tokens, permissions, the list against the dashboard, detail, reports, faults."""

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from incidents.api.models import ApiToken
from incidents.api.throttling import TokenRateThrottle
from incidents.api.tokens import digest, issue_token
from incidents.models import FaultEvent, Incident
from incidents.roles import viewer_group
from tests.builders import make_execution, make_fault_event, make_incident, make_report

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "upstream" / "fixtures"


def bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def viewer_token(viewer) -> str:
    return issue_token(viewer, name="test").secret


@pytest.fixture
def ingester_token(django_user_model, grant) -> str:
    user = django_user_model.objects.create_user("ingester", password="x")
    user = grant(user, "add_faultevent")
    return issue_token(user).secret


# --- tokens ---------------------------------------------------------------------------------


def test_create_api_token_prints_a_secret_stored_only_as_its_digest(viewer):
    out, err = StringIO(), StringIO()
    call_command("create_api_token", "viewer", "--name", "grafana", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert secret.startswith("tri_") and len(secret) > 40
    assert token.key_hash == digest(secret) and secret not in token.key_hash
    assert token.name == "grafana" and token.expires_at is None
    assert token.prefix in err.getvalue() and secret not in err.getvalue()
    # Nothing in the row holds the secret itself.
    assert all(secret not in str(value) for value in vars(token).values())


def test_create_api_token_expiry_and_errors(viewer):
    out = StringIO()
    call_command(
        "create_api_token", "viewer", "--expires-in-days", "7", stdout=out, stderr=StringIO()
    )
    expires = ApiToken.objects.get().expires_at
    assert timedelta(days=6, hours=23) < expires - timezone.now() <= timedelta(days=7)
    with pytest.raises(Exception, match="no user 'nobody'"):
        call_command("create_api_token", "nobody", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(Exception, match="--expires-in-days"):
        call_command("create_api_token", "viewer", "--expires-in-days", "0", stderr=StringIO())


def test_viewer_token_reads(client, viewer_token):
    incident = make_incident()
    response = client.get("/api/v1/incidents/", **bearer(viewer_token))
    assert response.status_code == 200
    assert [row["incident_id"] for row in response.json()["results"]] == [str(incident.pk)]


def test_viewer_token_cannot_ingest(client, viewer_token):
    response = client.post(
        "/api/v1/faults/", data="{}", content_type="application/json", **bearer(viewer_token)
    )
    assert response.status_code == 403
    assert not FaultEvent.objects.exists()


def test_user_without_view_permission_is_forbidden(client, django_user_model):
    user = django_user_model.objects.create_user("nobody", password="x")
    response = client.get("/api/v1/incidents/", **bearer(issue_token(user).secret))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer tri_unknown", "Bearer a b", "Token x", "Bearer " + "x" * 500],
)
def test_missing_or_unknown_token_is_401(client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/api/v1/incidents/", **extra)
    # "Token x" is not our scheme: the request is anonymous, still a 401.
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_is_401(client, viewer):
    issued = issue_token(viewer, expires_in_days=1)
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now())
    response = client.get("/api/v1/incidents/", **bearer(issued.secret))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_revoked_token_is_401_after_the_admin_revokes_it(client, viewer, admin_user):
    issued = issue_token(viewer)
    assert client.get("/api/v1/incidents/", **bearer(issued.secret)).status_code == 200
    client.force_login(admin_user)
    response = client.post(
        "/admin/incidents/apitoken/",
        {"action": "revoke", "_selected_action": [issued.token.pk]},
    )
    assert response.status_code == 302
    client.logout()
    response = client.get("/api/v1/incidents/", **bearer(issued.secret))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_inactive_users_token_is_401(client, viewer, viewer_token):
    viewer.is_active = False
    viewer.save()
    assert client.get("/api/v1/incidents/", **bearer(viewer_token)).status_code == 401


def test_the_session_does_not_authenticate_the_api(client, viewer):
    client.force_login(viewer)
    assert client.get("/api/v1/incidents/").status_code == 401


def test_throttle_counts_each_token_apart(client, viewer, monkeypatch):
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"api_token": "2/minute"})
    first, second = issue_token(viewer).secret, issue_token(viewer).secret
    codes = [client.get("/api/v1/incidents/", **bearer(first)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.get("/api/v1/incidents/", **bearer(second)).status_code == 200


# --- the list agrees with the dashboard -----------------------------------------------------


def _history() -> None:
    now = timezone.now()
    statuses = ["pending", "investigating", "resolved", "failed", "agent_failed"]
    severities = ["critical", "high", "medium", "low"]
    for n in range(63):
        event = make_fault_event(
            save=True,
            severity=severities[n % 4],
            cluster=f"c{n % 3}",
            resource_namespace=f"ns{n % 2}",
            resource_name=f"web-{n}",
        )
        make_incident(
            event=event,
            status=statuses[n % 5],
            created_at=now - timedelta(hours=n // 2),  # pairs share a created hour
        )


def _dashboard_pages(client, query: str) -> list[list[str]]:
    pages, url = [], f"/?{query}"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content[:500]
        page = response.context["page"]
        pages.append([str(row.incident_id) for row in page.rows])
        url = f"/?{query}&after={page.next_cursor}" if page.next_cursor else None
    return pages


def _api_pages(client, query: str, token: str) -> list[list[str]]:
    pages, url = [], f"/api/v1/incidents/?{query}"
    while url:
        response = client.get(url, **bearer(token))
        assert response.status_code == 200, response.content[:500]
        body = response.json()
        pages.append([row["incident_id"] for row in body["results"]])
        url = body["next"]
    return pages


@pytest.mark.parametrize(
    "query",
    [
        "",
        "sort=created",
        "sort=severity",
        "sort=-status",
        "status=failed&status=pending",
        "severity=critical&cluster=c1",
        "namespace=ns1&sort=severity",
        "q=web-1",
        f"created_after={(timezone.now() - timedelta(hours=10)).date().isoformat()}",
    ],
)
def test_list_filters_sorts_and_pages_agree_with_the_dashboard(client, viewer, query):
    _history()
    token = issue_token(viewer).secret
    client.force_login(viewer)
    dashboard = _dashboard_pages(client, query)
    client.logout()
    api = _api_pages(client, query, token)
    assert api == dashboard
    assert (
        sum(len(page) for page in api)
        == Incident.objects.filter(pk__in=[pk for page in api for pk in page]).count()
    )


def test_list_previous_link_walks_back(client, viewer_token):
    _history()
    first = client.get("/api/v1/incidents/?sort=severity", **bearer(viewer_token)).json()
    assert first["previous"] is None and first["count"] == 63
    second = client.get(first["next"], **bearer(viewer_token)).json()
    assert "sort=severity" in first["next"]
    back = client.get(second["previous"], **bearer(viewer_token)).json()
    assert back["results"] == first["results"]


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "created_after=yesterday",
        "after=not-a-cursor",
        "sort=nope",
        "after=a&last=1",
    ],
)
def test_invalid_parameters_are_400_with_messages(client, viewer_token, query):
    make_incident()
    response = client.get(f"/api/v1/incidents/?{query}", **bearer(viewer_token))
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] and "results" not in body


def test_list_query_count_does_not_grow_with_rows(client, viewer_token, django_assert_num_queries):
    make_incident()
    # The token and its user, the user's and groups' permissions, the page, the capped count.
    # (Filter choices are cached by the first request; last_used_at is written once per 5 min.)
    client.get("/api/v1/incidents/", **bearer(viewer_token))
    with django_assert_num_queries(5):
        client.get("/api/v1/incidents/", **bearer(viewer_token))
    for _ in range(30):
        make_incident()
    with django_assert_num_queries(5):
        client.get("/api/v1/incidents/", **bearer(viewer_token))


# --- one incident, one report ---------------------------------------------------------------


def test_incident_detail_has_executions_and_report_links(client, viewer_token):
    incident = make_incident(status="resolved")
    execution = make_execution(incident)
    report = make_report(incident, execution)
    response = client.get(f"/api/v1/incidents/{incident.pk}/", **bearer(viewer_token))
    body = response.json()
    assert body["executions"][0]["execution_id"] == str(execution.pk)
    assert body["executions"][0]["duration_seconds"] == 120.0
    (link,) = body["reports"]
    assert link["report_id"] == str(report.pk)
    assert link["headline"] == "Investigation: CrashLoop of payments/api-7f8b9c"
    assert link["url"].endswith(f"/api/v1/reports/{report.pk}/")
    assert link["html_url"].endswith(f"/reports/{report.pk}/")
    assert json.loads(body["context"])


def test_unknown_incident_and_report_are_404(client, viewer_token):
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/api/v1/incidents/{missing}/", **bearer(viewer_token)).status_code == 404
    assert client.get(f"/api/v1/reports/{missing}/", **bearer(viewer_token)).status_code == 404


def test_report_has_markdown_and_sanitized_html(client, viewer_token):
    markdown = "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img onerror=x>"
    report = make_report(make_incident(status="failed"), report_markdown=markdown)
    body = client.get(f"/api/v1/reports/{report.pk}/", **bearer(viewer_token)).json()
    assert body["report_markdown"] == markdown
    assert "<h1" in body["html"]
    for hostile in ("<script", "javascript:", "onerror"):
        assert hostile not in body["html"]


# --- faults ---------------------------------------------------------------------------------


def _fixture_texts() -> list[tuple[str, str]]:
    return [(path.name, path.read_text()) for path in sorted(FIXTURES.glob("*.json"))]


def _wipe() -> None:
    Incident.objects.all().delete()
    FaultEvent.objects.all().delete()


def _ingest_events_summary(*paths: Path) -> str:
    out = StringIO()
    try:
        call_command("ingest_events", *map(str, paths), "--quiet", stdout=out, stderr=StringIO())
    except SystemExit as exit_:
        assert exit_.code == 1  # something was rejected
    return out.getvalue().strip().splitlines()[-1]


@pytest.mark.parametrize("name", [path.name for path in sorted(FIXTURES.glob("*.json"))])
def test_post_fault_fixture_matches_ingest_events(client, ingester_token, name):
    path = FIXTURES / name
    response = client.post(
        "/api/v1/faults/",
        data=path.read_bytes(),
        content_type="application/json",
        **bearer(ingester_token),
    )
    assert response.status_code == 200
    api = response.json()
    stored = set(Incident.objects.values_list("fault_id", "status"))
    _wipe()
    assert api["summary"] == _ingest_events_summary(path)
    assert set(Incident.objects.values_list("fault_id", "status")) == stored
    assert len(api["results"]) == api["counts"]["received"]


def test_post_every_fixture_as_one_array_matches_ingest_events(client, ingester_token, tmp_path):
    records = [json.loads(text) for _, text in _fixture_texts()]
    body = json.dumps(records)
    response = client.post(
        "/api/v1/faults/", data=body, content_type="application/json", **bearer(ingester_token)
    )
    api = response.json()
    _wipe()
    as_file = tmp_path / "all.json"
    as_file.write_text(body)
    assert api["summary"] == _ingest_events_summary(as_file)
    outcomes = [result["outcome"] for result in api["results"]]
    assert [r["index"] for r in api["results"]] == list(range(len(records)))
    for outcome in set(outcomes):
        assert outcomes.count(outcome) == api["counts"][outcome]
    assert all(r.get("reason") for r in api["results"] if r["outcome"] == "rejected")


def test_post_the_same_fault_twice_is_a_duplicate(client, ingester_token):
    body = (FIXTURES / "U04-crashloop-detector.json").read_bytes()
    send = lambda: client.post(  # noqa: E731
        "/api/v1/faults/", data=body, content_type="application/json", **bearer(ingester_token)
    )
    assert send().json()["results"][0]["outcome"] == "created"
    assert send().json()["results"][0]["outcome"] == "duplicate"


def test_post_broken_json_is_a_rejected_record(client, ingester_token):
    response = client.post(
        "/api/v1/faults/", data=b"{not json", content_type="application/json",
        **bearer(ingester_token),
    )  # fmt: skip
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result["outcome"] == "rejected" and result["reason"]


def test_post_too_many_records_is_413_and_writes_nothing(client, ingester_token, monkeypatch):
    monkeypatch.setattr("incidents.api.ingest.MAX_RECORDS", 2)
    record = json.loads((FIXTURES / "U04-crashloop-detector.json").read_text())
    response = client.post(
        "/api/v1/faults/",
        data=json.dumps([record, record, record]),
        content_type="application/json",
        **bearer(ingester_token),
    )
    assert response.status_code == 413
    assert not Incident.objects.exists()


# --- schema and docs ------------------------------------------------------------------------


def test_schema_needs_a_token_or_a_session(client, viewer, viewer_token):
    assert client.get("/api/schema/").status_code == 401
    assert client.get("/api/schema/", **bearer(viewer_token)).status_code == 200
    client.force_login(viewer)
    assert b"/api/v1/incidents/" in client.get("/api/schema/").content


def test_docs_page_is_for_signed_in_users_and_fits_the_csp(client, viewer):
    response = client.get("/api/docs/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(viewer)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<style" not in page and "<script>" not in page  # no inline code or style
    assert "cdn" not in page.lower() and "//unpkg" not in page
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    script = client.get("/api/docs/?script")
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content


def test_viewer_group_exists_for_tokens():
    assert viewer_group().permissions.filter(codename="view_incident").exists()


def test_post_a_body_over_djangos_upload_limit_is_413(client, ingester_token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = (FIXTURES / "U04-crashloop-detector.json").read_bytes()
    assert len(body) > 100
    response = client.post(
        "/api/v1/faults/", data=body, content_type="application/json", **bearer(ingester_token)
    )
    assert response.status_code == 413
    assert not FaultEvent.objects.exists()

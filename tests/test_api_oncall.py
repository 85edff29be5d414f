"""The on-call loop over the API: actions and silences through the store, permissions, the
store's refusals as 409/400/404, the detail's on-call fields and bounded timeline."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.api.detail import TIMELINE_LIMIT
from incidents.api.tokens import issue_token
from incidents.choices import ActivityKind, OnCallState
from incidents.models import Incident, IncidentActivity, Silence
from incidents.roles import responder_group
from tests.builders import make_incident

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def alice(django_user_model):
    user = django_user_model.objects.create_user("alice", first_name="Alice")
    user.groups.add(responder_group())
    return user


@pytest.fixture
def token(alice) -> str:
    return issue_token(alice, name="pager").secret


@pytest.fixture
def post(client, token):
    def send(path: str, body: dict | None = None, secret: str | None = None):
        return client.post(
            path, data=body or {}, content_type="application/json", **bearer(secret or token)
        )

    return send


def url(incident: Incident, action: str) -> str:
    return f"/api/v1/incidents/{incident.pk}/{action}/"


def test_acknowledge_assign_note_close_reopen_through_the_store(post, alice, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    bob.groups.add(responder_group())
    incident = make_incident(status="resolved")

    body = post(url(incident, "acknowledge")).json()
    assert body["oncall_state"] == "acknowledged" and body["acknowledged_by"] == "alice"
    assert body["acknowledged_at"] is not None
    assert post(url(incident, "assign"), {"assignee": "bob"}).json()["assignee"] == "bob"
    assert post(url(incident, "notes"), {"text": "looking at the node"}).status_code == 200
    body = post(url(incident, "close"), {"resolution": "fixed", "note": "restarted"}).json()
    assert (body["oncall_state"], body["resolution"], body["closed_by"]) == (
        "closed",
        "fixed",
        "alice",
    )
    assert body["resolution_note"] == "restarted" and body["status"] == "resolved"
    body = post(url(incident, "reopen"), {"note": "it is back"}).json()
    assert body["oncall_state"] == "open" and body["closed_by"] is None
    assert body["assignee"] == "bob"  # reopening keeps the assignee
    assert post(url(incident, "assign"), {"assignee": None}).json()["assignee"] is None

    # The timeline, newest first, each row by its person.
    kinds = [row["kind"] for row in body["timeline"]]
    assert kinds == ["reopened", "closed", "note", "assigned", "acknowledged"]
    assert {row["actor"] for row in body["timeline"]} == {"alice"}
    assert body["timeline"][2]["text"] == "looking at the node"
    assert (
        list(IncidentActivity.objects.filter(incident=incident).values_list("kind", flat=True))[0]
        == ActivityKind.ASSIGNED
    )


def test_a_viewer_token_gets_403_and_nothing_changes(client, viewer):
    incident = make_incident()
    secret = issue_token(viewer).secret
    for action, body in [("acknowledge", {}), ("close", {"resolution": "fixed"})]:
        response = client.post(
            url(incident, action), data=body, content_type="application/json", **bearer(secret)
        )
        assert response.status_code == 403
    response = client.post(
        "/api/v1/silences/",
        data={"ends_at": (timezone.now() + timedelta(hours=1)).isoformat(), "comment": "x"},
        content_type="application/json",
        **bearer(secret),
    )
    assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.oncall_state == OnCallState.OPEN and not Silence.objects.exists()
    # A viewer reads silences.
    assert client.get("/api/v1/silences/", **bearer(secret)).status_code == 200


def test_refusals_are_409_with_the_reason(post):
    incident = make_incident()
    assert post(url(incident, "acknowledge")).status_code == 200
    response = post(url(incident, "acknowledge"))
    assert response.status_code == 409
    assert (
        response.json()["reason"] == "already"
        and "already acknowledged" in (response.json()["detail"])
    )
    assert post(url(incident, "reopen")).json()["reason"] == "not_closed"
    post(url(incident, "close"), {"resolution": "duplicate"})
    response = post(url(incident, "acknowledge"))
    assert (response.status_code, response.json()["reason"]) == (409, "closed")


def test_invalid_bodies_are_400_naming_the_field(post):
    incident = make_incident()
    response = post(url(incident, "close"), {"resolution": "shrug"})
    assert response.status_code == 400 and list(response.json()["errors"]) == ["resolution"]
    response = post(url(incident, "notes"), {"text": "   "})
    assert response.status_code == 400 and "text" in response.json()["errors"]
    response = post(url(incident, "assign"), {"assignee": "nobody"})
    assert response.status_code == 400
    assert response.json()["errors"] == {"assignee": ["'nobody' is not a responder"]}
    response = post(url(incident, "assign"), {})
    assert response.status_code == 400 and "assignee" in response.json()["errors"]
    incident.refresh_from_db()
    assert incident.oncall_state == OnCallState.OPEN and incident.assignee is None


@pytest.mark.parametrize("incident_id", ["8d1f4b9e-0000-4000-8000-000000000000", "not-a-uuid"])
def test_unknown_incident_is_404(post, incident_id):
    response = post(f"/api/v1/incidents/{incident_id}/acknowledge/")
    assert response.status_code == 404 and "does not exist" in response.json()["detail"]


def test_detail_timeline_is_bounded_and_newest_first(client, token, alice, store):
    incident = make_incident()
    for number in range(TIMELINE_LIMIT + 5):
        store.add_incident_note(incident.pk, text=f"note {number}", by=alice)
    body = client.get(f"/api/v1/incidents/{incident.pk}/", **bearer(token)).json()
    assert len(body["timeline"]) == TIMELINE_LIMIT
    assert body["timeline"][0]["text"] == f"note {TIMELINE_LIMIT + 4}"
    assert body["occurrences"] == 1 and body["last_seen_at"] is not None


def test_list_returns_oncall_fields_and_filters_by_oncall(client, token, post):
    open_one = make_incident()
    closed = make_incident()
    post(url(closed, "close"), {"resolution": "fixed"})
    rows = client.get("/api/v1/incidents/?oncall=open", **bearer(token)).json()["results"]
    assert [row["incident_id"] for row in rows] == [str(open_one.pk)]
    assert {"oncall_state", "occurrences", "last_seen_at"} <= rows[0].keys()
    rows = client.get("/api/v1/incidents/?oncall=closed", **bearer(token)).json()["results"]
    assert [row["oncall_state"] for row in rows] == ["closed"]
    response = client.get("/api/v1/incidents/?oncall=sleeping", **bearer(token))
    assert response.status_code == 400 and "oncall" in response.json()["errors"]


def test_silences_create_list_expire(client, token, post):
    ends_at = timezone.now() + timedelta(hours=2)
    response = post(
        "/api/v1/silences/",
        {"ends_at": ends_at.isoformat(), "comment": "node drain", "cluster": "prod-*"},
    )
    assert response.status_code == 201
    silence = response.json()
    assert silence["cluster"] == "prod-*" and silence["created_by"] == "alice"
    assert silence["active"] is True
    rows = client.get("/api/v1/silences/", **bearer(token)).json()["results"]
    assert [row["id"] for row in rows] == [silence["id"]]

    response = post(f"/api/v1/silences/{silence['id']}/expire/")
    assert response.status_code == 200 and response.json()["expired_by"] == "alice"
    assert client.get("/api/v1/silences/", **bearer(token)).json()["results"] == []
    ended = client.get("/api/v1/silences/?active=false", **bearer(token)).json()["results"]
    assert [row["id"] for row in ended] == [silence["id"]]
    response = post(f"/api/v1/silences/{silence['id']}/expire/")
    assert (response.status_code, response.json()["reason"]) == (409, "expired")
    for missing in ("999999", "99999999999999999999999", "x"):
        assert post(f"/api/v1/silences/{missing}/expire/").status_code == 404


def test_silence_errors_name_the_field(post):
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    response = post("/api/v1/silences/", {"ends_at": past, "comment": "x", "cluster": "a"})
    assert response.status_code == 400 and "ends_at" in response.json()["errors"]
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    response = post("/api/v1/silences/", {"ends_at": future, "comment": "x"})
    assert response.status_code == 400 and "__all__" in response.json()["errors"]
    response = post("/api/v1/silences/", {"ends_at": future, "comment": "x", "cluster": "a*b"})
    assert response.status_code == 400 and "cluster" in response.json()["errors"]
    response = post("/api/v1/silences/", {"comment": "x", "cluster": "a"})
    assert response.status_code == 400 and "ends_at" in response.json()["errors"]
    assert not Silence.objects.exists()


def test_detail_queries_do_not_grow_with_the_timeline(client, token, alice, store):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    incident = make_incident()
    path = f"/api/v1/incidents/{incident.pk}/"
    client.get(path, **bearer(token))  # the token's first use is written once
    store.add_incident_note(incident.pk, text="first", by=alice)
    with CaptureQueriesContext(connection) as few:
        client.get(path, **bearer(token))
    for number in range(30):
        store.add_incident_note(incident.pk, text=f"note {number}", by=alice)
    with CaptureQueriesContext(connection) as many:
        client.get(path, **bearer(token))
    assert len(many.captured_queries) == len(few.captured_queries)

"""The dashboard's on-call loop: who sees which buttons, the POST actions and where they lead,
the default list view, the timeline's query count, and the silences page."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents.choices import OnCallState, Status
from incidents.models import Incident, IncidentActivity, Silence
from incidents.roles import responder_group
from incidents.store import DjangoStateStore
from tests.builders import make_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def responder(django_user_model):
    user = django_user_model.objects.create_user("rita", password="x")
    user.groups.add(responder_group())
    return user


@pytest.fixture
def as_responder(client, responder):
    client.force_login(responder)
    return client


@pytest.fixture
def as_viewer(client, viewer):
    client.force_login(viewer)
    return client


def action_url(incident, action: str) -> str:
    return reverse("incidents:action", args=[incident.pk, action])


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# -- who sees what ----------------------------------------------------------------------------
def test_a_responder_gets_the_forms_and_a_viewer_sees_none(client, responder, viewer):
    incident = make_incident()
    client.force_login(responder)
    page = client.get("/").content.decode()
    detail = client.get(incident.get_absolute_url()).content.decode()
    assert 'data-testid="bulk-form"' in page and 'name="incident"' in page
    assert 'data-testid="incident-actions"' in detail and "Silence this fault" in detail
    client.force_login(viewer)
    page = client.get("/").content.decode()
    detail = client.get(incident.get_absolute_url()).content.decode()
    assert 'data-testid="bulk-form"' not in page and 'name="incident"' not in page
    assert (
        'data-testid="incident-actions"' not in detail
        and '<form method="post"'
        not in (detail.split('data-testid="oncall-card"')[1].split("</section>")[0])
    )


@pytest.mark.parametrize("action", ["acknowledge", "assign-me", "close", "reopen", "note"])
def test_a_viewer_cannot_act(as_viewer, action):
    incident = make_incident()
    response = as_viewer.post(action_url(incident, action), {"resolution": "fixed", "text": "x"})
    assert response.status_code == 403
    assert not IncidentActivity.objects.exists()


def test_actions_need_a_csrf_token(responder):
    client = Client(enforce_csrf_checks=True)
    client.force_login(responder)
    incident = make_incident()
    assert client.post(action_url(incident, "acknowledge")).status_code == 403
    assert Incident.objects.get().oncall_state == OnCallState.OPEN


def test_get_is_not_an_action(as_responder):
    assert as_responder.get(action_url(make_incident(), "acknowledge")).status_code == 405


def test_both_status_kinds_are_labelled(as_viewer):
    incident = make_incident(status=Status.RESOLVED)
    detail = as_viewer.get(incident.get_absolute_url()).content.decode()
    assert "Report ready" in detail and "Open" in detail and "Resolved" not in detail
    listing = as_viewer.get("/").content.decode()
    assert ">Triage<" in listing.replace(" ▲", "") or "Triage" in listing
    assert "On call" in listing and "Report ready" in listing


# -- actions from the incident page -----------------------------------------------------------
def test_acknowledge_assign_note_close_reopen_from_the_page(as_responder, responder):
    incident = make_incident()
    page = incident.get_absolute_url()
    for action, data in [
        ("acknowledge", {}),
        ("assign", {"assignee": responder.pk}),
        ("note", {"text": "looking at the rollout"}),
        ("close", {"resolution": "false_positive", "note": "probe misconfigured"}),
        ("reopen", {"note": "fired again"}),
    ]:
        response = as_responder.post(action_url(incident, action), data)
        assert response.status_code == 302 and response["Location"] == page, action
        assert messages_of(response), action
    incident.refresh_from_db()
    assert incident.oncall_state == OnCallState.OPEN and incident.assignee == responder
    kinds = list(
        IncidentActivity.objects.filter(incident=incident)
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == ["acknowledged", "assigned", "note", "closed", "reopened"]


def test_a_refusal_is_a_message_not_an_error_page(as_responder, responder):
    incident = make_incident()
    DjangoStateStore().acknowledge_incident(incident.pk, by=responder)
    response = as_responder.post(action_url(incident, "acknowledge"), follow=True)
    assert response.status_code == 200
    assert "Nothing changed: already acknowledged by rita" in response.content.decode()


def test_an_invalid_form_changes_nothing(as_responder):
    incident = make_incident()
    response = as_responder.post(action_url(incident, "close"), {"resolution": "solved"})
    assert response.status_code == 302
    assert "Nothing changed" in messages_of(response)[0]
    assert Incident.objects.get().oncall_state == OnCallState.OPEN


def test_next_must_stay_on_this_site(as_responder):
    incident = make_incident()
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        response = as_responder.post(action_url(incident, "note"), {"text": "x", "next": target})
        assert response["Location"] == incident.get_absolute_url()


def test_unknown_incident_or_action_is_404(as_responder):
    incident = make_incident()
    missing = reverse("incidents:action", args=["8b0a5a52-0000-4000-8000-000000000000", "note"])
    assert as_responder.post(missing, {"text": "x"}).status_code == 404
    assert as_responder.post(action_url(incident, "delete")).status_code == 404


# -- the list's bulk actions ------------------------------------------------------------------
def test_bulk_actions_return_to_the_same_filtered_list(as_responder, responder):
    first, second, closed = make_incident(), make_incident(), make_incident()
    DjangoStateStore().close_incident(closed.pk, by=responder, resolution="fixed")
    back = "/?severity=critical&oncall=open&oncall=closed"
    response = as_responder.post(
        reverse("incidents:bulk-action"),
        {"action": "acknowledge", "incident": [first.pk, second.pk, closed.pk], "next": back},
    )
    assert response.status_code == 302 and response["Location"] == back
    assert messages_of(response) == [
        "Acknowledge: 2 incidents; 1 refused (1 closed (reopen it first))."
    ]
    states = dict(Incident.objects.values_list("pk", "oncall_state"))
    assert states == {first.pk: "acknowledged", second.pk: "acknowledged", closed.pk: "closed"}


def test_bulk_assign_to_me_and_close(as_responder, responder):
    one, two = make_incident(), make_incident()
    url = reverse("incidents:bulk-action")
    as_responder.post(url, {"action": "assign_me", "incident": [one.pk]})
    as_responder.post(
        url, {"action": "close", "incident": [one.pk, two.pk], "resolution": "wont_fix"}
    )
    one.refresh_from_db()
    two.refresh_from_db()
    assert one.assignee == responder
    assert (one.oncall_state, two.resolution) == ("closed", "wont_fix")


def test_bulk_without_a_selection_says_so(as_responder):
    response = as_responder.post(reverse("incidents:bulk-action"), {"action": "acknowledge"})
    assert "Select at least one incident" in messages_of(response)[0]


def test_bulk_by_a_viewer_is_forbidden(as_viewer):
    incident = make_incident()
    response = as_viewer.post(
        reverse("incidents:bulk-action"), {"action": "acknowledge", "incident": [incident.pk]}
    )
    assert response.status_code == 403


# -- the default view -------------------------------------------------------------------------
def test_the_default_list_is_what_needs_a_human(as_responder, responder):
    open_one, acked, closed = make_incident(), make_incident(), make_incident()
    store = DjangoStateStore()
    store.acknowledge_incident(acked.pk, by=responder)
    store.close_incident(closed.pk, by=responder, resolution="fixed")

    def shown(query: str = "") -> set:
        response = as_responder.get("/" + query)
        assert response.status_code == 200
        return {row.pk for row in response.context["page"].rows}

    assert shown() == {open_one.pk, acked.pk}
    assert "Needs a human" in as_responder.get("/").content.decode()
    everything = "?oncall=open&oncall=acknowledged&oncall=closed"
    assert as_responder.get("/").context["whole_history"] == everything
    assert shown(everything) == {open_one.pk, acked.pk, closed.pk}
    assert shown("?oncall=closed") == {closed.pk}
    # An explicit filter means what it says: every critical incident, closed ones too.
    assert shown("?severity=critical") == {open_one.pk, acked.pk, closed.pk}


def test_links_of_the_default_view_keep_its_filter(as_responder):
    make_incident()
    page = as_responder.get("/").content.decode()
    assert (
        "severity=critical" in page and "oncall=open&amp;oncall=acknowledged&amp;severity" in page
    )


@pytest.mark.parametrize("sort", ["-last_seen", "last_seen", "-occurrences", "occurrences"])
def test_sorting_by_repeats_and_last_seen(as_viewer, sort):
    quiet = make_incident(occurrences=1)
    noisy = make_incident(occurrences=9, last_seen_at=timezone.now())
    rows = as_viewer.get(f"/?sort={sort}").context["page"].rows
    first = noisy if sort in ("-last_seen", "-occurrences") else quiet
    assert rows[0].pk == first.pk


# -- the incident page's timeline -------------------------------------------------------------
# session, user, permissions (and groups), the incident with its fault and people, executions,
# reports, timeline (with each row's person), other incidents of the fault; a responder's page
# also lists the people an incident can be assigned to.
DETAIL_QUERIES = {"responder": 10, "viewer": 9}


@pytest.mark.parametrize("user_fixture", ["responder", "viewer"])
@pytest.mark.parametrize("notes", [1, 30])
def test_incident_page_queries_do_not_grow_with_the_timeline(
    client, request, django_assert_num_queries, user_fixture, notes
):
    user = request.getfixturevalue(user_fixture)
    client.force_login(user)
    incident = make_incident()
    for n in range(notes):
        DjangoStateStore().add_incident_note(incident.pk, text=f"note {n}", by=user)
    with django_assert_num_queries(DETAIL_QUERIES[user_fixture]):
        response = client.get(incident.get_absolute_url())
    assert response.status_code == 200
    assert response.content.decode().count("activity__row--note") == notes


def test_the_timeline_names_people_the_worker_and_ingestion(as_viewer, responder):
    incident = make_incident()
    store = DjangoStateStore()
    store.claim_next_incident()
    store.add_incident_note(incident.pk, text="on it", by=responder)
    IncidentActivity.objects.create(incident=incident, kind="repeat", actor_kind="ingestion")
    page = as_viewer.get(incident.get_absolute_url()).content.decode()
    timeline = page.split('data-testid="timeline"')[1].split("</section>")[0]
    assert "triage worker" in timeline and "rita" in timeline and "subscriber" in timeline
    assert timeline.index("subscriber") < timeline.index("rita") < timeline.index("triage worker")


# -- silences ---------------------------------------------------------------------------------
def test_silence_this_fault_fills_in_the_form_and_returns_to_the_incident(as_responder):
    incident = make_incident()
    detail = as_responder.get(incident.get_absolute_url())
    link = detail.context["silence_url"]
    form = as_responder.get(link).context["form"]
    assert form.initial["cluster"] == incident.cluster
    assert form.initial["resource_name"] == incident.resource_name
    data = {name: form.initial[name] for name in ("cluster", "namespace", "resource_kind",
            "fault_type", "resource_name", "next")}  # fmt: skip
    response = as_responder.post(
        reverse("incidents:silences"), {**data, "hours": "1", "comment": "rollout"}
    )
    assert response.status_code == 302 and response["Location"] == incident.get_absolute_url()
    silence = Silence.objects.get()
    assert silence.resource_name == incident.resource_name
    assert timedelta(minutes=59) < silence.ends_at - timezone.now() <= timedelta(hours=1)


def test_an_invalid_silence_shows_the_errors(as_responder):
    response = as_responder.post(reverse("incidents:silences"), {"hours": "1", "comment": "x"})
    assert response.status_code == 400
    assert "at least one of cluster" in response.content.decode()
    response = as_responder.post(
        reverse("incidents:silences"), {"cluster": "a*b", "hours": "1", "comment": "x"}
    )
    assert response.status_code == 400 and "may only end a value" in response.content.decode()
    assert not Silence.objects.exists()


def test_silences_page_lists_and_expires(as_responder, responder):
    silence = DjangoStateStore().create_silence(
        by=responder, ends_at=timezone.now() + timedelta(hours=1), comment="x", cluster="c"
    )
    page = as_responder.get(reverse("incidents:silences"))
    assert [s.pk for s in page.context["active"]] == [silence.pk]
    response = as_responder.post(reverse("incidents:silence-expire", args=[silence.pk]))
    assert response.status_code == 302
    page = as_responder.get(reverse("incidents:silences"))
    assert page.context["active"] == [] and [s.pk for s in page.context["ended"]] == [silence.pk]


def test_a_viewer_sees_silences_but_cannot_make_or_end_them(as_viewer, responder):
    silence = DjangoStateStore().create_silence(
        by=responder, ends_at=timezone.now() + timedelta(hours=1), comment="x", cluster="c"
    )
    page = as_viewer.get(reverse("incidents:silences")).content.decode()
    assert "Expire now" not in page and 'data-testid="silence-form"' not in page
    url = reverse("incidents:silence-expire", args=[silence.pk])
    assert as_viewer.post(url).status_code == 403
    post = as_viewer.post(
        reverse("incidents:silences"), {"cluster": "x", "hours": 1, "comment": "y"}
    )
    assert post.status_code == 403
    assert Silence.objects.count() == 1

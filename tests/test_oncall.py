"""The on-call store methods: each one transaction, one timeline row, typed errors; races."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from incidents.choices import ActivityKind, OnCallState, Status
from incidents.models import Incident, IncidentActivity, Silence
from incidents.store import (
    DjangoStateStore,
    IncidentNotFound,
    InvalidRecord,
    InvalidTransition,
    Refusal,
    SilenceNotActive,
    SilenceNotFound,
)
from tests.builders import make_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", first_name="Alice", last_name="Ng")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob")


def timeline(incident):
    return list(IncidentActivity.objects.filter(incident=incident).order_by("at", "id"))


def test_acknowledge(store, alice):
    incident = make_incident()
    store.acknowledge_incident(incident.incident_id, by=alice)
    incident.refresh_from_db()
    assert incident.oncall_state == OnCallState.ACKNOWLEDGED
    assert incident.acknowledged_by == alice and incident.acknowledged_at is not None
    (row,) = timeline(incident)
    assert (row.kind, row.actor, row.from_value, row.to_value) == (
        ActivityKind.ACKNOWLEDGED, alice, "open", "acknowledged",
    )  # fmt: skip
    assert row.actor_label == "Alice Ng"


def test_acknowledging_twice_names_who_did(store, alice, bob):
    incident = make_incident()
    store.acknowledge_incident(incident.incident_id, by=alice)
    with pytest.raises(InvalidTransition, match="already acknowledged by Alice Ng") as raised:
        store.acknowledge_incident(incident.incident_id, by=bob)
    assert raised.value.reason is Refusal.ALREADY
    assert len(timeline(incident)) == 1


def test_acknowledging_a_closed_incident_is_an_error_that_says_so(store, alice):
    incident = make_incident()
    store.close_incident(incident.incident_id, by=alice, resolution="fixed")
    with pytest.raises(InvalidTransition, match="closed; reopen it first") as raised:
        store.acknowledge_incident(incident.incident_id, by=alice)
    assert raised.value.reason is Refusal.CLOSED


def test_assign_and_unassign(store, alice, bob):
    incident = make_incident()
    store.assign_incident(incident.incident_id, assignee=bob, by=alice)
    store.assign_incident(incident.incident_id, assignee=None, by=alice)
    incident.refresh_from_db()
    assert incident.assignee is None
    rows = timeline(incident)
    assert [(r.from_value, r.to_value) for r in rows] == [("", "bob"), ("bob", "")]
    with pytest.raises(InvalidTransition) as raised:
        store.assign_incident(incident.incident_id, assignee=None, by=alice)
    assert raised.value.reason is Refusal.ALREADY


def test_note(store, alice):
    incident = make_incident(status=Status.FAILED)
    store.add_incident_note(incident.incident_id, text="  rolled back 2024.12.3 ", by=alice)
    (row,) = timeline(incident)
    assert (row.kind, row.text) == (ActivityKind.NOTE, "rolled back 2024.12.3")
    with pytest.raises(InvalidRecord, match=f"note on incident {incident.incident_id}.*text"):
        store.add_incident_note(incident.incident_id, text="   ", by=alice)


@pytest.mark.parametrize("status", Status.values)
def test_close_in_any_triage_status_leaves_the_triage_status(store, alice, status):
    incident = make_incident(status=status)
    store.close_incident(
        incident.incident_id, by=alice, resolution="false_positive", note="noisy probe"
    )
    incident.refresh_from_db()
    assert incident.status == status
    assert (incident.oncall_state, incident.resolution, incident.resolution_note) == (
        OnCallState.CLOSED, "false_positive", "noisy probe",
    )  # fmt: skip
    assert incident.closed_by == alice and incident.closed_at is not None
    (row,) = timeline(incident)
    assert (row.kind, row.text) == (ActivityKind.CLOSED, "False positive: noisy probe")


def test_close_needs_a_known_resolution(store, alice):
    incident = make_incident()
    with pytest.raises(InvalidRecord, match="resolution"):
        store.close_incident(incident.incident_id, by=alice, resolution="solved")
    with pytest.raises(InvalidRecord, match="by"):
        store.close_incident(incident.incident_id, by=None, resolution="fixed")
    assert timeline(incident) == []


def test_reopen_clears_the_closing_and_keeps_the_timeline(store, alice, bob):
    incident = make_incident()
    store.acknowledge_incident(incident.incident_id, by=alice)
    store.close_incident(incident.incident_id, by=alice, resolution="fixed")
    store.reopen_incident(incident.incident_id, by=bob, note="back again")
    incident.refresh_from_db()
    assert incident.oncall_state == OnCallState.OPEN
    assert (incident.closed_at, incident.resolution, incident.acknowledged_at) == (None, "", None)
    kinds = [row.kind for row in timeline(incident)]
    assert kinds == [ActivityKind.ACKNOWLEDGED, ActivityKind.CLOSED, ActivityKind.REOPENED]
    with pytest.raises(InvalidTransition) as raised:
        store.reopen_incident(incident.incident_id, by=bob)
    assert raised.value.reason is Refusal.NOT_CLOSED


@pytest.mark.parametrize(
    "call",
    [
        lambda s, pk, u: s.acknowledge_incident(pk, by=u),
        lambda s, pk, u: s.assign_incident(pk, assignee=u, by=u),
        lambda s, pk, u: s.add_incident_note(pk, text="x", by=u),
        lambda s, pk, u: s.close_incident(pk, by=u, resolution="fixed"),
        lambda s, pk, u: s.reopen_incident(pk, by=u),
    ],
)
def test_unknown_incident(store, alice, call):
    with pytest.raises(IncidentNotFound):
        call(store, "8b0a5a52-0000-4000-8000-000000000000", alice)


def test_the_database_refuses_a_closed_incident_without_resolution():
    incident = make_incident()
    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.filter(pk=incident.pk).update(
            oncall_state="closed", closed_at=timezone.now()
        )


def test_the_database_refuses_acknowledged_without_a_time():
    incident = make_incident()
    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.filter(pk=incident.pk).update(oncall_state="acknowledged")


# -- silences ---------------------------------------------------------------------------------
def test_create_and_expire_a_silence(store, alice):
    ends = timezone.now() + timedelta(hours=1)
    silence = store.create_silence(
        by=alice, ends_at=ends, comment="rollout", cluster="prod-*", fault_type="CrashLoop"
    )
    assert silence.is_active() and silence.created_by == alice
    assert silence.matcher_text == "cluster=prod-*, fault_type=CrashLoop"
    store.expire_silence(silence.pk, by=alice)
    silence.refresh_from_db()
    assert not silence.is_active() and silence.expired_by == alice
    kinds = list(
        IncidentActivity.objects.filter(silence=silence)
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == [ActivityKind.SILENCE_CREATED, ActivityKind.SILENCE_EXPIRED]
    with pytest.raises(SilenceNotActive):
        store.expire_silence(silence.pk, by=alice)
    with pytest.raises(SilenceNotFound):
        store.expire_silence(999_999, by=alice)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"comment": "", "cluster": "a"}, "comment"),
        ({"comment": "x"}, "__all__"),
        ({"comment": "x", "cluster": "pr*od"}, "cluster"),
        ({"comment": "x", "cluster": "a", "ends_at": -1}, "ends_at"),
    ],
)
def test_invalid_silences_name_the_field(store, alice, fields, field):
    hours = fields.pop("ends_at", 1)
    with pytest.raises(InvalidRecord) as raised:
        store.create_silence(by=alice, ends_at=timezone.now() + timedelta(hours=hours), **fields)
    assert field in raised.value.errors
    assert not Silence.objects.exists()


# -- races ------------------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_responders_acknowledging_at_once(django_user_model):
    incident = make_incident()
    users = [django_user_model.objects.create_user(f"responder{n}") for n in range(2)]
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def act(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = DjangoStateStore().acknowledge_incident(
                incident.incident_id, by=users[index]
            )
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    won = [r for r in results if isinstance(r, Incident)]
    lost = [r for r in results if isinstance(r, InvalidTransition)]
    assert len(won) == 1 and len(lost) == 1, results
    assert lost[0].reason is Refusal.ALREADY
    winner = won[0].acknowledged_by
    assert f"already acknowledged by {winner.get_username()}" in str(lost[0])
    incident.refresh_from_db()
    assert incident.acknowledged_by == winner
    assert IncidentActivity.objects.filter(incident=incident).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_close_racing_the_worker_loses_neither(django_user_model):
    incident = make_incident(status=Status.INVESTIGATING)
    user = django_user_model.objects.create_user("responder")
    barrier = threading.Barrier(2)

    def act(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            store = DjangoStateStore()
            if index:
                store.close_incident(incident.incident_id, by=user, resolution="fixed")
            else:
                store.complete_incident(incident.incident_id, 0)
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    incident.refresh_from_db()
    assert (incident.status, incident.oncall_state) == (Status.RESOLVED, OnCallState.CLOSED)
    assert IncidentActivity.objects.filter(incident=incident).count() == 2


def test_admin_corrections_are_timeline_rows(store, alice):
    from tests.builders import make_fault_event

    event = make_fault_event(save=True)
    first = make_incident(event=event, status=Status.FAILED, exit_code=1)
    second = make_incident(event=event, status=Status.PENDING)
    store.correct_fault_event(event.fault_id, by=alice, severity="low")
    store.correct_incident_outcome(first.pk, exit_code=0, failure_reason="", by=alice)
    rows = list(IncidentActivity.objects.order_by("id"))
    corrected = {(r.incident_id, r.kind, r.actor) for r in rows[:2]}
    assert corrected == {
        (first.pk, ActivityKind.FAULT_CORRECTED, alice),
        (second.pk, ActivityKind.FAULT_CORRECTED, alice),
    }
    assert (rows[2].incident_id, rows[2].kind) == (first.pk, ActivityKind.OUTCOME_CORRECTED)
    assert rows[0].text == "severity = low"
    assert rows[2].to_value == "exit code 0, reason —"

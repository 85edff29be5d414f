"""The store's one writer of new incidents: create_incidents, create_incident built on it,
repeats counted on the open incident, silences, refusal codes and allowed_transitions."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.choices import ActivityKind, ActorKind, Status
from incidents.models import FaultEvent, Incident, IncidentActivity, Silence
from incidents.store import InvalidTransition, Outcome, Refusal
from tests.builders import make_fault_event, make_incident

pytestmark = pytest.mark.django_db


def later(event, seconds: int):
    """The same fault, firing again `seconds` after `event`."""
    return make_fault_event(
        fault_id=event.fault_id, timestamp=event.timestamp + timedelta(seconds=seconds)
    )


def test_create_incidents_gives_one_outcome_per_event_in_order(store):
    first = make_fault_event()
    replay = make_fault_event(fault_id=first.fault_id, timestamp=first.timestamp)
    outcomes = store.create_incidents([first, later(first, 10), replay, make_fault_event()])
    assert outcomes == [Outcome.CREATED, Outcome.COALESCED, Outcome.DUPLICATE, Outcome.CREATED]
    assert Incident.objects.count() == 2


def test_a_repeat_is_counted_on_the_open_incident_with_a_timeline_row(store):
    event = make_fault_event()
    (created,) = store.create_incidents([event])
    assert created is Outcome.CREATED
    outcomes = store.create_incidents([later(event, 30), later(event, 60), later(event, 45)])
    assert outcomes == [Outcome.COALESCED] * 3
    incident = Incident.objects.get()
    assert incident.occurrences == 4
    assert incident.last_seen_at == event.timestamp + timedelta(seconds=60)
    (row,) = IncidentActivity.objects.filter(incident=incident)
    assert (row.kind, row.actor_kind, row.actor) == (ActivityKind.REPEAT, ActorKind.INGESTION, None)
    assert (row.from_value, row.to_value) == ("1", "4")
    assert "3 times" in row.text


def test_a_new_incident_starts_with_one_occurrence_last_seen_at_its_fault_time(store):
    event = make_fault_event()
    store.create_incidents([event])
    incident = Incident.objects.get()
    assert (incident.occurrences, incident.last_seen_at) == (1, event.timestamp)
    assert incident.oncall_state == "open"


def test_create_incident_counts_the_repeat_and_says_why_no_incident(store):
    event = make_fault_event()
    first = store.create_incident(event)
    with pytest.raises(InvalidTransition) as raised:
        store.create_incident(later(event, 5))
    assert raised.value.reason is Refusal.ONE_OPEN_PER_FAULT
    assert raised.value.details["open_incident_id"] == first.incident_id
    first.refresh_from_db()
    assert first.occurrences == 2  # the same write as ingestion's


def test_create_incident_refuses_a_replay_with_its_code(store):
    event = make_fault_event()
    first = store.create_incident(event)
    store.update_incident_status(first.incident_id, Status.INVESTIGATING)
    store.complete_incident(first.incident_id, 0)
    with pytest.raises(InvalidTransition) as raised:
        store.create_incident(make_fault_event(fault_id=event.fault_id, timestamp=event.timestamp))
    assert raised.value.reason is Refusal.DUPLICATE
    assert Incident.objects.count() == 1


def silence(user, **fields):
    return Silence.objects.create(
        created_by=user,
        ends_at=timezone.now() + timedelta(hours=1),
        comment="maintenance",
        **fields,
    )


def test_a_silenced_fault_is_stored_and_counted_but_opens_no_incident(store, django_user_model):
    user = django_user_model.objects.create_user("sre")
    quiet = silence(user, cluster="prod-*", fault_type="CrashLoop")
    hit = make_fault_event(cluster="prod-eu-1", fault_type="CrashLoop")
    miss = make_fault_event(cluster="staging-1", fault_type="CrashLoop")
    assert store.create_incidents([hit, miss, later(hit, 5)]) == [
        Outcome.SILENCED, Outcome.CREATED, Outcome.SILENCED,
    ]  # fmt: skip
    assert FaultEvent.objects.filter(pk=hit.fault_id).exists()
    assert not Incident.objects.filter(fault_id=hit.fault_id).exists()
    quiet.refresh_from_db()
    assert quiet.matched == 2 and quiet.last_matched_at is not None


def test_a_silence_wins_over_an_open_incident_but_not_over_a_replay(store, django_user_model):
    event = make_fault_event(resource_name="api-1")
    store.create_incidents([event])
    silence(django_user_model.objects.create_user("sre"), resource_name="api-1")
    replay = make_fault_event(
        fault_id=event.fault_id, timestamp=event.timestamp, resource_name="api-1"
    )
    repeat = make_fault_event(fault_id=event.fault_id, resource_name="api-1")
    assert store.create_incidents([replay, repeat]) == [Outcome.DUPLICATE, Outcome.SILENCED]
    assert Incident.objects.get().occurrences == 1


@pytest.mark.parametrize(
    ("fields", "silenced"),
    [
        ({"namespace": "payments"}, True),
        ({"namespace": "pay*"}, True),
        ({"namespace": "pay"}, False),
        ({"resource_kind": "Pod", "fault_type": "OOMKilled"}, False),
        ({"resource_name": "api-*", "cluster": "prod-us-east-1"}, True),
    ],
)
def test_silence_matching(store, django_user_model, fields, silenced):
    silence(django_user_model.objects.create_user("sre"), **fields)
    (outcome,) = store.create_incidents([make_fault_event(resource_name="api-7")])
    assert (outcome is Outcome.SILENCED) is silenced


def test_expired_and_future_silences_do_not_match(store, django_user_model):
    user = django_user_model.objects.create_user("sre")
    ended = silence(user, cluster="prod-us-east-1")
    ended.expired_at = timezone.now()
    ended.save()
    Silence.objects.create(
        created_by=user, starts_at=timezone.now() + timedelta(hours=1),
        ends_at=timezone.now() + timedelta(hours=2), comment="later", cluster="prod-us-east-1",
    )  # fmt: skip
    assert store.create_incidents([make_fault_event()]) == [Outcome.CREATED]


def test_dry_run_classifies_and_writes_nothing(store, django_user_model):
    silence(django_user_model.objects.create_user("sre"), fault_type="OOMKilled")
    events = [make_fault_event(), make_fault_event(fault_type="OOMKilled")]
    assert store.create_incidents(events, dry_run=True) == [Outcome.CREATED, Outcome.SILENCED]
    assert not FaultEvent.objects.exists()
    assert Silence.objects.get().matched == 0


def test_a_batch_costs_the_same_queries_whatever_its_size(store, django_assert_max_num_queries):
    base = [make_fault_event() for _ in range(3)]
    store.create_incidents(base)

    def batch(n):
        return [make_fault_event() for _ in range(n)] + [later(e, n) for e in base]

    with django_assert_max_num_queries(12) as small:
        store.create_incidents(batch(2))
    with django_assert_max_num_queries(12) as large:
        store.create_incidents(batch(200))
    assert len(small.captured_queries) == len(large.captured_queries)


# -- refusals and allowed transitions --------------------------------------------------------
# The design's lifecycle written out independently of incidents.choices.TRANSITIONS.
LIFECYCLE = {
    "pending": ["investigating", "failed", "agent_failed"],
    "investigating": ["pending", "resolved", "failed", "agent_failed"],
    "resolved": ["pending"],
    "failed": ["pending"],
    "agent_failed": ["pending"],
}


@pytest.mark.parametrize("status", list(LIFECYCLE))
def test_allowed_transitions_follow_the_design(store, status):
    assert sorted(store.allowed_transitions(make_incident(status=status))) == sorted(
        LIFECYCLE[status]
    )


def test_allowed_transitions_leave_out_a_requeue_while_another_is_open(store):
    event = make_fault_event(save=True)
    finished = make_incident(event=event, status=Status.FAILED)
    make_incident(event=event, status=Status.PENDING)
    assert store.allowed_transitions(finished) == []


@pytest.mark.parametrize(
    ("status", "complete", "target", "reason"),
    [
        ("pending", True, "resolved", Refusal.LIFECYCLE),
        ("resolved", True, "resolved", Refusal.ALREADY),
        ("pending", True, "pending", Refusal.NOT_TERMINAL),
        ("pending", False, "bogus", Refusal.UNKNOWN_STATUS),
        ("resolved", False, "investigating", Refusal.LIFECYCLE),
    ],
)
def test_refusals_carry_a_reason_code(store, status, complete, target, reason):
    incident = make_incident(status=status)
    with pytest.raises(InvalidTransition) as raised:
        if complete:
            store.complete_incident(incident.incident_id, 0, status=target)
        else:
            store.update_incident_status(incident.incident_id, target)
    assert raised.value.reason is reason


def test_every_triage_move_is_a_timeline_row(store, django_user_model):
    incident = make_incident()
    store.claim_next_incident()
    store.complete_incident(incident.incident_id, 1, "no fix verified")
    admin = django_user_model.objects.create_user("staff")
    store.update_incident_status(incident.incident_id, Status.PENDING, by=admin)
    rows = list(IncidentActivity.objects.filter(incident=incident).order_by("at", "id"))
    assert [(r.from_value, r.to_value, r.actor_kind) for r in rows] == [
        ("pending", "investigating", ActorKind.WORKER),
        ("investigating", "failed", ActorKind.WORKER),
        ("failed", "pending", ActorKind.PERSON),
    ]
    assert rows[1].text == "exit code 1: no fix verified"
    assert rows[2].actor == admin

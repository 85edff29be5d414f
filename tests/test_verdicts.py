"""record_report_verdict: one verdict per person per report, changeable, its history on the
timeline, typed errors naming the field, and the database's own checks."""

import uuid

import pytest
from django.db import IntegrityError, transaction

from incidents.choices import ActivityKind, Verdict
from incidents.models import IncidentActivity, ReportVerdict
from incidents.store import InvalidRecord, ReportNotFound
from tests.builders import make_incident, make_report

pytestmark = pytest.mark.django_db


@pytest.fixture
def report():
    return make_report(make_incident(status="resolved", cluster="prod-eu-1"))


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="x")


def test_a_verdict_is_stored_with_the_reports_copies_and_a_timeline_row(store, report, alice):
    row = store.record_report_verdict(
        report.report_id, by=alice, verdict="wrong", actual_cause=" OOM in the sidecar "
    )
    stored = ReportVerdict.objects.get()
    assert (stored.pk, stored.verdict, stored.actual_cause) == (
        row.pk,
        "wrong",
        "OOM in the sidecar",
    )
    assert (stored.cluster, stored.fault_type) == ("prod-eu-1", report.incident.fault_type)
    assert stored.generated_at == report.generated_at
    (activity,) = IncidentActivity.objects.filter(kind=ActivityKind.VERDICT)
    assert activity.incident_id == report.incident_id
    assert (activity.actor, activity.from_value, activity.to_value) == (alice, "", "Wrong")
    assert "actual cause: OOM in the sidecar" in activity.text


def test_a_second_verdict_by_the_same_person_changes_it_and_keeps_history(store, report, alice):
    store.record_report_verdict(report.report_id, by=alice, verdict="correct")
    store.record_report_verdict(
        report.report_id, by=alice, verdict="partly_correct", actual_cause="also the quota"
    )
    row = ReportVerdict.objects.get()
    assert row.verdict == "partly_correct"
    assert row.updated_at >= row.created_at
    history = IncidentActivity.objects.filter(kind=ActivityKind.VERDICT).order_by("at", "id")
    assert [(h.from_value, h.to_value) for h in history] == [
        ("", "Correct"),
        ("Correct", "Partly correct"),
    ]


def test_the_same_verdict_again_writes_nothing(store, report, alice):
    store.record_report_verdict(report.report_id, by=alice, verdict="correct", note="spot on")
    store.record_report_verdict(report.report_id, by=alice, verdict="correct", note="spot on")
    assert IncidentActivity.objects.filter(kind=ActivityKind.VERDICT).count() == 1


def test_two_people_each_have_their_verdict(store, report, alice, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="x")
    store.record_report_verdict(report.report_id, by=alice, verdict="correct")
    store.record_report_verdict(report.report_id, by=bob, verdict="not_useful")
    assert sorted(ReportVerdict.objects.values_list("verdict", flat=True)) == [
        "correct",
        "not_useful",
    ]


@pytest.mark.parametrize("verdict", ["partly_correct", "wrong"])
def test_a_missed_cause_needs_the_actual_cause(store, report, alice, verdict):
    with pytest.raises(InvalidRecord) as caught:
        store.record_report_verdict(report.report_id, by=alice, verdict=verdict, actual_cause="  ")
    assert "actual_cause" in caught.value.errors
    assert str(report.report_id) in str(caught.value)
    assert not ReportVerdict.objects.exists()
    assert not IncidentActivity.objects.filter(kind=ActivityKind.VERDICT).exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"verdict": "maybe"}, "verdict"),
        ({"verdict": "correct", "actual_cause": "x" * 2001}, "actual_cause"),
        ({"verdict": "correct", "note": "x" * 10_001}, "note"),
    ],
)
def test_bad_fields_are_named(store, report, alice, kwargs, field):
    with pytest.raises(InvalidRecord) as caught:
        store.record_report_verdict(report.report_id, by=alice, **kwargs)
    assert list(caught.value.errors) == [field]


def test_no_person_no_verdict(store, report):
    with pytest.raises(InvalidRecord) as caught:
        store.record_report_verdict(report.report_id, by=None, verdict="correct")
    assert "by" in caught.value.errors


@pytest.mark.parametrize("report_id", [uuid.uuid4(), "not-a-uuid"])
def test_an_unknown_report_is_report_not_found(store, alice, report_id):
    with pytest.raises(ReportNotFound, match=str(report_id)):
        store.record_report_verdict(report_id, by=alice, verdict="correct")


@pytest.mark.parametrize(
    "values",
    [
        {"verdict": "maybe"},
        {"verdict": Verdict.WRONG, "actual_cause": ""},
        {"verdict": Verdict.PARTLY_CORRECT, "actual_cause": ""},
    ],
)
def test_the_database_refuses_what_the_store_refuses(report, alice, values):
    row = ReportVerdict(
        report=report, user=alice, cluster="c", fault_type="f", generated_at=report.generated_at,
        **values,
    )  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic():
        row.save()


def test_the_database_keeps_one_verdict_per_person(report, alice):
    values = {"report": report, "user": alice, "cluster": "c", "fault_type": "f"}
    ReportVerdict.objects.create(verdict="correct", generated_at=report.generated_at, **values)
    with pytest.raises(IntegrityError), transaction.atomic():
        ReportVerdict.objects.create(
            verdict="wrong", actual_cause="x", generated_at=report.generated_at, **values
        )

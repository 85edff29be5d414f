"""IncidentFilterSet: one test per parameter, combinations, and invalid values."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.http import QueryDict

from incidents.filters import MAX_VALUES, IncidentFilterSet
from incidents.models import Incident
from incidents.selectors import FilterChoices
from tests.builders import make_fault_event, make_incident

pytestmark = pytest.mark.django_db

NO_CHOICES = FilterChoices(clusters=[], namespaces=[], kinds=[], fault_types=[])


def matching(query: str) -> set:
    filterset = IncidentFilterSet(
        QueryDict(query), queryset=Incident.objects.all(), choices=NO_CHOICES
    )
    assert filterset.is_valid(), filterset.errors
    return set(filterset.qs.values_list("pk", flat=True))


def errors(query: str) -> dict:
    filterset = IncidentFilterSet(
        QueryDict(query), queryset=Incident.objects.all(), choices=NO_CHOICES
    )
    assert not filterset.is_valid()
    return filterset.errors


def test_no_parameter_matches_every_incident_however_old():
    old = make_incident(created_at=datetime(2019, 1, 1, tzinfo=UTC))
    new = make_incident()
    assert matching("") == {old.pk, new.pk}


def test_status_repeats_for_several_values():
    pending = make_incident()
    failed = make_incident(status="failed")
    resolved = make_incident(status="resolved")
    assert matching("status=failed") == {failed.pk}
    assert matching("status=failed&status=pending") == {failed.pk, pending.pk}
    assert resolved.pk not in matching("status=failed&status=pending")


def test_severity_repeats_for_several_values():
    critical = make_incident(event=make_fault_event(severity="critical"))
    high = make_incident(event=make_fault_event(severity="high"))
    make_incident(event=make_fault_event(severity="low"))
    assert matching("severity=critical") == {critical.pk}
    assert matching("severity=critical&severity=high") == {critical.pk, high.pk}


def test_cluster_repeats_for_several_values():
    east = make_incident(event=make_fault_event(cluster="prod-us-east-1"))
    west = make_incident(event=make_fault_event(cluster="prod-eu-west-1"))
    make_incident(event=make_fault_event(cluster="staging-us-west-2"))
    assert matching("cluster=prod-us-east-1") == {east.pk}
    assert matching("cluster=prod-us-east-1&cluster=prod-eu-west-1") == {east.pk, west.pk}


def test_a_cluster_the_cached_choices_have_not_seen_is_accepted():
    brand_new = make_incident(event=make_fault_event(cluster="prod-ap-south-1"))
    assert matching("cluster=prod-ap-south-1") == {brand_new.pk}
    assert matching("cluster=no-such-cluster") == set()


def test_namespace_is_exact():
    payments = make_incident(event=make_fault_event(resource_namespace="payments"))
    make_incident(event=make_fault_event(resource_namespace="payments-staging"))
    assert matching("namespace=payments") == {payments.pk}


def test_resource_kind_is_exact():
    deployment = make_incident(event=make_fault_event(resource_kind="Deployment"))
    make_incident(event=make_fault_event(resource_kind="Pod"))
    assert matching("resource_kind=Deployment") == {deployment.pk}


def test_fault_type_is_exact():
    oom = make_incident(event=make_fault_event(fault_type="OOMKilled"))
    make_incident(event=make_fault_event(fault_type="CrashLoop"))
    assert matching("fault_type=OOMKilled") == {oom.pk}


def test_created_after_takes_a_date_from_its_first_moment():
    on_the_day = make_incident(created_at=datetime(2025, 12, 20, 0, 0, tzinfo=UTC))
    make_incident(created_at=datetime(2025, 12, 19, 23, 59, 59, tzinfo=UTC))
    assert matching("created_after=2025-12-20") == {on_the_day.pk}


def test_created_before_takes_a_date_including_that_whole_day():
    late_on_the_day = make_incident(created_at=datetime(2025, 12, 20, 23, 59, tzinfo=UTC))
    make_incident(created_at=datetime(2025, 12, 21, 0, 0, tzinfo=UTC))
    assert matching("created_before=2025-12-20") == {late_on_the_day.pk}


def test_created_bounds_take_datetimes_with_or_without_offset():
    at = datetime(2025, 12, 20, 15, 30, tzinfo=UTC)
    inside = make_incident(created_at=at)
    make_incident(created_at=at - timedelta(minutes=1))
    make_incident(created_at=at + timedelta(hours=1))
    assert matching("created_after=2025-12-20T15:30:00Z&created_before=2025-12-20T16:00") == {
        inside.pk
    }
    # 16:30 in UTC+01:00 is 15:30 UTC: the upper bound is exclusive.
    assert inside.pk not in matching("created_before=2025-12-20T16:30:00%2B01:00")


def test_q_matches_resource_names_case_insensitively():
    api = make_incident(event=make_fault_event(resource_name="payments-API-7f8b9c"))
    make_incident(event=make_fault_event(resource_name="worker-1"))
    assert matching("q=api-7f8") == {api.pk}


def test_q_shorter_than_a_trigram_matches_only_a_whole_fault_id():
    make_incident(event=make_fault_event(resource_name="ab-worker"))
    short = make_incident(event=make_fault_event(fault_id="ab", resource_name="x"))
    assert matching("q=ab") == {short.pk}
    assert matching("q=abw") == set()
    assert len(matching("q=ab-")) == 1


def test_q_matches_a_fault_id_whole_or_by_its_prefix():
    event = make_fault_event(fault_id="f7a3b2c1d4e5f6a7", resource_name="x", save=True)
    first = make_incident(event=event, status="resolved")
    second = make_incident(event=event)
    make_incident()
    assert matching("q=f7a3b2c1d4e5f6a7") == {first.pk, second.pk}
    assert matching("q=F7A3B2C1") == {first.pk, second.pk}


def test_q_matches_an_exact_incident_id():
    target = make_incident()
    make_incident()
    assert matching(f"q={target.pk}") == {target.pk}
    assert matching(f"q={str(target.pk).upper()}") == {target.pk}


def test_filters_combine_with_and():
    wanted = make_incident(
        event=make_fault_event(cluster="prod-us-east-1", severity="critical"), status="failed"
    )
    make_incident(event=make_fault_event(cluster="prod-us-east-1", severity="critical"))
    make_incident(
        event=make_fault_event(cluster="prod-eu-west-1", severity="critical"), status="failed"
    )
    make_incident(event=make_fault_event(cluster="prod-us-east-1", severity="low"), status="failed")
    assert matching(
        "cluster=prod-us-east-1&severity=critical&status=failed&status=agent_failed"
    ) == {wanted.pk}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=done", "status"),
        ("severity=urgent", "severity"),
        ("created_after=yesterday", "created_after"),
        ("created_after=2025-13-40", "created_after"),
        ("created_before=2025-12-20T25:00", "created_before"),
        ("created_before=9999-12-31", "created_before"),  # the day after does not exist
        ("q=" + "x" * 201, "q"),
        ("q=a%00b", "q"),
        ("cluster=a%00b", "cluster"),
        ("namespace=" + "n" * 300, "namespace"),
    ],
)
def test_invalid_values_are_errors_naming_the_parameter(query, field):
    assert field in errors(query)


def test_too_many_repeated_values_are_an_error():
    query = "&".join(f"cluster=c{n}" for n in range(MAX_VALUES + 1))
    assert "cluster" in errors(query)
    statuses = "&".join(["status=failed"] * (MAX_VALUES + 1))
    assert "status" in errors(statuses)


def test_sql_looking_text_is_only_text():
    make_incident(event=make_fault_event(resource_name="api"))
    assert matching("q=%27%20OR%201%3D1%20--") == set()
    assert matching("namespace=payments%27%3B%20DROP%20TABLE%20incidents%3B--") == set()
    assert Incident.objects.count() == 1


def test_choices_come_from_the_given_data_and_keep_an_unseen_chosen_value():
    choices = FilterChoices(
        clusters=["prod-eu-west-1", "prod-us-east-1"],
        namespaces=["payments"],
        kinds=["Pod"],
        fault_types=["CrashLoop"],
        counts={"cluster": {"prod-eu-west-1": 1200, "prod-us-east-1": 3}},
    )
    filterset = IncidentFilterSet(
        QueryDict("cluster=new-cluster"), queryset=Incident.objects.all(), choices=choices
    )
    offered = filterset.form.fields["cluster"].choices
    assert offered == [
        ("prod-eu-west-1", "prod-eu-west-1 (1,200)"),
        ("prod-us-east-1", "prod-us-east-1 (3)"),
        ("new-cluster", "new-cluster"),
    ]
    assert [value for value, _ in filterset.form.fields["namespace"].choices] == ["payments"]


def test_unknown_parameters_are_ignored():
    incident = make_incident()
    assert matching(f"utm_source=x&id={uuid.uuid4()}") == {incident.pk}


@pytest.mark.parametrize(
    ("name", "field", "values"),
    [
        ("namespace", "resource_namespace", ("payments", "checkout")),
        ("resource_kind", "resource_kind", ("Pod", "Job")),
        ("fault_type", "fault_type", ("CrashLoop", "OOMKilled")),
    ],
)
def test_every_list_parameter_repeats_for_several_values(name, field, values):
    wanted = [make_incident(event=make_fault_event(**{field: value})) for value in values]
    make_incident(event=make_fault_event(**{field: "other"}))
    query = "&".join(f"{name}={value}" for value in values)
    assert matching(query) == {incident.pk for incident in wanted}
    assert matching(f"{name}=") == matching("")  # the drop-down's "any" option


def test_repeated_q_narrows_like_several_words():
    both = make_incident(event=make_fault_event(resource_name="ledger-pricing-1"))
    make_incident(event=make_fault_event(resource_name="pricing-api-2"))
    make_incident(event=make_fault_event(resource_name="ledger-3"))
    assert matching("q=ledger&q=pricing") == {both.pk}

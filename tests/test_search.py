"""`q`: one search box over what the list shows. One test per kind of term, then the rules
(several words narrow, quoted phrases stay together, short terms)."""

from urllib.parse import urlencode

import pytest
from django.http import QueryDict

from incidents.filters import IncidentFilterSet
from incidents.models import Incident
from incidents.search import search_terms
from incidents.selectors import FilterChoices
from tests.builders import make_fault_event, make_incident

pytestmark = pytest.mark.django_db

NO_CHOICES = FilterChoices(clusters=[], namespaces=[], kinds=[], fault_types=[])


def found(query: str) -> set:
    filterset = IncidentFilterSet(
        QueryDict(query), queryset=Incident.objects.all(), choices=NO_CHOICES
    )
    assert filterset.is_valid(), filterset.errors
    return set(filterset.qs.values_list("pk", flat=True))


@pytest.fixture
def target():
    """One incident with a distinctive value in every searchable field, and a decoy beside it."""
    make_incident(
        event=make_fault_event(
            cluster="prod-eu-west-2",
            resource_namespace="checkout",
            resource_kind="Deployment",
            resource_name="cart-service",
            fault_type="OOMKilled",
            fault_id="0ddba11cafe00001",
        )
    )
    return make_incident(
        event=make_fault_event(
            cluster="staging-ap-south-1",
            resource_namespace="kube-system",
            resource_kind="StatefulSet",
            resource_name="coredns",
            fault_type="CrashLoop",
            fault_id="beefc0ffee123456",
        )
    )


@pytest.mark.parametrize(
    "term",
    [
        "coredns",  # resource name
        "COREDNS",  # any case
        "kube-system",  # namespace
        "StatefulSet",  # kind
        "crashloop",  # fault type
        "staging-ap-south",  # cluster
        "BEEFC0FFEE123456",  # fault id, any case
        "beefc0",  # fault id prefix
        "kube-system/StatefulSet/coredns",  # the path as the list prints it
        "StatefulSet/coredns",  # part of the path
    ],
)
def test_each_kind_of_term_finds_its_incident(target, term):
    assert found(urlencode({"q": term})) == {target.pk}


def test_the_full_incident_id_finds_it(target):
    assert found(f"q={target.pk}") == {target.pk}
    assert found(f"q={str(target.pk).upper()}") == {target.pk}


def test_the_short_id_the_admin_prints_finds_it(target):
    short = str(target.pk)[:8]
    assert target.pk in found(f"q={short}")
    assert target.pk in found(f"q={short.upper()}")
    assert all(str(pk).startswith(short) for pk in found(f"q={short}"))


def test_several_words_narrow(target):
    make_incident(event=make_fault_event(resource_name="coredns", resource_namespace="other"))
    assert found("q=coredns+kube-system") == {target.pk}
    assert found("q=coredns+checkout") == set()


def test_a_quoted_phrase_stays_together(target):
    assert found('q="StatefulSet/coredns staging-ap"') == {target.pk}
    # Both words occur, but not side by side: the phrase finds nothing.
    assert found('q="coredns StatefulSet"') == set()
    assert found("q=coredns+StatefulSet") == {target.pk}


def test_search_terms_split_words_and_keep_phrases():
    assert search_terms(['order-service "payments api" checkout', '""', " "]) == [
        "order-service",
        "payments api",
        "checkout",
    ]
    assert search_terms(['"unclosed phrase']) == ['"unclosed', "phrase"]


def test_a_term_shorter_than_three_characters_matches_a_whole_fault_id(target):
    short = make_incident(event=make_fault_event(fault_id="ab", resource_name="abacus"))
    assert found("q=ab") == {short.pk}


def test_like_wildcards_are_literal(target):
    assert found("q=core%25dns") == set()
    assert found("q=core_ns") == set()


def test_a_word_naming_a_known_value_means_that_value():
    choices = FilterChoices(
        clusters=["prod-eu-west-2"],
        namespaces=["payments"],
        kinds=["Pod"],
        fault_types=["OOMKilled"],
    )
    in_payments = make_incident(
        event=make_fault_event(resource_namespace="payments", resource_name="api-1")
    )
    # "payments" in a name elsewhere: a substring, but not the namespace the word names.
    make_incident(event=make_fault_event(resource_namespace="shop", resource_name="payments-ui"))
    oom = make_incident(event=make_fault_event(fault_type="OOMKilled", resource_namespace="x"))

    def found_with_choices(query: str) -> set:
        filterset = IncidentFilterSet(
            QueryDict(query), queryset=Incident.objects.all(), choices=choices
        )
        assert filterset.is_valid(), filterset.errors
        return set(filterset.qs.values_list("pk", flat=True))

    assert found_with_choices("q=PAYMENTS") == {in_payments.pk}
    assert found_with_choices("q=oomkilled") == {oom.pk}
    assert found_with_choices("q=payments-ui") == found("q=payments-ui")  # not a known value

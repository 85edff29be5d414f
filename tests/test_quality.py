"""The quality pages: the verdict form on the report page, the list's verdict filter, and the
scoreboard's numbers for a known set of verdicts."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from incidents.choices import Verdict
from incidents.filters import IncidentFilterSet
from incidents.models import Incident, ReportVerdict
from incidents.quality.scoreboard import ScoreFilters, scoreboard
from incidents.roles import responder_group
from incidents.selectors import FilterChoices
from tests.builders import make_incident, make_report

pytestmark = pytest.mark.django_db

NO_CHOICES = FilterChoices(clusters=[], namespaces=[], kinds=[], fault_types=[])


@pytest.fixture
def responder(django_user_model):
    user = django_user_model.objects.create_user("rita", password="x")
    user.groups.add(responder_group())
    return user


@pytest.fixture
def report():
    return make_report(make_incident(status="resolved"))


def _people(django_user_model, n):
    return [django_user_model.objects.create_user(f"p{i}", password="x") for i in range(n)]


# --- the report page ---------------------------------------------------------------------------


def test_a_responder_records_a_verdict_without_javascript(client, responder, report):
    client.force_login(responder)
    url = reverse("incidents:report", args=[report.report_id])
    page = client.get(url)
    assert b'data-testid="verdict-form"' in page.content
    response = client.post(
        reverse("incidents:report-verdict", args=[report.report_id]),
        {"verdict": "wrong", "actual_cause": "the <b>node</b> ran out of disk", "note": ""},
    )
    assert response.status_code == 302
    assert response["Location"] == url + "#verdicts"
    page = client.get(url)
    assert "Your verdict: wrong." in page.content.decode()
    assert "the &lt;b&gt;node&lt;/b&gt; ran out of disk" in page.content.decode()
    assert ReportVerdict.objects.get().user == responder


def test_a_refused_verdict_says_which_field_and_stores_nothing(client, responder, report):
    client.force_login(responder)
    response = client.post(
        reverse("incidents:report-verdict", args=[report.report_id]),
        {"verdict": "partly_correct", "actual_cause": ""},
        follow=True,
    )
    assert "No verdict recorded: actual_cause:" in response.content.decode()
    assert not ReportVerdict.objects.exists()


def test_the_verdict_post_needs_csrf(responder, report):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(responder)
    response = client.post(
        reverse("incidents:report-verdict", args=[report.report_id]), {"verdict": "correct"}
    )
    assert response.status_code == 403
    assert not ReportVerdict.objects.exists()


def test_a_viewer_sees_verdicts_but_no_form_and_cannot_post(client, viewer, report, responder):
    from incidents.store import DjangoStateStore

    DjangoStateStore().record_report_verdict(report.report_id, by=responder, verdict="correct")
    client.force_login(viewer)
    page = client.get(reverse("incidents:report", args=[report.report_id]))
    assert b'data-testid="verdict-form"' not in page.content
    assert b'data-verdict="correct"' in page.content
    response = client.post(
        reverse("incidents:report-verdict", args=[report.report_id]), {"verdict": "wrong"}
    )
    assert response.status_code == 403
    assert ReportVerdict.objects.get().verdict == "correct"


def test_staff_may_judge(client, report, django_user_model, grant):
    staff = django_user_model.objects.create_user("s", password="x", is_staff=True)
    client.force_login(grant(staff, "view_triagereport", "view_incident"))
    client.post(
        reverse("incidents:report-verdict", args=[report.report_id]), {"verdict": "correct"}
    )
    assert ReportVerdict.objects.get().user == staff


def test_the_report_page_queries_do_not_grow_with_verdicts(
    client, responder, report, django_user_model, django_assert_max_num_queries
):
    from incidents.store import DjangoStateStore

    store = DjangoStateStore()
    client.force_login(responder)
    url = reverse("incidents:report", args=[report.report_id])
    client.get(url)
    store.record_report_verdict(report.report_id, by=responder, verdict="correct")
    with django_assert_max_num_queries(12) as one:
        client.get(url)
    for person in _people(django_user_model, 5):
        store.record_report_verdict(report.report_id, by=person, verdict="not_useful")
    with django_assert_max_num_queries(len(one.captured_queries)):
        client.get(url)


# --- the list's verdict filter --------------------------------------------------------------


def matching(query: str) -> set:
    filterset = IncidentFilterSet(
        QueryDict(query), queryset=Incident.objects.all(), choices=NO_CHOICES
    )
    assert filterset.is_valid(), filterset.errors
    return set(filterset.qs.values_list("pk", flat=True))


def test_the_verdict_filter(store, responder):
    right, wrong, unjudged = (make_incident(status="resolved") for _ in range(3))
    store.record_report_verdict(make_report(right).pk, by=responder, verdict="correct")
    store.record_report_verdict(
        make_report(wrong).pk, by=responder, verdict="wrong", actual_cause="DNS"
    )
    make_report(unjudged)
    assert matching("verdict=correct") == {right.pk}
    assert matching("verdict=correct&verdict=wrong") == {right.pk, wrong.pk}
    assert matching("verdict=any") == {right.pk, wrong.pk}
    assert matching("verdict=none") == {unjudged.pk}
    assert matching("verdict=none&verdict=correct") == {unjudged.pk, right.pk}


def test_an_unknown_verdict_value_is_an_error():
    filterset = IncidentFilterSet(
        QueryDict("verdict=great"), queryset=Incident.objects.all(), choices=NO_CHOICES
    )
    assert not filterset.is_valid()
    assert "verdict" in filterset.errors


# --- the scoreboard --------------------------------------------------------------------------

NOW = datetime(2026, 3, 18, 12, tzinfo=UTC)  # a Wednesday


def _judged(store, people, verdicts, *, fault_type="CrashLoop", cluster="prod", age_days=1):
    """A report generated `age_days` before NOW, and one verdict on it per person given."""
    incident = make_incident(status="resolved", fault_type=fault_type, cluster=cluster)
    report = make_report(incident, generated_at=NOW - timedelta(days=age_days), recorded=True)
    for person, verdict in zip(people, verdicts, strict=False):
        cause = "something else" if verdict in ("wrong", "partly_correct") else ""
        store.record_report_verdict(report.pk, by=person, verdict=verdict, actual_cause=cause)
    return report


def test_scoreboard_percentages_for_a_known_set_of_verdicts(store, django_user_model):
    a, b = _people(django_user_model, 2)
    # CrashLoop: 3 correct, 1 partly, 1 wrong, 1 not useful (6 verdicts on 4 reports).
    _judged(store, [a, b], ["correct", "correct"])
    _judged(store, [a, b], ["correct", "partly_correct"])
    _judged(store, [a], ["wrong"])
    _judged(store, [a], ["not_useful"])
    # OOMKilled: 1 correct, 1 wrong, in another cluster.
    _judged(store, [a, b], ["correct", "wrong"], fault_type="OOMKilled", cluster="stage")
    # Unjudged reports in the window, and a judged one outside it.
    _judged(store, [], [])
    _judged(store, [], [], fault_type="OOMKilled", cluster="stage")
    _judged(store, [a], ["wrong"], age_days=40)

    board = scoreboard(ScoreFilters(days=30), now=NOW)
    assert (board.reports, board.judged) == (7, 5)
    assert round(board.judged_share, 1) == 71.4
    assert board.overall.total == 8
    shares = [round(board.overall.share(v), 1) for v in Verdict.values]
    assert shares == [50.0, 12.5, 25.0, 12.5]  # correct, partly, wrong, not useful
    crash, oom = board.by_fault_type
    assert (crash.label, crash.total, round(crash.share("correct"), 1)) == ("CrashLoop", 6, 50.0)
    assert round(crash.share("not_useful"), 1) == 16.7
    assert (oom.label, oom.counts) == ("OOMKilled", {"correct": 1, "wrong": 1})

    narrowed = scoreboard(ScoreFilters(days=30, clusters=("stage",)), now=NOW)
    assert (narrowed.reports, narrowed.judged, narrowed.overall.total) == (2, 1, 2)
    longer = scoreboard(ScoreFilters(days=90), now=NOW)
    assert (longer.reports, longer.overall.counts["wrong"]) == (8, 3)


def test_scoreboard_weeks_count_by_the_reports_week(store, django_user_model):
    (a,) = _people(django_user_model, 1)
    _judged(store, [a], ["correct"], age_days=0)  # Wednesday 2026-03-18
    _judged(store, [a], ["wrong"], age_days=3)  # Sunday 2026-03-15: the week before
    board = scoreboard(ScoreFilters(days=7), now=NOW)
    weeks = {week.isoformat(): score.counts for week, score in board.weeks}
    assert weeks == {"2026-03-09": {"wrong": 1}, "2026-03-16": {"correct": 1}}


def test_the_scoreboard_page(client, viewer, store, responder):
    incident = make_incident(status="resolved", fault_type="CrashLoop")
    report = make_report(incident, recorded=True)
    store.record_report_verdict(report.pk, by=responder, verdict="correct")
    client.force_login(viewer)
    page = client.get(reverse("incidents:quality"), {"days": "7"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "1</strong> of <strong>1</strong> reports judged (100.0%)" in text
    assert reverse("incidents:report", args=[report.report_id]) in text
    assert "<svg" in text and "Verdicts per week" in text


@pytest.mark.parametrize("query", [{"days": "365"}, {"days": "x"}, {"cluster": "a\x00b"}])
def test_the_scoreboard_refuses_bad_parameters(client, viewer, query):
    client.force_login(viewer)
    assert client.get(reverse("incidents:quality"), query).status_code == 400


def test_the_scoreboard_needs_sign_in_and_the_viewer_permission(client, django_user_model):
    assert client.get(reverse("incidents:quality")).status_code == 302
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    assert client.get(reverse("incidents:quality")).status_code == 403


def test_the_scoreboard_makes_the_same_queries_for_1_and_20_verdicts(
    client, viewer, store, django_user_model, django_assert_num_queries
):
    people = _people(django_user_model, 20)
    report = make_report(make_incident(status="resolved"))
    store.record_report_verdict(report.pk, by=people[0], verdict="correct")
    client.force_login(viewer)
    url = reverse("incidents:quality")
    client.get(url)  # filter choices cached
    with CaptureQueriesContext(connection) as first:
        client.get(url)
    for person in people[1:]:
        store.record_report_verdict(report.pk, by=person, verdict="wrong", actual_cause="x")
    with django_assert_num_queries(len(first.captured_queries)):
        client.get(url)


def _counters():
    from incidents.models import QualityDay

    return {
        (row.day, row.cluster, row.fault_type): (
            row.reports,
            row.judged,
            row.correct,
            row.partly_correct,
            row.wrong,
            row.not_useful,
        )  # fmt: skip
        for row in QualityDay.objects.all()
    }


def test_the_day_counters_the_store_keeps_equal_a_recount(store, django_user_model):
    from incidents.quality import rollup

    a, b = _people(django_user_model, 2)
    first = _judged(store, [a, b], ["correct", "wrong"])
    _judged(store, [a], ["not_useful"], fault_type="OOMKilled", age_days=3)
    _judged(store, [], [])
    # A changed verdict moves its count; the report stays judged once.
    store.record_report_verdict(first.pk, by=b, verdict="correct")
    kept = _counters()
    day = (NOW - timedelta(days=1)).date()
    assert kept[(day, "prod", "CrashLoop")] == (2, 1, 2, 0, 0, 0)
    assert rollup.rebuild() == len(kept)
    assert _counters() == kept

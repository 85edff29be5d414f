"""The dashboard's pages through the Django test client: list, filters, counts, chart, pages,
CSV, incident and report pages, 404s, sanitizing, query counts, and the CSP's rules."""

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from incidents.choices import SEVERITY_COLOURS, STATUS_COLOURS
from incidents.models import TriageReport
from incidents.roles import viewer_group
from tests.builders import make_execution, make_fault_event, make_incident, make_report

pytestmark = pytest.mark.django_db

LIST = "/"
# Session and user (2), the page (1), the capped count (1), the summary (1), the choices with
# the agents' health for the degraded banner in the same round trip (1), today's agent spend
# (1, never cached: the budget banner is current). A page in the middle of the list adds one:
# the rows before it, capped.
LIST_QUERIES_COLD = 7
# The summary, the choices and the agents' health from the cache; the spend is read.
LIST_QUERIES_WARM = 5
# The tab title's count of what needs a human, off the default view (which counts it already).
TITLE_COUNT = 1
# Sorted by severity the page reads each of the four severities (while the page is not full).
SEVERITY_SORT_EXTRA = 3
# Session and user, the incident with its fault and people, executions, reports, the timeline,
# other occurrences; for a responder (this superuser) the people it can be assigned to.
DETAIL_QUERIES = 8
# A viewer gets no action forms, so not the people an incident can be assigned to.
RESPONDER_ONLY_DETAIL_QUERIES = 1
# Session and user, the report with its incident, its verdicts, the fault's previous report.
REPORT_QUERIES = 5
# Sorted by status the page reads each of the five statuses (while the page is not full).
STATUS_SORT_EXTRA = 4
# A viewer's rights come from its group: the user's and the group's permissions, read once.
VIEWER_PERMISSION_QUERIES = 2


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()


@pytest.fixture(params=["superuser", "viewer"])
def reader(request, client, django_user_model):
    """A signed-in client and the queries its permission check adds: a superuser's (none) and
    an SRE's in the viewer group (whose page counts are what most requests pay)."""
    if request.param == "superuser":
        user = django_user_model.objects.create_superuser("admin", "admin@example.com", "x")
        extra = 0
    else:
        user = request.getfixturevalue("viewer")
        extra = VIEWER_PERMISSION_QUERIES
    client.force_login(user)
    return client, extra


def rows_of(response) -> list[str]:
    """The incident ids of the table's rows, in order."""
    html = response.content.decode()
    table = html[html.find('data-testid="incident-table"') :]
    return re.findall(r'<a href="/incidents/([0-9a-f-]{36})/" class="resource__link"', table)


def ids(*incidents) -> list[str]:
    return [str(incident.pk) for incident in incidents]


# --- the list -------------------------------------------------------------------------------


def test_the_list_shows_every_incident_newest_first_however_old(admin_client):
    ancient = make_incident(created_at=datetime(2019, 3, 1, tzinfo=UTC))
    recent = make_incident(created_at=timezone.now() - timedelta(hours=1))
    newest = make_incident()
    response = admin_client.get(LIST)
    assert response.status_code == 200
    assert rows_of(response) == ids(newest, recent, ancient)
    assert response.context["count"].value == 3


def test_each_row_shows_badges_resource_fault_times_and_exit_code(admin_client):
    created = timezone.now() - timedelta(minutes=30)
    incident = make_incident(
        event=make_fault_event(
            cluster="prod-eu-west-1",
            resource_namespace="checkout",
            resource_kind="Deployment",
            resource_name="cart-service",
            fault_type="OOMKilled",
            severity="high",
        ),
        status="failed",
        created_at=created,
        started_at=created + timedelta(seconds=95),
        completed_at=created + timedelta(minutes=12, seconds=5),
        exit_code=3,
        failure_reason="secret db-credentials missing",
    )
    html = admin_client.get(LIST).content.decode()
    assert f'badge--{SEVERITY_COLOURS["high"]} badge--severity" data-severity="high">High<' in html
    assert (
        f'badge--{STATUS_COLOURS["failed"]} badge--status" data-status="failed">Triage failed<'
        in html
    )
    assert "checkout/Deployment/" in html and "cart-service" in html
    assert "prod-eu-west-1" in html and "OOMKilled" in html
    assert f'datetime="{incident.created_at.isoformat()}"' in html
    assert "30m ago" in html
    assert ">1m 35s<" in html  # time to start
    assert ">10m 30s<" in html  # duration
    assert 'exit--bad">3<' in html
    assert "secret db-credentials missing" in html


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("status=failed", {"b"}),
        ("status=failed&status=resolved", {"b", "c"}),
        ("severity=low", {"c"}),
        ("severity=critical&severity=low", {"a", "c"}),
        ("cluster=prod-eu-west-1", {"b"}),
        ("cluster=prod-eu-west-1&cluster=staging-us-west-2", {"b", "c"}),
        ("namespace=checkout", {"b"}),
        ("resource_kind=Deployment", {"c"}),
        ("fault_type=OOMKilled", {"b"}),
        ("created_after=2025-12-19", {"b", "c"}),
        ("created_before=2025-12-19", {"a", "b"}),
        ("created_after=2025-12-19T12:00:00Z&created_before=2025-12-20", {"b", "c"}),
        ("q=LEDGER", {"a"}),
        ("q=fault-c", {"c"}),
        ("status=failed&cluster=prod-eu-west-1&severity=high", {"b"}),
        ("status=failed&cluster=prod-us-east-1", set()),
    ],
)
def test_every_filter_and_combinations_narrow_the_list(admin_client, query, wanted):
    made = {
        "a": make_incident(
            event=make_fault_event(
                fault_id="fault-a", resource_name="ledger-writer-1", severity="critical"
            ),
            created_at=datetime(2025, 12, 18, 10, tzinfo=UTC),
        ),
        "b": make_incident(
            event=make_fault_event(
                fault_id="fault-b",
                cluster="prod-eu-west-1",
                resource_namespace="checkout",
                fault_type="OOMKilled",
                severity="high",
            ),
            status="failed",
            created_at=datetime(2025, 12, 19, 12, tzinfo=UTC),
        ),
        "c": make_incident(
            event=make_fault_event(
                fault_id="fault-c",
                cluster="staging-us-west-2",
                resource_kind="Deployment",
                severity="low",
            ),
            status="resolved",
            created_at=datetime(2025, 12, 20, 8, tzinfo=UTC),
        ),
    }
    response = admin_client.get(f"{LIST}?{query}")
    assert response.status_code == 200
    assert set(rows_of(response)) == {str(made[key].pk) for key in wanted}
    assert response.context["count"].value == len(wanted)


def test_q_finds_an_incident_by_its_id(admin_client):
    target = make_incident()
    make_incident()
    assert rows_of(admin_client.get(f"{LIST}?q={target.pk}")) == ids(target)


@pytest.mark.parametrize(
    "query",
    [
        "status=done",
        "severity=urgent",
        "created_after=last-tuesday",
        "created_before=2025-02-30",
        "sort=name",
        "after=%%%",
        "after=abc&before=def",
        "q=%00",
    ],
)
def test_invalid_parameters_show_errors_and_no_rows(admin_client, query):
    make_incident()
    response = admin_client.get(f"{LIST}?{query}")
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="filter-errors"' in html
    assert rows_of(response) == []
    assert "Clear all filters" in html


def test_an_empty_result_says_how_to_get_out_of_it(admin_client):
    make_incident()
    html = admin_client.get(f"{LIST}?cluster=nowhere").content.decode()
    assert "No incidents match" in html
    assert 'href="/">Clear filters</a>' in html


def test_an_empty_database_says_how_incidents_arrive(admin_client):
    html = admin_client.get(LIST).content.decode()
    assert "No incidents yet" in html and "ingest_events" in html


def test_sorting_by_severity_and_status(admin_client):
    low = make_incident(event=make_fault_event(severity="low"), status="failed")
    critical = make_incident(event=make_fault_event(severity="critical"), status="resolved")
    high = make_incident(event=make_fault_event(severity="high"))
    assert rows_of(admin_client.get(f"{LIST}?sort=severity")) == ids(critical, high, low)
    assert rows_of(admin_client.get(f"{LIST}?sort=-severity")) == ids(low, high, critical)
    assert rows_of(admin_client.get(f"{LIST}?sort=status")) == ids(high, critical, low)
    assert rows_of(admin_client.get(f"{LIST}?sort=created")) == ids(low, critical, high)


def test_column_headers_toggle_the_sort_and_keep_the_filter(admin_client):
    make_incident(status="failed")
    html = admin_client.get(f"{LIST}?status=failed&sort=severity").content.decode()
    assert 'aria-sort="ascending"' in html
    assert 'href="?status=failed&amp;sort=-severity"' in html
    assert 'href="?status=failed&amp;sort=created"' not in html
    assert 'href="?status=failed"' in html  # Created: back to the default order


def test_pages_follow_keyset_cursors_and_keep_the_filter_in_every_link(admin_client):
    now = timezone.now()
    failed = [
        make_incident(status="failed", created_at=now - timedelta(minutes=n)) for n in range(60)
    ]
    make_incident()  # not failed: on no page
    first = admin_client.get(f"{LIST}?status=failed")
    assert rows_of(first) == ids(*failed[:50])
    html = first.content.decode()
    next_link = re.search(r'href="(\?[^"]+)" rel="next"', html).group(1).replace("&amp;", "&")
    assert "status=failed" in next_link and "after=" in next_link
    second = admin_client.get(LIST + next_link)
    assert rows_of(second) == ids(*failed[50:])
    html = second.content.decode()
    assert 'rel="next"' not in html
    prev_link = re.search(r'href="(\?[^"]+)" rel="prev"', html).group(1).replace("&amp;", "&")
    assert "status=failed" in prev_link and "before=" in prev_link
    assert rows_of(admin_client.get(LIST + prev_link)) == ids(*failed[:50])
    # "Last" is exactly the rows after the last full page: the page "Next" reached.
    last = admin_client.get(f"{LIST}?status=failed&last=1")
    assert rows_of(last) == ids(*failed[50:])
    assert str(last.context["position"]) == "51–60 of 60, newest first"
    assert str(second.context["position"]) == "51–60 of 60, newest first"
    assert str(first.context["position"]) == "1–50 of 60, newest first"
    back = admin_client.get(LIST + prev_link)
    assert str(back.context["position"]) == "1–50 of 60, newest first"


def test_counts_by_status_and_severity_link_to_a_narrower_filter(admin_client):
    make_incident(event=make_fault_event(severity="critical"), status="failed")
    make_incident(event=make_fault_event(severity="critical"))
    make_incident(event=make_fault_event(severity="low", cluster="prod-eu-west-1"))
    response = admin_client.get(f"{LIST}?cluster=prod-us-east-1")
    summary = response.context["summary"]
    assert [(t.value, t.count) for t in summary.by_status] == [("pending", 1), ("failed", 1)]
    assert [(t.value, t.count) for t in summary.by_severity] == [("critical", 2)]
    html = response.content.decode()
    assert 'href="?cluster=prod-us-east-1&amp;status=failed"' in html
    assert 'href="?cluster=prod-us-east-1&amp;severity=critical"' in html
    # A count that is the current filter links back out of it.
    narrowed = admin_client.get(f"{LIST}?cluster=prod-us-east-1&status=failed").content.decode()
    assert 'href="?cluster=prod-us-east-1" class="tally tally--active"' in narrowed


def test_the_summary_covers_the_window_and_says_so(admin_client):
    make_incident()
    make_incident(created_at=timezone.now() - timedelta(days=40))
    response = admin_client.get(LIST + "?time=received")
    assert response.context["default_view"]  # `time` alone is no filter
    assert response.context["summary"].total == 1
    assert response.context["count"].value == 2
    html = response.content.decode()
    assert "Last 14 days" in html and "The list below is not limited to it." in html
    ranged = admin_client.get(f"{LIST}?created_after=2025-01-01&created_before=2025-01-31")
    assert "Jan 1, 2025 – Feb 1, 2025" in ranged.content.decode()


def test_the_chart_is_accessible_inline_svg_per_day_by_severity(admin_client):
    make_incident(event=make_fault_event(severity="critical"))
    make_incident(event=make_fault_event(severity="critical"))
    make_incident(event=make_fault_event(severity="low"))
    html = admin_client.get(LIST).content.decode()
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'role="img"' in svg and 'aria-labelledby="chart-title chart-desc"' in svg
    assert '<title id="chart-title">Incidents per day by severity</title>' in svg
    assert "3 incidents from" in svg
    today = timezone.now().strftime("%a %b %-d")
    assert f"<title>{today}: 2 critical</title>" in svg
    assert f"<title>{today}: 1 low</title>" in svg
    assert "chart__bar--red" in svg and "chart__bar--blue" in svg


@pytest.mark.parametrize("rows", [1, 50])
@pytest.mark.parametrize(
    ("query", "extra"),
    [
        ("", 0),
        ("?status=resolved&cluster=prod-us-east-1&q=api", 0),
        ("?status=resolved&sort=severity", SEVERITY_SORT_EXTRA),
        ("?status=resolved&sort=status", STATUS_SORT_EXTRA),
    ],
)
def test_list_query_count_does_not_depend_on_rows(
    reader, django_assert_num_queries, rows, query, extra
):
    client, permission_queries = reader
    # Off the default view the tab title's needs-a-human count is one more query (cached).
    title = TITLE_COUNT if query else 0
    now = timezone.now()
    for n in range(rows):
        incident = make_incident(status="resolved", created_at=now - timedelta(minutes=n))
        make_report(incident)
    client.get(LIST)  # the session's first use may save it
    cache.clear()
    with django_assert_num_queries(LIST_QUERIES_COLD + extra + title + permission_queries):
        response = client.get(LIST + query)
    assert len(rows_of(response)) == rows
    with django_assert_num_queries(LIST_QUERIES_WARM + extra + permission_queries):
        client.get(LIST + query)


def test_the_costliest_list_stays_within_the_query_budget(reader):
    """A viewer's first look at a list sorted by status, none of it cached: at most 13 queries:
    the 12 of issue 14's budget (the agents' health rides in the filter choices' round trip) and
    today's agent spend (one range scan of agent_executions_spend_idx, never cached: the budget
    banner must be current). bench/dashboard.py holds a million incidents to the same."""
    client, _ = reader
    for status in ("pending", "investigating", "resolved", "failed", "agent_failed"):
        make_incident(status=status)
    client.get(LIST)
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"{LIST}?sort=status")
    assert len(rows_of(response)) == 5
    assert len(queries) <= 13, [query["sql"] for query in queries]


# --- CSV -------------------------------------------------------------------------------------


def read_csv(response) -> list[dict]:
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_streams_the_filtered_list_newest_first(admin_client):
    created = timezone.now() - timedelta(hours=1)
    older = make_incident(status="failed", created_at=created - timedelta(hours=1))
    newer = make_incident(
        status="failed",
        created_at=created,
        started_at=created + timedelta(seconds=30),
        completed_at=created + timedelta(seconds=150),
    )
    make_incident()
    response = admin_client.get(reverse("incidents:export") + "?status=failed&after=ignored")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="incidents-')
    rows = read_csv(response)
    assert [row["incident_id"] for row in rows] == ids(newer, older)
    assert rows[0]["seconds_to_start"] == "30" and rows[0]["duration_seconds"] == "120"
    assert rows[0]["created_at"] == newer.created_at.isoformat()


def test_csv_defuses_spreadsheet_formulas(admin_client):
    make_incident(status="failed", failure_reason='=HYPERLINK("http://evil","x")')
    rows = read_csv(admin_client.get(reverse("incidents:export")))
    assert rows[0]["failure_reason"].startswith("'=HYPERLINK")
    assert rows[0]["exit_code"] == "1"


def test_csv_with_invalid_filters_is_a_400_naming_them(admin_client):
    response = admin_client.get(reverse("incidents:export") + "?severity=urgent")
    assert response.status_code == 400
    assert "severity:" in response.content.decode()


def test_the_export_link_carries_the_filter(admin_client):
    html = admin_client.get(f"{LIST}?status=failed&sort=severity").content.decode()
    assert 'href="/incidents.csv?status=failed"' in html


# --- the incident page -----------------------------------------------------------------------


def test_the_incident_page_shows_every_field_and_the_lifecycle(admin_client):
    created = timezone.now() - timedelta(hours=2)
    incident = make_incident(
        event=make_fault_event(
            subscription_id="sub-9f8e7d",
            resource_api_version="apps/v1",
            resource_kind="Deployment",
            resource_uid="uid-1234-abcd",
        ),
        status="failed",
        created_at=created,
        started_at=created + timedelta(minutes=2, seconds=30),
        completed_at=created + timedelta(minutes=10, seconds=30),
        exit_code=2,
        failure_reason="image tag does not exist",
    )
    response = admin_client.get(incident.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    for value in [
        str(incident.pk),
        incident.fault_id,
        incident.resource_name,
        "sub-9f8e7d",
        "apps/v1",
        "uid-1234-abcd",
        "image tag does not exist",
        "after waiting 2m 30s",
        "ran 8m 00s",
        "Completed (Triage failed)",
    ]:
        assert value in html, value
    assert f"<title>CrashLoop on {incident.resource_name} · Incident · Incident triage" in html


def test_a_pending_incident_shows_how_long_it_has_waited(admin_client):
    incident = make_incident(created_at=timezone.now() - timedelta(minutes=7))
    html = admin_client.get(incident.get_absolute_url()).content.decode()
    assert "waiting for 7m" in html
    assert "No agent has run for this incident yet." in html
    assert "No report yet" in html


def test_logs_are_escaped_marked_previous_or_current_and_ansi_free(admin_client):
    context = {
        "context": "Back-off restarting <b>failed</b> container",
        "node": "ip-10-0-0-1",
        "logs": [
            {
                "container": "api",
                "previous": True,
                "hasPanic": True,
                "sample": "\x1b[31mERROR\x1b[0m <script>alert(1)</script> panic: boom\r\n",
            },
            {
                "container": "sidecar<img src=x onerror=alert(2)>",
                "previous": False,
                "sample": "\x1b]0;title\x07ok",
            },
        ],
    }
    incident = make_incident(event=make_fault_event(context=json.dumps(context)))
    html = admin_client.get(incident.get_absolute_url()).content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "sidecar&lt;img src=x onerror=alert(2)&gt;" in html
    assert "\x1b" not in html and "[31m" not in html
    assert "ERROR &lt;script&gt;" in html
    assert "previous container" in html and "current container" in html
    assert 'pill--bad">panic<' in html
    assert html.count('<details class="log"') == 3  # two logs and the rest of the context
    assert "&quot;node&quot;: &quot;ip-10-0-0-1&quot;" in html
    assert "Back-off restarting &lt;b&gt;failed&lt;/b&gt; container" in html


def test_context_that_is_not_json_is_shown_as_text(admin_client):
    incident = make_incident(event=make_fault_event(context="plain <text>"))
    html = admin_client.get(incident.get_absolute_url()).content.decode()
    assert "Context (not JSON)" in html and "plain &lt;text&gt;" in html


def test_executions_reports_and_recurrences_on_the_incident_page(admin_client):
    event = make_fault_event(save=True)
    earlier = make_incident(
        event=event, status="resolved", timestamp=timezone.now() - timedelta(days=3)
    )
    incident = make_incident(event=event, status="failed")
    execution = make_execution(incident, exit_code=1, error_message="agent crashed: OOM")
    old_report = make_report(
        incident,
        execution,
        generated_at=timezone.now() - timedelta(hours=1),
        report_markdown="# Old report\n\nfirst try",
    )
    new_report = make_report(
        incident, execution, report_markdown="# New report\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    html = admin_client.get(incident.get_absolute_url()).content.decode()
    assert "agent crashed: OOM" in html
    # The logs are links to a signed-in view, never the server's paths.
    assert reverse("incidents:execution-log", args=[execution.pk, "stderr"]) in html
    assert "/logs/agent.stderr.log" not in html
    assert html.index(str(new_report.pk)) < html.index(str(old_report.pk))
    assert '<h1 id="md-new-report">New report</h1>' in html  # newest rendered inline
    assert "<td>1</td>" in html
    assert "first try" not in html
    assert reverse("incidents:report-raw", args=[new_report.pk]) in html
    assert earlier.get_absolute_url() in html


@pytest.mark.parametrize("related", [1, 5])
def test_incident_page_query_count_does_not_depend_on_related_rows(
    reader, django_assert_num_queries, related
):
    client, permission_queries = reader
    event = make_fault_event(save=True)
    for _ in range(related):
        make_incident(event=event, status="resolved")
    incident = make_incident(event=event, status="failed")
    for _ in range(related):
        make_report(incident)
    client.get(LIST)
    expected = DETAIL_QUERIES + permission_queries
    if permission_queries:  # the viewer
        expected -= RESPONDER_ONLY_DETAIL_QUERIES
    with django_assert_num_queries(expected):
        assert client.get(incident.get_absolute_url()).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        f"/incidents/{uuid.uuid4()}/",
        "/incidents/not-a-uuid/",
        "/incidents/123/",
        "/incidents/..%2F..%2Fetc%2Fpasswd/",
        f"/reports/{uuid.uuid4()}/",
        "/reports/nope/",
        f"/reports/{uuid.uuid4()}/raw/",
        "/reports/%27%20OR%201=1/raw/",
    ],
)
def test_unknown_or_malformed_ids_are_404(admin_client, path):
    assert admin_client.get(path).status_code == 404


def test_staff_see_a_link_to_the_admin_change_page(admin_client, client, django_user_model):
    incident = make_incident()
    admin_url = reverse("admin:incidents_incident_change", args=[incident.pk])
    assert f'href="{admin_url}"' in admin_client.get(incident.get_absolute_url()).content.decode()
    viewer = django_user_model.objects.create_user("viewer", password="x")
    viewer.groups.add(viewer_group())
    client.force_login(viewer)
    assert (
        'data-testid="admin-link"' not in client.get(incident.get_absolute_url()).content.decode()
    )


# --- reports ---------------------------------------------------------------------------------

HOSTILE_MARKDOWN = """# Findings

<script>alert('xss')</script>
<img src=x onerror="alert(1)">
[click](javascript:alert(document.cookie))
<a href="JaVaScRiPt:alert(1)">x</a>
<iframe src="https://evil.example"></iframe>
<svg onload=alert(1)>
<p style="background:url(javascript:alert(1))">styled</p>

## Table

| a | b |
|---|---|
| 1 | 2 |

```python
print("<b>not bold</b>")
```
"""


def assert_inert(html: str) -> None:
    lowered = html.lower()
    for needle in [
        "<script>alert",
        "onerror=",
        "onload=",
        '="javascript:',  # in an attribute; CommonMark keeps a raw HTML block's lines as text
        "<iframe",
        "<svg onload",
        'style="background',
    ]:
        assert needle not in lowered, needle


def test_the_report_page_renders_markdown_sanitized_with_a_table_of_contents(admin_client):
    incident = make_incident(status="resolved")
    report = make_report(incident, report_markdown=HOSTILE_MARKDOWN)
    response = admin_client.get(report.get_absolute_url())
    assert response.status_code == 200
    html = response.content.decode()
    article = html[html.index('<article class="prose report-body">') :]
    assert_inert(article)
    assert '<h1 id="md-findings">Findings</h1>' in article
    assert "<table>" in article and "<td>1</td>" in article
    assert "&lt;b&gt;not bold&lt;/b&gt;" in article
    assert '<nav class="toc" aria-label="Contents">' in html
    assert 'href="#md-table"' in html
    assert "<title>Report for CrashLoop on" in html


def test_hostile_stored_report_html_is_never_served(admin_client):
    incident = make_incident(status="resolved")
    report = make_report(incident, report_markdown="# Safe\n\nfine")
    TriageReport.objects.filter(pk=report.pk).update(
        report_html='<h1>Safe</h1><script>alert("stored")</script><img src=x onerror=alert(1)>'
    )
    for url in [report.get_absolute_url(), incident.get_absolute_url()]:
        html = admin_client.get(url).content.decode()
        assert 'alert("stored")' not in html and "onerror" not in html
        assert "fine" in html


def test_the_raw_report_is_the_markdown_as_written(admin_client):
    incident = make_incident(status="resolved")
    report = make_report(incident, report_markdown=HOSTILE_MARKDOWN)
    response = admin_client.get(reverse("incidents:report-raw", args=[report.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content.decode() == HOSTILE_MARKDOWN


def test_report_page_query_count(reader, django_assert_num_queries):
    client, permission_queries = reader
    report = make_report(make_incident(status="resolved"))
    client.get(LIST)
    with django_assert_num_queries(REPORT_QUERIES + permission_queries):
        assert client.get(report.get_absolute_url()).status_code == 200


# --- the Content-Security-Policy's rules, on every page ---------------------------------------


def test_pages_have_no_inline_script_style_or_event_handler(admin_client, client):
    incident = make_incident(status="failed")
    report = make_report(incident)
    pages = [
        admin_client.get(LIST),
        admin_client.get(f"{LIST}?status=bogus"),
        admin_client.get(incident.get_absolute_url()),
        admin_client.get(report.get_absolute_url()),
        admin_client.get(reverse("incidents:quality")),
        client.get(reverse("login")),
    ]
    for response in pages:
        html = response.content.decode()
        assert "default-src 'self'" in response["Content-Security-Policy"]
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, tag
        assert not re.search(r"\sstyle\s*=", html)
        assert not re.search(r"\son[a-z]+\s*=", html)
        assert "https://" not in re.sub(r'href="https?://[^"]*"', "", html)  # no CDN


def test_thousands_of_repeated_parameters_are_refused_not_a_crash(admin_client):
    query = "&".join(["status=failed"] * 2000)
    assert admin_client.get(f"{LIST}?{query}").status_code == 400
    assert admin_client.get(reverse("incidents:export") + f"?{query}").status_code == 400


def test_the_match_count_is_capped_and_says_so(admin_client, monkeypatch):
    monkeypatch.setattr("incidents.selectors.COUNT_CAP", 3)
    for _ in range(4):
        make_incident()
    html = admin_client.get(LIST).content.decode()
    assert '<strong data-testid="match-count">more than 3</strong>' in html
    assert len(rows_of(admin_client.get(LIST))) == 4  # the list itself hides nothing


def test_a_requeued_incident_points_at_its_earlier_attempts(admin_client):
    incident = make_incident()
    make_execution(incident, exit_code=137, error_message="killed")
    html = admin_client.get(incident.get_absolute_url()).content.decode()
    assert "Requeued after 1 earlier attempt: see the agent executions below." in html

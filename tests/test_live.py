"""The list as a live page: refresh remembered per user, "N new since you looked", the title's
count of what needs a human, and the chips of applied filters."""

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from incidents import live
from incidents.choices import OnCallState, Resolution, Status
from incidents.report_summary import first_action, summarize_report
from tests.builders import REPORT_MARKDOWN, make_incident

pytestmark = pytest.mark.django_db
LIST = "/"


def body_refresh(html: str) -> str | None:
    match = re.search(r'<body data-refresh="(\d+)">', html)
    return match.group(1) if match else None


def test_auto_refresh_is_on_at_30_s_and_the_choice_is_remembered(admin_client):
    html = admin_client.get(LIST).content.decode()
    assert body_refresh(html) == "30"
    # Without JavaScript the page still refreshes (a meta refresh: the CSP does not govern it).
    assert '<noscript><meta http-equiv="refresh" content="30"></noscript>' in html
    assert body_refresh(admin_client.get(f"{LIST}?refresh=15").content.decode()) == "15"
    assert body_refresh(admin_client.get(f"{LIST}?status=failed").content.decode()) == "15"
    html = admin_client.get(f"{LIST}?refresh=off").content.decode()
    assert body_refresh(html) is None and 'http-equiv="refresh"' not in html
    assert body_refresh(admin_client.get(LIST).content.decode()) is None
    assert body_refresh(admin_client.get(f"{LIST}?refresh=60").content.decode()) == "60"
    # An unknown value changes nothing.
    assert body_refresh(admin_client.get(f"{LIST}?refresh=2").content.decode()) == "60"


def test_the_refresh_choice_belongs_to_the_user(admin_client, client, django_user_model):
    from incidents.roles import viewer_group

    admin_client.get(f"{LIST}?refresh=off")
    other = django_user_model.objects.create_user("other", password="x" * 20)
    other.groups.add(viewer_group())
    client.force_login(other)
    assert body_refresh(client.get(LIST).content.decode()) == "30"


def test_the_title_counts_what_needs_a_human(admin_client):
    cache.clear()
    assert "<title>Incidents · Incident triage</title>" in admin_client.get(LIST).content.decode()
    make_incident(oncall_state=OnCallState.OPEN)
    make_incident(oncall_state=OnCallState.ACKNOWLEDGED, acknowledged_at=timezone.now())
    make_incident(
        status=Status.RESOLVED,
        oncall_state=OnCallState.CLOSED,
        closed_at=timezone.now(),
        resolution=Resolution.FIXED,
    )
    html = admin_client.get(LIST).content.decode()
    assert "<title>(2) Incidents · Incident triage</title>" in html
    # The same count on a filtered list (where the page shows something else).
    cache.clear()
    html = admin_client.get(f"{LIST}?status=resolved").content.decode()
    assert "<title>(2) Filtered incidents · Incident triage</title>" in html


def test_the_title_count_is_bounded(admin_client, monkeypatch):
    monkeypatch.setattr(live, "TITLE_COUNT_CAP", 2)
    cache.clear()
    for _ in range(3):
        make_incident()
    html = admin_client.get(f"{LIST}?status=pending").content.decode()
    assert "<title>(2+) Filtered incidents" in html


def test_rows_newer_than_the_last_look_are_marked_and_counted(admin_client):
    now = timezone.now()
    make_incident(created_at=now - timedelta(hours=2))
    html = admin_client.get(LIST).content.decode()  # the first look: nothing is new
    assert 'data-testid="new-since"' not in html
    session = admin_client.session
    session[live.SEEN_KEY] = (now - timedelta(hours=1)).isoformat()
    session.save()
    make_incident(created_at=now - timedelta(minutes=5))
    make_incident(created_at=now - timedelta(minutes=1))
    html = admin_client.get(LIST).content.decode()
    assert re.search(r'data-testid="new-since">2 new since you looked<', html)
    assert html.count('class="is-new"') == 2
    # That load was a look: the next one shows nothing new.
    html = admin_client.get(LIST).content.decode()
    assert 'data-testid="new-since"' not in html


def test_an_automatic_reload_is_not_a_look(admin_client):
    now = timezone.now()
    session = admin_client.session
    session[live.SEEN_KEY] = (now - timedelta(hours=1)).isoformat()
    session.save()
    make_incident(created_at=now - timedelta(minutes=5))
    admin_client.cookies[live.AUTO_RELOAD_COOKIE] = "1"
    response = admin_client.get(LIST)
    assert "1 new since you looked" in response.content.decode()
    assert response.cookies[live.AUTO_RELOAD_COOKIE].value == ""  # read once
    del admin_client.cookies[live.AUTO_RELOAD_COOKIE]
    assert "1 new since you looked" in admin_client.get(LIST).content.decode()
    assert "new since you looked" not in admin_client.get(LIST).content.decode()


def test_each_applied_filter_is_a_chip_that_removes_itself(admin_client):
    html = admin_client.get(f"{LIST}?status=failed&status=agent_failed&cluster=prod-eu").content
    html = html.decode()
    chips = re.findall(r'<li class="chip">(.*?)</li>', html, re.S)
    assert len(chips) == 3
    assert 'href="?status=agent_failed&amp;cluster=prod-eu"' in chips[0]
    assert "Triage failed" in chips[0]
    assert 'href="?status=failed&amp;status=agent_failed"' in html  # the cluster's chip
    # The default view shows what it applies, too.
    html = admin_client.get(LIST).content.decode()
    assert 'aria-label="Remove On call Open"' in html


def test_the_quick_search_keeps_the_filters_in_force_but_not_the_default_view(admin_client):
    html = admin_client.get(f"{LIST}?cluster=prod-eu&after=abc").content.decode()
    search = html[html.index('class="quick-search"') : html.index('data-testid="quick-search"')]
    assert '<input type="hidden" name="cluster" value="prod-eu">' in search
    assert 'name="after"' not in search
    html = admin_client.get(LIST).content.decode()
    search = html[html.index('class="quick-search"') : html.index('data-testid="quick-search"')]
    assert 'type="hidden"' not in search


def test_the_header_card_takes_cause_and_first_action_from_the_report():
    summary = summarize_report(
        REPORT_MARKDOWN + "\n## Recommended actions\n\n1. Restore the **db** secret.\n2. Later.\n"
    )
    assert summary.cause == "missing DATABASE_URL secret"
    assert summary.action == "Restore the db secret."
    assert first_action("| First action | `kubectl rollout undo` |\n") == "kubectl rollout undo"
    assert first_action("# Report\n\nNothing to do.\n") is None
    assert not summarize_report("")

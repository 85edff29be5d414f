"""bench/dashboard.py's helpers: its percentile, and that it finds and follows the list's pager."""

import importlib.util
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from incidents.roles import viewer_group
from tests.builders import make_incident

BENCH = Path(__file__).resolve().parent.parent / "bench" / "dashboard.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_dashboard", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.mark.parametrize(
    ("count", "pct", "expected"),
    [(30, 95, 29), (20, 95, 19), (10, 95, 10), (30, 50, 15), (1, 95, 1)],
)
def test_percentile_is_nearest_rank(bench, count, pct, expected):
    values = [float(n) for n in range(count, 0, -1)]  # unsorted on purpose
    assert bench.percentile(values, pct) == expected


def test_pager_links_reads_next_and_last(bench):
    html = (
        '<nav><a class="pager__link" href="?after=abc&amp;status=failed" rel="next">Next ›</a>'
        '<a class="pager__link" href="?last=1&amp;status=failed">Last »</a>'
        '<a href="?last=2">Last (not the pager)</a></nav>'
    )
    links = bench.pager_links(html)
    assert links.next == "?after=abc&status=failed"
    assert links.last == "?last=1&status=failed"


@pytest.mark.django_db
def test_follow_walks_the_real_list_pages(bench, client, django_user_model):
    for _ in range(120):
        make_incident()
    user = django_user_model.objects.create_user(username="bench")
    user.groups.add(viewer_group())
    client.force_login(user)
    home = reverse("incidents:list")
    third = bench.follow(client, home, "next", times=2)
    assert "after=" in third
    assert client.get(third).status_code == 200
    last = bench.follow(client, home, "last")
    assert "last=1" in last
    assert client.get(last).context["page"].is_last


def test_main_query_skips_session_user_and_counts(bench):
    captured = [
        {"sql": 'SELECT "django_session"."session_key" FROM "django_session"'},
        {"sql": 'SELECT COUNT(*) FROM (SELECT 1 FROM "incidents" LIMIT 1001) subquery'},
        {"sql": 'SELECT "incidents"."incident_id" FROM "incidents" ORDER BY 1 LIMIT 51'},
    ]
    assert bench.main_query(captured, "incidents") == captured[2]["sql"]

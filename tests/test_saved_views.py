"""Saved views: a user's named list queries, created from the list, listed, deleted; POST with
CSRF; one user's views are theirs alone; a saved view is a plain, shareable list URL."""

import re

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from incidents.models import SavedView
from incidents.saved_views import MAX_SAVED_VIEWS, clean_query, save_view

pytestmark = pytest.mark.django_db

CREATE = "/views/new/"
VIEWS = "/views/"


def test_a_view_is_saved_from_the_current_list_and_opens_as_its_url(client, viewer):
    client.force_login(viewer)
    response = client.post(
        CREATE, {"name": "my clusters", "query": "cluster=a&cluster=b&q=coredns&after=abc"}
    )
    view = SavedView.objects.get(user=viewer)
    assert (view.name, view.query) == ("my clusters", "cluster=a&cluster=b&q=coredns")
    assert response.status_code == 302
    assert response["Location"] == "/?cluster=a&cluster=b&q=coredns"
    assert client.get(response["Location"]).status_code == 200
    html = client.get(VIEWS).content.decode()
    assert 'href="/?cluster=a&amp;cluster=b&amp;q=coredns">my clusters</a>' in html


def test_the_list_offers_to_save_itself_with_its_query(client, viewer):
    client.force_login(viewer)
    html = client.get("/", {"severity": "critical", "range": "1h"}).content.decode()
    form = re.search(r'<form method="post" action="/views/new/".*?</form>', html, re.S).group(0)
    assert 'href="/views/"' in html
    assert 'name="csrfmiddlewaretoken"' in form
    assert 'name="query" value="severity=critical&amp;range=1h"' in form


def test_saving_a_name_again_replaces_its_query(viewer):
    save_view(user=viewer, name="mine", query="status=failed")
    save_view(user=viewer, name="mine", query="status=pending")
    assert list(SavedView.objects.values_list("name", "query")) == [("mine", "status=pending")]


def test_a_user_has_at_most_the_limit(viewer):
    for n in range(MAX_SAVED_VIEWS):
        save_view(user=viewer, name=f"v{n}", query="")
    with pytest.raises(ValueError, match="At most"):
        save_view(user=viewer, name="one more", query="")


def test_a_view_without_a_name_is_refused_with_a_message(client, viewer):
    client.force_login(viewer)
    response = client.post(CREATE, {"name": "  ", "query": "status=failed"}, follow=True)
    assert not SavedView.objects.exists()
    assert "The view was not saved (name:" in response.content.decode()


def test_the_database_refuses_an_empty_name_and_a_duplicate(viewer):
    with pytest.raises(IntegrityError), transaction.atomic():
        SavedView.objects.create(user=viewer, name="", query="")
    SavedView.objects.create(user=viewer, name="a", query="")
    with pytest.raises(IntegrityError), transaction.atomic():
        SavedView.objects.create(user=viewer, name="a", query="status=failed")


def test_views_are_per_user_and_only_the_owner_deletes(client, viewer, django_user_model):
    from incidents.roles import viewer_group

    other = django_user_model.objects.create_user("other", password="x")
    other.groups.add(viewer_group())
    theirs = save_view(user=other, name="theirs", query="status=failed")
    mine = save_view(user=viewer, name="mine", query="status=pending")
    client.force_login(viewer)
    html = client.get(VIEWS).content.decode()
    assert ">mine</a>" in html and ">theirs</a>" not in html
    assert client.post(f"/views/{theirs.pk}/delete/").status_code == 404
    assert client.post(f"/views/{mine.pk}/delete/").status_code == 302
    assert list(SavedView.objects.values_list("name", flat=True)) == ["theirs"]


def test_saving_and_deleting_need_post_with_csrf(viewer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    assert client.get(CREATE).status_code == 405
    assert (
        client.post(f"/views/{save_view(user=viewer, name='v', query='').pk}/delete/").status_code
        == 403
    )
    assert client.post(CREATE, {"name": "x", "query": ""}).status_code == 403
    assert list(SavedView.objects.values_list("name", flat=True)) == ["v"]


def test_signed_out_users_cannot_save(client):
    response = client.post(CREATE, {"name": "x", "query": ""})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not SavedView.objects.exists()


def test_clean_query_drops_positions_blanks_and_tokens():
    assert clean_query("?q=&status=failed&last=1&before=x&csrfmiddlewaretoken=t&q=a+b") == (
        "status=failed&q=a+b"
    )

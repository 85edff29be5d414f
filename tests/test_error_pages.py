"""Issue 14 papercut: 400, 403, 404 and 500 pages of ours, in the product's style, leaking
nothing (no path echoed, no setting, no traceback), with DEBUG off."""

import pytest
from django.test import RequestFactory
from django.views.defaults import bad_request, server_error

pytestmark = pytest.mark.django_db

LEAKS = ("Traceback", "Django", "urlpatterns", "SECRET", "DATABASE", "settings.py")


def assert_ours(html: str, heading: str) -> None:
    assert heading in html
    assert "incidents/app.css" in html  # the product's stylesheet and header
    assert "Back to the incidents" in html
    for leak in LEAKS:
        assert leak not in html


def test_404_is_ours_and_does_not_echo_the_path(admin_client, settings):
    settings.DEBUG = False
    response = admin_client.get("/no-such-page/<script>probe</script>")
    assert response.status_code == 404
    html = response.content.decode()
    assert_ours(html, "Nothing here")
    assert "probe" not in html and "no-such-page" not in html


def test_404_for_an_unknown_incident_id(admin_client, settings):
    settings.DEBUG = False
    response = admin_client.get("/incidents/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert_ours(response.content.decode(), "Nothing here")


def test_500_page_renders_without_a_request_context(settings):
    settings.DEBUG = False
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert_ours(html, "Something went wrong on our side")
    assert "Sign out" not in html  # no user in its context


def test_400_page_is_ours(settings):
    settings.DEBUG = False
    response = bad_request(RequestFactory().get("/"), exception=ValueError("secret detail"))
    assert response.status_code == 400
    html = response.content.decode()
    assert_ours(html, "This request could not be read")
    assert "secret detail" not in html

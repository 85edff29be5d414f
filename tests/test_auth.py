"""Sign-in: every page but the login page and /healthz needs a session; sign-out is a POST."""

import pytest
from django.urls import reverse

from tests.builders import make_incident, make_report

pytestmark = pytest.mark.django_db


@pytest.fixture
def pages():
    incident = make_incident(status="resolved")
    report = make_report(incident)
    return [
        reverse("incidents:list"),
        reverse("incidents:list") + "?status=failed",
        reverse("incidents:export"),
        reverse("incidents:detail", args=[incident.pk]),
        reverse("incidents:report", args=[report.pk]),
        reverse("incidents:report-raw", args=[report.pk]),
    ]


def test_every_dashboard_page_redirects_an_anonymous_visitor_to_sign_in(client, pages):
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next=")


def test_the_login_page_needs_no_session_and_carries_a_csrf_token(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<title>Sign in · Incident triage</title>" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "Sign out" not in html


def test_signing_in_leads_to_the_page_asked_for(client, django_user_model):
    from incidents.roles import viewer_group

    oncall = django_user_model.objects.create_user("oncall", password="s3cret-passphrase")
    oncall.groups.add(viewer_group())
    response = client.post(
        reverse("login"),
        {"username": "oncall", "password": "s3cret-passphrase", "next": "/?status=failed"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/?status=failed"
    assert client.get("/").status_code == 200


def test_a_wrong_password_shows_an_error_on_the_login_page(client, django_user_model):
    django_user_model.objects.create_user("oncall", password="s3cret-passphrase")
    response = client.post(reverse("login"), {"username": "oncall", "password": "wrong"})
    assert response.status_code == 200
    assert "alert--error" in response.content.decode()


def test_sign_out_is_a_post_form_with_csrf(admin_client):
    html = admin_client.get("/").content.decode()
    form = html[html.index(f'action="{reverse("logout")}"') - 30 :]
    assert form.startswith('<form method="post"') or 'method="post"' in form[:60]
    assert 'name="csrfmiddlewaretoken"' in form[: form.index("</form>")]
    assert admin_client.get(reverse("logout")).status_code == 405
    response = admin_client.post(reverse("logout"))
    assert response.status_code == 302
    assert admin_client.get("/").status_code == 302

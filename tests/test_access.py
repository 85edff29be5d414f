"""Access control: sign-in required, sign-in throttled, CSRF enforced."""

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from incidents.auth import client_address
from incidents.roles import VIEWER_CODENAMES, viewer_group
from tests.builders import make_incident, make_report

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def alice() -> User:
    user = User.objects.create_user("alice", password=PASSWORD)
    user.groups.add(viewer_group())
    return user


def sign_in(client: Client, username: str, password: str, address: str = "192.0.2.10"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


@pytest.mark.parametrize(
    "path", ["/", "/admin/", "/incidents/00000000-0000-0000-0000-000000000000/"]
)
def test_pages_need_a_session(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_a_good_sign_in_works(client, alice):
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_repeated_failures_lock_the_username_from_any_address(client, settings, alice):
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        response = sign_in(client, "alice", "wrong", address=f"192.0.2.{attempt + 1}")
        assert response.status_code == 200  # the form again, with its error
    assert sign_in(client, "alice", "wrong", address="192.0.2.99").status_code == 429
    response = sign_in(client, "alice", PASSWORD, address="198.51.100.7")
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert client.get("/").status_code == 302  # still signed out


def test_repeated_failures_lock_the_address_for_every_username(client, settings, alice):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"nobody-{attempt}", "wrong", address="203.0.113.9")
    assert sign_in(client, "alice", PASSWORD, address="203.0.113.9").status_code == 429
    assert sign_in(client, "alice", PASSWORD, address="203.0.113.10").status_code == 302


def test_a_success_below_the_limit_resets_the_count(client, settings, alice):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", PASSWORD).status_code == 302
    client.post(reverse("logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_sign_in_without_csrf_token_is_refused(alice):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403


def test_sign_out_is_a_post_with_csrf(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("logout")).status_code == 403
    assert client.get("/").status_code == 200


def test_session_lifetime_is_configurable(settings, client, alice):
    settings.SESSION_COOKIE_AGE = 600
    sign_in(client, "alice", PASSWORD)
    assert client.cookies["sessionid"]["max-age"] == 600


def test_the_viewer_group_exists_with_view_permissions_only():
    group = Group.objects.get(name="viewer")  # made by migration 0005
    assert sorted(group.permissions.values_list("codename", flat=True)) == sorted(VIEWER_CODENAMES)


def test_a_viewer_sees_every_dashboard_page_but_not_the_admin(client, viewer):
    report = make_report(make_incident(status="resolved"))
    client.force_login(viewer)
    for path in (
        "/",
        "/incidents.csv",
        report.incident.get_absolute_url(),
        report.get_absolute_url(),
        f"{report.get_absolute_url()}raw/",
    ):
        assert client.get(path).status_code == 200, path
    admin = client.get("/admin/")
    assert admin.status_code == 302 and "/admin/login/" in admin["Location"]


def test_a_signed_in_user_without_the_group_is_refused(client, django_user_model):
    report = make_report(make_incident(status="resolved"))
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    for path in ("/", "/incidents.csv", report.incident.get_absolute_url(),
                 report.get_absolute_url()):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 403, path
    assert "viewer" in response.content.decode()


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.7", "10.0.0.2"),  # no proxy configured: the peer, whatever was sent
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the left entry is the client's claim
        (2, "198.51.100.1, 203.0.113.7, 10.0.0.9", "203.0.113.7"),
        (2, "203.0.113.7", "10.0.0.2"),  # fewer entries than proxies: not to be trusted
    ],
)
def test_throttling_counts_the_client_behind_trusted_proxies(
    rf, settings, proxies, forwarded, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_behind_a_proxy_one_clients_failures_do_not_lock_out_another(client, settings, alice):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            reverse("login"),
            {"username": f"guess-{_}", "password": "wrong"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="203.0.113.66",
        )
    response = client.post(
        reverse("login"),
        {"username": "alice", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.20",
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    "path",
    ["/accounts/password_reset/", "/accounts/reset/MQ/set-password/", "/accounts/signup/"],
)
def test_no_page_but_sign_in_is_open_without_a_session(client, path):
    response = client.get(path)
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response["Location"].startswith("/accounts/login/")

"""Red-team F9: X-Forwarded-For cannot break sign-in, nor a wrong proxy count unlock it."""

import logging

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from incidents.auth import client_address, parse_address

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
PROXY = "10.0.0.2"


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password=PASSWORD)


def sign_in(client, username: str, password: str, forwarded: str):
    return client.post(
        reverse("login"),
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded,
    )


@pytest.mark.parametrize(
    "forwarded",
    ["garbage", "unknown, 203.0.113.7x", "'; DROP TABLE", "999.1.1.1", "fe80::1%eth0garbage", ""],
)
@pytest.mark.parametrize("proxies", [1, 2, 5])
def test_non_address_entries_never_break_sign_in(client, settings, alice, forwarded, proxies):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert sign_in(client, "alice", "wrong", forwarded).status_code == 200  # the form, again
    assert sign_in(client, "alice", PASSWORD, forwarded).status_code == 302


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("garbage, 203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, garbage", "203.0.113.7"),  # dropped, so the real entry is 1 from the right
        ("203.0.113.7:51234", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("garbage", PROXY),
    ],
)
def test_addresses_are_parsed_and_the_rest_ignored(rf, settings, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = 1
    request = rf.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_parse_address_refuses_what_is_no_address():
    assert [parse_address(text) for text in ("host.example", "1.2.3", "", "[::1", ":")] == [
        None
    ] * 5


def test_a_count_above_the_chain_cannot_unlock_the_username(client, settings, alice):
    """One real proxy, count 3: the attacker pads X-Forwarded-For and rotates the address the
    app reads. The username lock does not depend on the address and holds."""
    settings.TRUSTED_PROXY_COUNT = 3
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        forged = f"198.51.100.{attempt}, 192.0.2.{attempt}, 203.0.113.66"  # last: the real proxy's
        assert sign_in(client, "alice", "wrong", forged).status_code in (200, 429)
    response = sign_in(client, "alice", PASSWORD, "198.51.100.200, 192.0.2.200, 203.0.113.66")
    assert response.status_code == 429
    assert client.get("/").status_code == 302  # still signed out


def test_rotating_the_client_part_never_evades_the_lock_with_the_right_count(
    client, settings, alice
):
    """With the count right, entries left of the proxies' own are ignored: rotating them still
    counts every failure against the one real client address."""
    settings.TRUSTED_PROXY_COUNT = 1
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"guess-{attempt}", "wrong", f"198.51.100.{attempt}, 203.0.113.66")
    response = sign_in(client, "alice", PASSWORD, "198.51.100.200, 203.0.113.66")
    assert response.status_code == 429


def test_a_chain_shorter_than_the_count_is_logged(rf, settings, caplog):
    settings.TRUSTED_PROXY_COUNT = 2
    request = rf.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.7")
    with caplog.at_level(logging.WARNING, logger="incidents.auth"):
        assert client_address(request) == PROXY
    assert "DJANGO_TRUSTED_PROXY_COUNT" in caplog.text

"""Red-team F15: with DEBUG on, the technical 500 page shows no password from a URL."""

import sys

import pytest
from django.test import RequestFactory
from django.views.debug import get_default_exception_reporter_filter, technical_500_response

from triage_site.reporting import CredentialsReporterFilter, mask_url_credentials

SECRETS = {
    "DATABASE_URL": "postgres://triage:hunter2-db@db.internal:5432/triage",
    "CACHE_URL": "redis://:hunter2-cache@cache.internal:6379/0",
    "BROKER": "amqps://svc:hunter2-amqp@mq/vhost",
    "DSN": "postgres://db.internal/triage?sslmode=require&password=hunter2-query",
}


def debug_page(settings, *, meta: dict[str, str]) -> str:
    settings.DEBUG = True
    request = RequestFactory().get("/boom", **meta)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        response = technical_500_response(request, *sys.exc_info())
    return response.content.decode()


def test_the_default_filter_is_ours(settings):
    assert isinstance(get_default_exception_reporter_filter(), CredentialsReporterFilter)


def test_500_page_masks_database_url_and_other_url_credentials(settings):
    settings.DATABASE_URL = SECRETS["DATABASE_URL"]
    settings.CACHE_URL = SECRETS["CACHE_URL"]
    settings.NESTED = {"brokers": [SECRETS["BROKER"]], "dsn": SECRETS["DSN"]}
    html = debug_page(settings, meta={"DATABASE_URL": SECRETS["DATABASE_URL"]})
    # The request's META, the settings, and this test's own frame (`meta`) all held them.
    for secret in ("hunter2-db", "hunter2-cache", "hunter2-amqp", "hunter2-query"):
        assert secret not in html
    # Still useful for debugging: which host and user.
    assert "postgres://triage:********************@db.internal:5432/triage" in html


def test_500_page_masks_passwords_in_frame_variables(settings):
    settings.DEBUG = True
    # Made at run time: the page also shows this source, which must not hold the whole secret.
    secret = "-".join(["hunter2", "frame"])
    conn_params = {"user": "triage", "password": secret}  # noqa: F841 - shown in the frame
    conninfo = f"postgresql://triage:{secret}@db/triage"  # noqa: F841 - shown in the frame
    try:
        raise ConnectionError("could not connect")
    except ConnectionError:
        html = technical_500_response(RequestFactory().get("/"), *sys.exc_info()).content.decode()
    assert secret not in html
    assert "conn_params" in html  # the frame is shown, its secrets masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://u:p@h/db", "postgres://u:********************@h/db"),
        ("redis://:p@h:6379", "redis://:********************@h:6379"),
        ("sqlite:////var/db.sqlite3", "sqlite:////var/db.sqlite3"),
        ("https://h/path?a=1&api_key=k&b=2", "https://h/path?a=1&api_key=********************&b=2"),
        ("no url here: a:b@c", "no url here: a:b@c"),
    ],
)
def test_mask_url_credentials(text, expected):
    assert mask_url_credentials(text) == expected

"""Issue 14 papercut: "Apply filters" puts only the filled-in fields into the URL."""

from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.browser.conftest import open_filters, sign_in
from tests.builders import make_incident

pytestmark = pytest.mark.django_db(transaction=True)


def test_apply_sends_only_the_fields_that_say_something(page, live_server, sre):
    make_incident(status="failed")
    sign_in(page, live_server, sre)
    # By name and value: the filter form's layout is not what this test is about.
    form = page.locator('form[method="get"]:has([name="status"])')
    open_filters(page)
    form.locator('input[name="status"][value="failed"]').check()
    form.locator('[type="submit"]').click()
    page.wait_for_url("**/?*")
    query = parse_qsl(urlsplit(page.url).query, keep_blank_values=True)
    # The default view's on-call filter (open and acknowledged) is checked, so it is sent too.
    assert sorted(query) == [
        ("oncall", "acknowledged"), ("oncall", "open"), ("status", "failed"),
    ]  # fmt: skip
    # Back, then forward through the form again: the fields are usable, nothing stays disabled.
    page.go_back()
    page.wait_for_url(f"{live_server.url}/")
    assert form.locator("[disabled]").count() == 0
    open_filters(page)
    form.locator('[name="q"]').fill("payments")
    form.locator('[type="submit"]').click()
    page.wait_for_url("**/?*q=payments*")
    assert all(value for _, value in parse_qsl(urlsplit(page.url).query, keep_blank_values=True))

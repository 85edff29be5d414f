"""The admin's notification pages: credentials never shown back, kept when left empty, and
failed notifications retried."""

import pytest

from incidents.models import Notification, NotificationChannel
from incidents.notifications.channels import create_channel
from tests.builders import make_incident

pytestmark = pytest.mark.django_db

URL = "https://hooks.slack.com/services/T0AAAA/B0BBBB/cccccccccccccccccccccccc"
SECRET = "hunter2-hunter2"


@pytest.fixture
def hook():
    return create_channel(name="sre", kind="webhook", url=URL, secret=SECRET)


def change_url(channel) -> str:
    return f"/admin/incidents/notificationchannel/{channel.pk}/change/"


def test_pages_show_the_url_masked_and_never_the_secret(admin_client, hook):
    for page in ("/admin/incidents/notificationchannel/", change_url(hook)):
        html = admin_client.get(page).content.decode()
        assert URL not in html and "/services/" not in html and SECRET not in html
        assert "https://hooks.slack.com/" in html and URL[-4:] in html  # mask_url's form


def test_saving_with_empty_credentials_keeps_them_and_new_ones_replace_them(
    admin_client, admin_form_data, hook
):
    data = admin_form_data(admin_client.get(change_url(hook)))
    assert data["url"] == "" and data["secret"] == ""
    data.update(name="sre-renamed", clusters="prod-b, prod-a", events=["report_ready"])
    response = admin_client.post(change_url(hook), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    hook.refresh_from_db()
    assert (hook.name, hook.url, hook.secret) == ("sre-renamed", URL, SECRET)
    assert (hook.clusters, hook.events) == (["prod-a", "prod-b"], ["report_ready"])
    data.update(url="https://hooks.example.com/new", secret="rotated")
    assert admin_client.post(change_url(hook), data).status_code == 302
    hook.refresh_from_db()
    assert (hook.url, hook.secret) == ("https://hooks.example.com/new", "rotated")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"kind": "webhook", "url": "https://x.example/h", "secret": ""}, "needs a secret"),
        ({"kind": "slack", "url": "javascript:alert(1)"}, "http:// or https://"),
        ({"kind": "slack", "url": ""}, "needs a URL"),
    ],
)
def test_a_new_channel_needs_a_valid_url_and_a_webhook_a_secret(admin_client, fields, error):
    data = {"name": "new", "min_severity": "low", "clusters": "", "enabled": "on", **fields}
    response = admin_client.post("/admin/incidents/notificationchannel/add/", data)
    assert response.status_code == 200 and error in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_failed_notifications_are_listed_with_their_error_and_retried(admin_client, hook):
    incident = make_incident()
    failed = Notification.objects.create(
        channel=hook, event="incident_opened", incident=incident, dedup_key="a",
        status="failed", attempts=8, last_status_code=503, last_error="gave up after 8 attempts",
    )  # fmt: skip
    html = admin_client.get("/admin/incidents/notification/?status__exact=failed").content.decode()
    assert "gave up after 8 attempts" in html
    response = admin_client.post(
        "/admin/incidents/notification/",
        {"action": "retry_selected", "_selected_action": [str(failed.pk)]},
        follow=True,
    )
    assert "1 notification(s) queued for delivery" in response.content.decode()
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("pending", 0)
    assert admin_client.get(f"/admin/incidents/notification/{failed.pk}/change/").status_code == 200

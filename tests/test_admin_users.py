"""Issue 14 papercut: the demo user adds a teammate, and cannot hand out staff or superuser."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from incidents.roles import viewer_group

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def demo_client(capsys) -> Client:
    call_command("create_demo_user")
    capsys.readouterr()
    client = Client()
    client.force_login(User.objects.get(username="demo"))
    return client


def test_demo_user_adds_a_teammate_who_then_sees_the_dashboard(demo_client, admin_form_data):
    group = viewer_group()
    response = demo_client.post(
        reverse("admin:auth_user_add"),
        {"username": "bob", "usable_password": "true",
         "password1": "a long teammate pass", "password2": "a long teammate pass"},
    )  # fmt: skip
    assert response.status_code == 302
    bob = User.objects.get(username="bob")
    change_url = reverse("admin:auth_user_change", args=[bob.pk])
    page = demo_client.get(change_url)
    assert page.status_code == 200
    data = admin_form_data(page)
    assert "is_superuser" not in data and "is_staff" not in data
    data["groups"] = str(group.pk)
    data["is_active"] = "on"  # what a browser sends for a checked box without a value
    assert demo_client.post(change_url, data).status_code == 302
    teammate = Client()
    assert teammate.login(username="bob", password="a long teammate pass")
    assert teammate.get(reverse("incidents:list")).status_code == 200


def test_demo_user_cannot_make_anyone_staff_or_superuser(demo_client, admin_form_data):
    demo = User.objects.get(username="demo")
    change_url = reverse("admin:auth_user_change", args=[demo.pk])
    data = admin_form_data(demo_client.get(change_url))
    data.update(is_superuser="on", is_staff="on", user_permissions="1")
    demo_client.post(change_url, data)
    demo.refresh_from_db()
    assert not demo.is_superuser


def test_demo_user_cannot_touch_a_superuser_or_other_staff(demo_client):
    root = User.objects.create_superuser("root", password="x")
    staff = User.objects.create_user("ops", password="x", is_staff=True)
    for user in (root, staff):
        assert demo_client.get(reverse("admin:auth_user_change", args=[user.pk])).status_code in (
            200,  # read-only view (view_user)
            302,
        )
        password_url = reverse("admin:auth_user_password_change", args=[user.pk])
        assert (
            demo_client.post(
                password_url, {"password1": "takeover pass 1", "password2": "takeover pass 1"}
            ).status_code
            == 403
        )
        user.refresh_from_db()
        assert user.check_password("x")


def test_a_superuser_keeps_djangos_whole_user_form(admin_client, admin_form_data):
    other = User.objects.create_user("carol", password="x")
    page = admin_client.get(reverse("admin:auth_user_change", args=[other.pk]))
    assert "is_superuser" in page.content.decode()

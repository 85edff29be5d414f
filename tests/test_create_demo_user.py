"""`manage.py create_demo_user`: a staff user with a generated password, printed once."""

import re

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def create_demo_user(capsys) -> str:
    call_command("create_demo_user")
    out = capsys.readouterr().out
    return re.search(r"^  password: (\S+)$", out, re.MULTILINE).group(1)


def test_creates_a_staff_user_whose_printed_password_works(capsys):
    password = create_demo_user(capsys)
    user = authenticate(username="demo", password=password)
    assert user is not None and user.is_staff and not user.is_superuser
    assert len(password) >= 20
    assert user.has_perm("incidents.view_incident") and user.has_perm("incidents.change_incident")
    assert not user.has_perm("incidents.delete_incident")


def test_rerun_replaces_the_password_and_keeps_one_user(capsys):
    first = create_demo_user(capsys)
    second = create_demo_user(capsys)
    assert first != second
    assert authenticate(username="demo", password=first) is None
    assert authenticate(username="demo", password=second) is not None
    assert get_user_model().objects.filter(username="demo").count() == 1


def test_rerun_reactivates_and_restores_a_demoted_user(capsys):
    create_demo_user(capsys)
    get_user_model().objects.filter(username="demo").update(is_staff=False, is_active=False)
    password = create_demo_user(capsys)
    user = authenticate(username="demo", password=password)
    assert user is not None and user.is_staff

"""`manage.py create_demo_user`: a staff user for the demo, with a fresh random password."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import CommandParser
from django.db import transaction

from incidents.management.base import TriageCommand
from incidents.roles import responder_group


class Command(TriageCommand):
    help = (
        "Create (or update) the staff user 'demo' with a newly generated password, printed once. "
        "Re-running gives the user a new password; the old one stops working. The user may view "
        "and change incidents in the admin, act on them as a responder, and add teammates "
        "(Users: add one, put them in the viewer or responder group); not make anyone staff or "
        "superuser."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo", help="Default: demo.")

    def handle(self, *args, **options) -> None:
        username = options["username"]
        password = secrets.token_urlsafe(18)  # 144 bits; never stored anywhere but as a hash
        user_model = get_user_model()
        with transaction.atomic():
            user, created = user_model.objects.get_or_create(
                **{user_model.USERNAME_FIELD: username}
            )
            user.is_staff = True
            user.is_active = True
            user.set_password(password)
            user.save()
            user.user_permissions.add(
                *Permission.objects.filter(
                    content_type__app_label="incidents",
                    codename__regex=r"^(view|change)_",
                ),
                # Teammates: incidents.admin.users keeps staff and superuser out of reach.
                *Permission.objects.filter(
                    content_type__app_label="auth",
                    codename__in=("view_user", "add_user", "change_user", "view_group"),
                ),
            )
            user.groups.add(responder_group())  # acknowledge, assign, close, silence
        action = "Created" if created else "Updated"
        self.stdout.write(f"{action} staff user {username!r}. Sign in with:")
        self.stdout.write(f"  username: {username}")
        self.stdout.write(f"  password: {password}")
        self.stdout.write("The password is shown only now; run this command again for a new one.")

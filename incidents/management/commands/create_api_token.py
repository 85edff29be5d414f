"""`manage.py create_api_token USERNAME [--name N] [--expires-in-days D]`: a token for the API.

Prints the secret once, on stdout alone (for `TOKEN=$(manage.py create_api_token …)`); only its
digest is stored. Revoke it in the admin (API tokens → Revoke).
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.api.tokens import issue_token

MAX_DAYS = 3650


class Command(BaseCommand):
    help = "Make an API token acting as USERNAME (with that user's permissions); prints it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for (admin label)")
        parser.add_argument(
            "--expires-in-days", type=int, metavar="D", help="valid for D days (default: no end)"
        )

    def handle(self, *args, **options) -> None:
        days = options["expires_in_days"]
        if days is not None and not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--expires-in-days must be 1 to {MAX_DAYS}, not {days}")
        if len(options["name"]) > 100:
            raise CommandError("--name: at most 100 characters")
        User = get_user_model()  # noqa: N806
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: options["username"]})
        except User.DoesNotExist:
            raise CommandError(f"no user {options['username']!r}") from None
        if not user.is_active:
            raise CommandError(f"user {options['username']!r} is inactive")
        issued = issue_token(user, name=options["name"], expires_in_days=days)
        expiry = issued.token.expires_at
        self.stderr.write(
            f"token {issued.token.prefix}… for {user} "
            f"({'expires ' + expiry.isoformat() if expiry else 'no expiry'}); "
            "it is shown once, below, and cannot be shown again",
            style_func=lambda text: text,
        )
        self.stdout.write(issued.secret)

"""ApiToken: a bearer token for the API, stored as a digest only."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiToken(models.Model):
    """A secret that acts as its user, for scripts and other tools.

    Only the SHA-256 digest of the secret is stored (the secret is printed once, by
    `create_api_token`, and cannot be read back). `prefix` is the secret's first characters, for
    telling tokens apart in the admin. A token works while it is neither revoked nor expired and
    its user is active; it carries exactly its user's permissions.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    # Hex SHA-256 of the whole secret; unique, and the lookup key of every API request.
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "api_tokens"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("created_at")),
                name="api_tokens_expires_after_created",
            ),
        ]

    def __str__(self) -> str:
        label = f" ({self.name})" if self.name else ""
        return f"{self.prefix}… of {self.user}{label}"

    def is_usable(self, now=None) -> bool:
        """Neither revoked nor expired (the user's own state is checked by authentication)."""
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

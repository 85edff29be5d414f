"""Making and checking API token secrets.

A secret is `tri_` plus 32 random bytes (URL-safe base64): 256 bits of entropy. Only its SHA-256
is stored. A fast hash is right here, unlike for passwords: a slow, salted hash (PBKDF2, argon2)
protects low-entropy secrets that can be guessed from a dictionary; nobody can enumerate 2**256
candidates, so a stolen digest gives nothing away, and an unsalted digest can be looked up by an
index in one query on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from incidents.api.models import ApiToken

SECRET_PREFIX = "tri_"  # noqa: S105 - a label, not a secret
SECRET_BYTES = 32
SHOWN_PREFIX_LENGTH = 12  # "tri_" and 8 characters of the random part


def digest(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def issue_token(user: User, *, name: str = "", expires_in_days: int | None = None) -> IssuedToken:
    """A new token for `user`, saved; the secret is returned and nowhere else kept."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    now = timezone.now()
    token = ApiToken(
        user=user,
        name=name,
        key_hash=digest(secret),
        prefix=secret[:SHOWN_PREFIX_LENGTH],
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    token.full_clean()
    token.save(force_insert=True)
    return IssuedToken(token=token, secret=secret)

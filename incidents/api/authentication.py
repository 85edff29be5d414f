"""`Authorization: Bearer <token>` for the API (tokens from `create_api_token`).

A missing header leaves the request anonymous (the views' permissions then answer 401); a
header with an unknown, revoked or expired token, or a token of an inactive user, is a 401 at
once, with `WWW-Authenticate: Bearer`.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from incidents.api.models import ApiToken
from incidents.api.tokens import digest

KEYWORD = "Bearer"
MAX_SECRET_LENGTH = 200  # ours are 47 characters; anything far longer is not one of ours
# last_used_at is written at most this often per token: an audit hint, not a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=5)


class BearerTokenAuthentication(BaseAuthentication):
    """Authenticates as the token's user; `request.auth` is the ApiToken."""

    def authenticate(self, request: Request) -> tuple | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Give one token after 'Bearer'.")
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        if len(secret) > MAX_SECRET_LENGTH:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return self.authenticate_secret(secret)

    def authenticate_secret(self, secret: str) -> tuple:
        token = ApiToken.objects.select_related("user").filter(key_hash=digest(secret)).first()
        now = timezone.now()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token has been revoked.")
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("This token has expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is inactive.")
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Declares the bearer scheme in the OpenAPI schema (and the docs' Authorize button)."""

    target_class = "incidents.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="AUTHORIZATION", token_prefix=KEYWORD
        )

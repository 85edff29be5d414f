"""A request rate per API token (DRF's throttling, scope `api_token`).

The counts live in Django's cache: with the default per-process cache each gunicorn worker counts
on its own, so the effective limit is the rate times the workers; a shared cache (one all
workers reach) makes it exact.
"""

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from incidents.api.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    """Keyed on the token (a user's several tokens are counted apart); a signed-in session
    (the docs page) on its user; anything else on the client address."""

    scope = "api_token"

    def get_cache_key(self, request: Request, view) -> str:
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"addr-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

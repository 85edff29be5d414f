"""Sign-in throttling: django-axes' lockout check in front of Django's ModelBackend."""

from axes.backends import AxesStandaloneBackend
from django.conf import settings


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuses sign-in for a username or an address that failed too often (see AXES_* settings).

    Every web sign-in (the login page, the admin's) passes the request. A call to authenticate()
    without one is not a sign-in from the web (a management command, the test client's login())
    and has nothing to throttle by, so it passes through to the next backend.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_address(request) -> str | None:
    """The address sign-in throttling counts failures by.

    Behind DJANGO_TRUSTED_PROXY_COUNT reverse proxies every request comes from the nearest
    proxy, so REMOTE_ADDR would lock everyone out at once; each proxy appends the address it saw
    to X-Forwarded-For, and the one the first proxy appended (N from the right) is the client's.
    Entries further left are whatever the client sent, and are never trusted.
    """
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= trusted:
            return forwarded[-trusted]
    return request.META.get("REMOTE_ADDR")

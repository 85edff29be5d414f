"""Sign-in throttling: django-axes' lockout check in front of Django's ModelBackend."""

import ipaddress
import logging

from axes.backends import AxesStandaloneBackend
from django.conf import settings

logger = logging.getLogger(__name__)


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


def parse_address(text: str) -> str | None:
    """The IP address `text` names (a port or an IPv6 zone dropped), or None if it names none.

    Proxies write `203.0.113.7`, `203.0.113.7:51234` or `[2001:db8::1]:443`; anything else
    (`garbage`, `unknown`, a host name) is a client's invention and is ignored: it used to reach
    the database's address column and make every sign-in a 500.
    """
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None


def client_address(request) -> str | None:
    """The address sign-in throttling counts failures by.

    Behind DJANGO_TRUSTED_PROXY_COUNT reverse proxies every request comes from the nearest
    proxy, so REMOTE_ADDR would lock everyone out at once; each proxy appends the address it saw
    to X-Forwarded-For, and the one the first proxy appended (N from the right) is the client's.
    Entries further left are whatever the client sent, and are never trusted; entries that are
    not IP addresses are dropped first (only a client writes those).

    A count above the real chain makes the address the client's own claim: the username lock
    does not depend on it and still holds, and a request whose chain is shorter than the count
    (every direct client's, then) is logged so the misconfiguration shows.
    """
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted > 0:
        forwarded = [
            address
            for address in map(
                parse_address, request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            )
            if address is not None
        ]
        if len(forwarded) >= trusted:
            return forwarded[-trusted]
        logger.warning(
            "A sign-in's X-Forwarded-For has %d addresses, DJANGO_TRUSTED_PROXY_COUNT says %d "
            "proxies add them: failures are counted by the peer's address. Set the count to the "
            "number of proxies in front of the app (see the README).",
            len(forwarded),
            trusted,
        )
    return parse_address(request.META.get("REMOTE_ADDR", "")) or None

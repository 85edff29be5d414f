"""Sign-in throttling: django-axes' lockout check in front of Django's ModelBackend."""

from axes.backends import AxesStandaloneBackend


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

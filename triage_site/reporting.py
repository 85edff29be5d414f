"""What Django's error reports (the DEBUG 500 page, error e-mails) may show of settings and
the environment: Django's own masking, plus the credentials inside URLs."""

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

MASK = SafeExceptionReporterFilter.cleansed_substitute
# scheme://user:password@host — the password (user name kept: it helps to debug).
URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]*@", re.IGNORECASE)
# ...?password=...&sslpassword=... — libpq and most drivers take credentials as parameters too.
QUERY_SECRET = re.compile(
    r"(?P<head>[?&;][^=&\s]*(?:pass|pwd|secret|token|key)[^=&\s]*=)[^&\s]*", re.IGNORECASE
)


def mask_url_credentials(text: str) -> str:
    """`text` with every URL's password and secret-looking query parameters masked."""
    text = URL_PASSWORD.sub(lambda match: f"{match['head']}{MASK}@", text)
    return QUERY_SECRET.sub(lambda match: f"{match['head']}{MASK}", text)


class CredentialsReporterFilter(SafeExceptionReporterFilter):
    """Django's filter masks settings and META entries by name (KEY, PASS, TOKEN, ...):
    DATABASE_URL and other *_URL values carry a password under a name it does not catch.
    Frame variables get the same treatment (Django shows them as they are): a connection
    string or a `{"password": ...}` dict in a frame of the traceback is masked too."""

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> list[tuple]:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self.cleanse_setting(name, value)) for name, value in variables]

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        value = super().cleanse_setting(key, value)  # recurses into dicts, lists and tuples
        if type(value) is str:  # not a lazy object posing as one: evaluating it is not ours
            return mask_url_credentials(value)
        return value

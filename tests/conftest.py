import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.db import connection

from incidents.store import DjangoStateStore


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """SQLite's test database is a file in var/, not memory: each thread of a race test gets its
    own connection to it and a subprocess (a worker killed mid-run) sees the same rows, so races
    and killed processes are tested on SQLite as well as on PostgreSQL."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # In a folder of its own that only this user may enter: the agents that worker tests
        # run as another user must not read it (run_triage refuses to start if they could).
        path = Path(settings.BASE_DIR) / "var" / "test-db" / "test-db.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        database.setdefault("TEST", {})["NAME"] = str(path)


# A test marked for one database skips on the other with one of these reasons: the only skips
# CI accepts, because CI runs the suite once on each (see `.ci/run`).
NEEDS_POSTGRESQL = "needs PostgreSQL: run with DATABASE_URL=postgres://…"
NEEDS_SQLITE = "needs SQLite: run without DATABASE_URL"
# CI sets CI=true: there any other skip (chromium or playwright missing, a platform check) fails.
UNDER_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip(NEEDS_POSTGRESQL)
    if item.get_closest_marker("sqlite") and connection.vendor != "sqlite":
        pytest.skip(NEEDS_SQLITE)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI, a skip for any reason but the other database is a failure: a browser test that
    cannot find chromium must not pass quietly. `.ci/run` checks the other half (that the
    PostgreSQL run skipped no PostgreSQL test) in pytest's -rs summary."""
    report = yield
    if UNDER_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason not in (NEEDS_POSTGRESQL, NEEDS_SQLITE):
            report.outcome = "failed"
            report.longrepr = f"skipped under CI=true, where every test must run: {reason}"
    return report


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # PBKDF2's cost is the point in production and a waste in tests that sign in often.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    # The dashboard caches summaries and filter choices: no test may see another's.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def viewer(django_user_model):
    """A signed-in SRE's account: a member of the read-only viewer group, not staff."""
    from incidents.roles import viewer_group

    user = django_user_model.objects.create_user("viewer", password="x")
    user.groups.add(viewer_group())
    return user


@pytest.fixture
def store() -> DjangoStateStore:
    return DjangoStateStore()


# --- Admin (tests/test_admin_*.py) ---------------------------------------------------------
class _AdminFormParser(HTMLParser):
    """Collects what a browser would submit from the admin's main change form."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._in_form = False
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form" and attr.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form:
            return
        name = attr.get("name")
        if tag == "input" and name and attr.get("type") not in ("submit", "button", "file"):
            if attr.get("type") in ("checkbox", "radio") and "checked" not in attr:
                return
            self.data[name] = attr.get("value", "")
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attr:
            self.data[self._select] = attr.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            # Browsers drop the newline that follows <textarea>.
            text = self.data[self._textarea] + data
            self.data[self._textarea] = text.removeprefix("\n")


@pytest.fixture
def admin_form_data():
    """Parse a rendered admin change page into the POST data its form would submit."""

    def parse(response) -> dict[str, str]:
        parser = _AdminFormParser()
        parser.feed(response.content.decode())
        return parser.data

    return parse


@pytest.fixture
def staff_user(django_user_model):
    """A staff user with no permissions; tests grant what they need."""
    return django_user_model.objects.create_user("staff", "staff@example.com", "x", is_staff=True)


@pytest.fixture
def grant():
    """Give a user model permissions by codename, e.g. grant(user, "view_incident")."""
    from django.contrib.auth.models import Permission

    def give(user, *codenames: str):
        user.user_permissions.add(
            *Permission.objects.filter(content_type__app_label="incidents", codename__in=codenames)
        )
        return type(user).objects.get(pk=user.pk)  # a fresh instance: permissions are cached

    return give

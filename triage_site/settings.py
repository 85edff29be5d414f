"""Settings for the triage site, read from the environment (see the README's table).

Development (`make demo`) and the test suite run with DJANGO_DEBUG=1 semantics; anything else is
production and must be given DJANGO_SECRET_KEY.
"""

import os
import sys
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name: str, *, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, *, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def env_decimal(name: str) -> Decimal | None:
    """A non-negative amount, or None when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ImproperlyConfigured(f"{name} must be a non-negative number, not {value!r}")
    return amount


def env_list(name: str, *, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def development_secret_key(path: Path) -> str:
    """A random key made on first use and kept out of the repo (var/ is git-ignored)."""
    from django.core.management.utils import get_random_secret_key

    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = get_random_secret_key()
        path.write_text(key)
        path.chmod(0o600)
        return key


# pytest (>= 8.2) sets PYTEST_VERSION: the suite runs in development mode unless told otherwise.
TESTING = "PYTEST_VERSION" in os.environ
DEBUG = env_flag("DJANGO_DEBUG", default=TESTING)


def asking_for_help(argv: list[str]) -> bool:
    """`manage.py`, `manage.py help …`, `manage.py <command> --help`: nothing runs, no secret."""
    if not argv or Path(argv[0]).name != "manage.py":
        return False
    options = argv[2 : argv.index("--")] if "--" in argv else argv[2:]  # after --: arguments
    return (
        len(argv) == 1
        or argv[1] in ("help", "--help", "-h", "--version")
        or any(arg in ("--help", "-h") for arg in options)
    )


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY and asking_for_help(sys.argv):
    from django.core.management.utils import get_random_secret_key

    SECRET_KEY = get_random_secret_key()  # signs nothing: help prints and exits
if not SECRET_KEY:
    if not DEBUG:
        # A one-line reason instead of a traceback: this is the first thing a new deployment hits.
        sys.exit(
            "triage_site: DJANGO_SECRET_KEY is not set; it is required when DJANGO_DEBUG is off "
            "(set DJANGO_DEBUG=1 for development)."
        )
    SECRET_KEY = development_secret_key(BASE_DIR / "var" / "development-secret-key")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", default="localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", default="")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_filters",
    "axes",
    "incidents",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Replica reads for safe requests; the primary right after a person's own write.
    "triage_site.replicas.ReplicaReadMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page requires sign-in unless its view is marked login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Turns a sign-in refused for too many failures into the lockout page (last, as axes asks).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "triage_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "triage_site.wsgi.application"


def database_config(url: str) -> dict:
    """One DATABASES entry for a dj-database-url URL, tuned per engine.

    SQLite is shared by the web server and the triage worker: WAL lets readers run beside the
    writer, the timeout is SQLite's busy timeout, and IMMEDIATE transactions take the write lock
    up front so two writers queue instead of failing with "database is locked" mid-transaction.
    PostgreSQL goes through psycopg 3's connection pool (which requires CONN_MAX_AGE = 0).
    """
    config = dj_database_url.parse(url)
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    elif engine == "django.db.backends.postgresql":
        config["CONN_MAX_AGE"] = 0
        config["CONN_HEALTH_CHECKS"] = False
        if env_flag("DJANGO_DB_POOL", default=True):
            config["OPTIONS"] = {
                "pool": {
                    "min_size": 1,
                    "max_size": env_int("DJANGO_DB_POOL_MAX_SIZE", default=10),
                    "timeout": 10,
                }
            }
    return config


def replica_config(url: str) -> dict:
    """A replica's entry: persistent connections instead of the pool, and a short connect
    timeout, so a replica that is down is noticed in a second instead of a pool's wait."""
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    config["OPTIONS"] = {"connect_timeout": 2}
    return config


DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": database_config(DATABASE_URL)}

# Read replicas (triage_site/replicas.py): the dashboard's and the API's reads go to a healthy one.
DATABASE_REPLICAS: list[str] = []
for _number, _url in enumerate(env_list("DATABASE_REPLICA_URLS", default=""), start=1):
    _alias = f"replica_{_number}"
    # In tests a replica alias is the test database itself; real replica tests start their own.
    DATABASES[_alias] = {**replica_config(_url), "TEST": {"MIRROR": "default"}}
    DATABASE_REPLICAS.append(_alias)
DATABASE_ROUTERS = ["triage_site.replicas.ReplicaRouter"] if DATABASE_REPLICAS else []
DJANGO_REPLICA_MAX_LAG_SECONDS = env_int("DJANGO_REPLICA_MAX_LAG_SECONDS", default=10)
DJANGO_READ_YOUR_WRITES_SECONDS = env_int("DJANGO_READ_YOUR_WRITES_SECONDS", default=10)

# Caching: per-process memory by default; DJANGO_CACHE_URL=redis://… shares one across processes
# (triage_site/cache.py: a Redis outage serves uncached pages, never a 500).
DJANGO_CACHE_URL = os.environ.get("DJANGO_CACHE_URL", "")
if DJANGO_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "triage_site.cache.ResilientRedisCache",
            "LOCATION": DJANGO_CACHE_URL,
            "KEY_PREFIX": "triage",
            # Short socket timeouts: a cache that hangs must not hold a page longer than this.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    "incidents.auth.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Sign-in throttling (django-axes): after N failures, a username and an address are each locked
# out for the cool-off time. Attempts are kept in the database, so every gunicorn worker agrees.
AXES_FAILURE_LIMIT = env_int("DJANGO_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("DJANGO_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# Reverse proxies in front of the app (each appends to X-Forwarded-For); 0: none, use the peer.
TRUSTED_PROXY_COUNT = env_int("DJANGO_TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "incidents.auth.client_address"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "incidents:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The admin's dates as the dashboard shows them: 2025-12-20 14:03:07 UTC (triage_site/formats).
FORMAT_MODULE_PATH = ["triage_site.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Development serves straight from the app and static/ folders; production from collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Security ------------------------------------------------------------------------------
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_COOKIE_AGE", default=12 * 60 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env_flag("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if env_flag("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_flag("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_flag("DJANGO_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Error reports (DEBUG's 500 page) mask the password inside DATABASE_URL and other URLs too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "triage_site.reporting.CredentialsReporterFilter"

# Only our own static files: no inline scripts, no CDN.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Logging: one JSON object per line on stdout outside development -----------------------
LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {
            # Upstream text in a message must not forge lines or drive the terminal.
            "()": "triage_site.logformat.EscapingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain" if DEBUG else "json",
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
}

# --- The triage pipeline -------------------------------------------------------------------
# No default: run_triage refuses to start without an agent; `stub` names the demo agent.
TRIAGE_AGENT_COMMAND = os.environ.get("TRIAGE_AGENT_COMMAND", "").strip()
TRIAGE_AGENT_PROMPT_FILE = os.environ.get("TRIAGE_AGENT_PROMPT_FILE", "")
TRIAGE_KUBECONFIG_DIR = os.environ.get("TRIAGE_KUBECONFIG_DIR", "")
# The user agents run as when the worker runs as root (never root itself); default nobody.
TRIAGE_AGENT_USER = os.environ.get("TRIAGE_AGENT_USER", "")
# Comma-separated names of further variables an agent may see (never the worker's secrets).
TRIAGE_AGENT_PASS_ENV = [
    name.strip() for name in os.environ.get("TRIAGE_AGENT_PASS_ENV", "").split(",") if name.strip()
]
TRIAGE_WORKSPACE_ROOT = Path(
    os.environ.get("TRIAGE_WORKSPACE_ROOT") or BASE_DIR / "var" / "workspaces"
)
# run_triage (incidents.worker): seconds an agent may run before its process group is
# terminated, and how much of each of its output streams is kept on disk.
# Named agent commands for re-runs, a JSON object (see incidents.profiles).
TRIAGE_AGENT_PROFILES = os.environ.get("TRIAGE_AGENT_PROFILES", "")
# USD of recorded agent spend per UTC day after which workers stop claiming; unset: no budget.
TRIAGE_DAILY_BUDGET_USD = env_decimal("TRIAGE_DAILY_BUDGET_USD")
TRIAGE_AGENT_TIMEOUT = env_int("TRIAGE_AGENT_TIMEOUT", default=15 * 60)
TRIAGE_AGENT_LOG_MAX_BYTES = env_int("TRIAGE_AGENT_LOG_MAX_BYTES", default=10 * 1024 * 1024)
# Upstream kubernetes-mcp-server speaks log levels; we speak severities.
TRIAGE_SEVERITY_MAP = {"info": "low", "warning": "medium", "error": "high"}
# A record larger than this is rejected whole, never truncated.
TRIAGE_MAX_RECORD_BYTES = env_int("TRIAGE_MAX_RECORD_BYTES", default=1024 * 1024)
# /incidents.csv refuses (422, before any byte) a filter matching more rows than this: a file
# that is whole, streamed in seconds, far inside any request timeout (see the README).
TRIAGE_EXPORT_MAX_ROWS = env_int("TRIAGE_EXPORT_MAX_ROWS", default=100_000)

# --- Indexes (scale) ------------------------------------------------------------------------
# The dashboard's created_at-ordered indexes INCLUDE the summary's columns so PostgreSQL answers
# the summary from the index alone. SQLite has no INCLUDE and builds them as plain indexes, which
# is all it needs at its sizes; its warning about that (models.W040) would print on every command.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

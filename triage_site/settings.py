"""Settings for the triage site, read from the environment (see the README's table).

Every variable is read once, in the block below, with its type and its one default; the rest of
this file and the app use the names it sets. `make demo` and the test suite set DJANGO_DEBUG=1
(the suite through pytest-env, in pyproject.toml); anything else is production and must be given
DJANGO_SECRET_KEY.

A new setting: one line in that block (`NAME = env.<type>("VARIABLE", default=...)`), a row in the
README's configuration table, and `settings.NAME` where it is used. Never a default elsewhere.
"""

import sys
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import dj_database_url
import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


class Env(environ.Env):
    """django-environ's reader, where a value of the wrong type is an ImproperlyConfigured that
    names the variable, and a variable set to nothing counts as unset."""

    def get_value(self, var: str, cast: Any = None, default: Any = environ.Env.NOTSET,
                  parse_default: bool = False) -> Any:  # fmt: skip
        if not self.ENVIRON.get(var, "x").strip() and default is not self.NOTSET:
            return default  # set to nothing: as if unset
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ValueError as error:
            raise ImproperlyConfigured(f"{var}: {error}") from None


env = Env()


def usd_amount(text: str) -> Decimal:
    """A non-negative, finite amount of dollars (TRIAGE_DAILY_BUDGET_USD)."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"must be a non-negative number, not {text!r}")
    return amount


# --- The environment: every variable, read once, with its default ---------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", cast=str.strip, default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", cast=str.strip, default=[])
DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DB_POOL = env.bool("DJANGO_DB_POOL", default=True)
DB_POOL_MAX_SIZE = env.int("DJANGO_DB_POOL_MAX_SIZE", default=10)
BEHIND_TLS_PROXY = env.bool("DJANGO_BEHIND_TLS_PROXY", default=False)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=12 * 60 * 60)
LOGIN_FAILURE_LIMIT = env.int("DJANGO_LOGIN_FAILURE_LIMIT", default=5)
LOGIN_COOLOFF_MINUTES = env.int("DJANGO_LOGIN_COOLOFF_MINUTES", default=15)
# Reverse proxies in front of the app (each appends to X-Forwarded-For); 0: none, use the peer.
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)
LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO")
# Read replicas (comma-separated URLs) and when a replica is skipped (triage_site/replicas.py).
DATABASE_REPLICA_URLS = env.list("DATABASE_REPLICA_URLS", cast=str.strip, default=[])
DJANGO_REPLICA_MAX_LAG_SECONDS = env.int("DJANGO_REPLICA_MAX_LAG_SECONDS", default=10)
DJANGO_READ_YOUR_WRITES_SECONDS = env.int("DJANGO_READ_YOUR_WRITES_SECONDS", default=10)
# A shared cache (redis://…); unset: each process keeps its own in memory.
DJANGO_CACHE_URL = env.str("DJANGO_CACHE_URL", default="")
# The agent that run_triage runs (split with shlex, run without a shell). No default:
# run_triage refuses to start without one; `stub` names the demo agent.
TRIAGE_AGENT_COMMAND = env.str("TRIAGE_AGENT_COMMAND", default="").strip()
TRIAGE_AGENT_PROMPT_FILE = env.str("TRIAGE_AGENT_PROMPT_FILE", default="")
TRIAGE_KUBECONFIG_DIR = env.str("TRIAGE_KUBECONFIG_DIR", default="")
# The user agents run as when the worker runs as root (never root itself); "" means nobody.
TRIAGE_AGENT_USER = env.str("TRIAGE_AGENT_USER", default="")
# Comma-separated names of further variables an agent may see (never the worker's secrets).
TRIAGE_AGENT_PASS_ENV = env.list("TRIAGE_AGENT_PASS_ENV", cast=str.strip, default=[])
TRIAGE_WORKSPACE_ROOT = Path(
    env.str("TRIAGE_WORKSPACE_ROOT", default=str(BASE_DIR / "var" / "workspaces"))
)
# run_triage (incidents.worker): seconds an agent may run before its process group is
# terminated, and how much of each of its output streams is kept on disk.
TRIAGE_AGENT_TIMEOUT = env.int("TRIAGE_AGENT_TIMEOUT", default=15 * 60)
TRIAGE_AGENT_LOG_MAX_BYTES = env.int("TRIAGE_AGENT_LOG_MAX_BYTES", default=10 * 1024 * 1024)
# Named agent commands for re-runs: a JSON object, name -> command (incidents.profiles).
TRIAGE_AGENT_PROFILES = env.str("TRIAGE_AGENT_PROFILES", default="")
# USD of recorded agent spend per UTC day after which workers stop claiming; None: no budget.
TRIAGE_DAILY_BUDGET_USD = env("TRIAGE_DAILY_BUDGET_USD", cast=usd_amount, default=None)
# A record larger than this is rejected whole, never truncated.
TRIAGE_MAX_RECORD_BYTES = env.int("TRIAGE_MAX_RECORD_BYTES", default=1024 * 1024)
# Records written per transaction by ingest_events and subscribe_mcp (each has --batch-size).
TRIAGE_INGEST_BATCH_SIZE = env.int("TRIAGE_INGEST_BATCH_SIZE", default=1000)
# /incidents.csv refuses (422, before any byte) a filter matching more rows than this: a file
# that is whole, streamed in seconds, far inside any request timeout (see the README).
TRIAGE_EXPORT_MAX_ROWS = env.int("TRIAGE_EXPORT_MAX_ROWS", default=100_000)
# Absolute links in Slack messages and webhook bodies; deliver_notifications refuses to start
# without it when channels exist and DEBUG is off.
TRIAGE_BASE_URL = env.str("TRIAGE_BASE_URL", default="").strip().rstrip("/")
# Consecutive failed triage runs before one agents_degraded notification (and the banner).
TRIAGE_DEGRADED_AFTER = env.int("TRIAGE_DEGRADED_AFTER", default=3)
# Requests per API token (a DRF rate: "600/minute", "20/second").
TRIAGE_API_RATE = env.str("TRIAGE_API_RATE", default="600/minute")
# /metrics answers only this bearer token; unset, it is a 404.
TRIAGE_METRICS_TOKEN = env.str("TRIAGE_METRICS_TOKEN", default="")
# The `revision` label of triage_build_info.
TRIAGE_BUILD_REVISION = env.str("TRIAGE_BUILD_REVISION", default="unknown")
# purge_history's default --older-than (days) for scheduled runs; unset: the option is required.
TRIAGE_RETENTION_DAYS = env.int("TRIAGE_RETENTION_DAYS", default=0) or None
# ---------------------------------------------------------------------------------------------


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
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the docs page's Swagger UI files, served locally
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


def database_config(
    url: str, *, pool: bool = DB_POOL, pool_max_size: int = DB_POOL_MAX_SIZE
) -> dict[str, Any]:
    """One DATABASES entry for a dj-database-url URL, tuned per engine.

    SQLite is shared by the web server and the triage worker: WAL lets readers run beside the
    writer, the timeout is SQLite's busy timeout, and IMMEDIATE transactions take the write lock
    up front so two writers queue instead of failing with "database is locked" mid-transaction.
    PostgreSQL goes through psycopg 3's connection pool (which requires CONN_MAX_AGE = 0).
    """
    config: dict[str, Any] = dict(dj_database_url.parse(url))
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
        if pool:
            config["OPTIONS"] = {
                "pool": {
                    "min_size": 1,
                    "max_size": pool_max_size,
                    "timeout": 10,
                }
            }
    return config


def replica_config(url: str) -> dict[str, Any]:
    """A replica's entry: persistent connections instead of the pool, and a short connect
    timeout, so a replica that is down is noticed in a second instead of a pool's wait."""
    config: dict[str, Any] = dict(
        dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    )
    config["OPTIONS"] = {"connect_timeout": 2}
    return config


DATABASES = {"default": database_config(DATABASE_URL)}

# Read replicas (triage_site/replicas.py): the dashboard's and the API's reads go to a healthy one.
DATABASE_REPLICAS: list[str] = []
for _number, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
    _alias = f"replica_{_number}"
    # In tests a replica alias is the test database itself; real replica tests start their own.
    DATABASES[_alias] = {**replica_config(_url), "TEST": {"MIRROR": "default"}}
    DATABASE_REPLICAS.append(_alias)
DATABASE_ROUTERS = ["triage_site.replicas.ReplicaRouter"] if DATABASE_REPLICAS else []

# Caching: per-process memory by default; DJANGO_CACHE_URL=redis://… shares one across processes
# (triage_site/cache.py: a Redis outage serves uncached pages, never a 500).
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
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
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
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# Load balancers probe over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
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
    # The HTTP client logs every request's full URL at INFO; a Slack webhook URL is a secret.
    "loggers": {name: {"level": "WARNING"} for name in ("httpx2", "httpcore")},
}

# --- The triage pipeline -------------------------------------------------------------------
# Upstream kubernetes-mcp-server speaks log levels; we speak severities.
TRIAGE_SEVERITY_MAP = {"info": "low", "warning": "medium", "error": "high"}

# --- Notifications (incidents.notifications) ------------------------------------------------
# (TRIAGE_BASE_URL and TRIAGE_DEGRADED_AFTER are read in the block at the top.)
if TRIAGE_BASE_URL and not TRIAGE_BASE_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured(
        f"TRIAGE_BASE_URL must start with https:// or http://, not {TRIAGE_BASE_URL!r}"
    )
if not TRIAGE_BASE_URL and DEBUG:
    TRIAGE_BASE_URL = "http://127.0.0.1:8000"  # development links to runserver
if TRIAGE_DEGRADED_AFTER < 1:
    raise ImproperlyConfigured(
        f"TRIAGE_DEGRADED_AFTER must be at least 1, not {TRIAGE_DEGRADED_AFTER}"
    )

# --- Indexes (scale) ------------------------------------------------------------------------
# The dashboard's created_at-ordered indexes INCLUDE the summary's columns so PostgreSQL answers
# the summary from the index alone. SQLite has no INCLUDE and builds them as plain indexes, which
# is all it needs at its sizes; its warning about that (models.W040) would print on every command.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- The API (/api/v1/), its schema, metrics, retention ------------------------------------
REST_FRAMEWORK = {
    # Tokens only: a browser session never reaches the API (no CSRF to get wrong); the docs
    # page and the schema take the session (incidents/api/urls.py).
    "DEFAULT_AUTHENTICATION_CLASSES": ["incidents.api.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["incidents.api.throttling.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_token": TRIAGE_API_RATE},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Incident triage API",
    "DESCRIPTION": "Incidents, reports and fault ingestion. `Authorization: Bearer <token>`; "
    "tokens come from `manage.py create_api_token`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

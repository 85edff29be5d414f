"""gunicorn settings for `make serve` / `gunicorn triage_site.wsgi` (read from the environment)."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Logs go to stdout/stderr like the application's own JSON lines.
accesslog = "-"
errorlog = "-"
access_log_format = (
    '{"time": "%(t)s", "logger": "gunicorn.access", "remote": "%(h)s", "request": "%(r)s", '
    '"status": %(s)s, "bytes": "%(B)s", "duration_us": %(D)s}'
)
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

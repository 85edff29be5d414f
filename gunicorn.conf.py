"""gunicorn settings for `make serve` / `gunicorn triage_site.wsgi` (read from the environment)."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
# Threads (gthread) rather than one process per connection, and a request's headers collected by
# the worker's poller: a client that is idle or slow to send its request holds a socket, never a
# thread or a worker (triage_site/gunicorn_worker.py; the README's reliability notes).
worker_class = "triage_site.gunicorn_worker.HeaderBufferingWorker"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# GUNICORN_HEADER_TIMEOUT (seconds, default 10): a request's headers must arrive within it (408).
# Idle kept-alive connections wait on the poller, not a thread; closed after this many seconds.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Logs go to stdout/stderr like the application's own JSON lines.
accesslog = "-"
errorlog = "-"
access_log_format = (
    '{"time": "%(t)s", "logger": "gunicorn.access", "remote": "%(h)s", "request": "%(r)s", '
    '"status": %(s)s, "bytes": "%(B)s", "duration_us": %(D)s}'
)
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")


# Prometheus counters across workers (incidents.metrics): with PROMETHEUS_MULTIPROC_DIR set,
# each worker writes its counters to files there and /metrics adds them up. The directory is
# emptied at start (old workers' files would count twice) and a dead worker's gauges removed.
def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

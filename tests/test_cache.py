"""DJANGO_CACHE_URL: one Redis cache shared by every process, and pages that survive its outage.

These run against the Redis server this machine (and CI) keeps at 127.0.0.1:6379, in a database
number of their own; a missing Redis fails them, it never skips them.
"""

import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.cache import caches
from django.test import override_settings

from tests.builders import make_incident
from triage_site import cache as resilient

REPO = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/15"
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


def redis_cache_settings(url: str, prefix: str) -> dict:
    return {
        "default": {
            "BACKEND": "triage_site.cache.ResilientRedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }


@pytest.fixture(autouse=True)
def _redis_is_up_again(monkeypatch):
    # Each test starts with Redis considered reachable and the warning not yet given.
    monkeypatch.setattr(resilient, "_down_until", 0.0)
    monkeypatch.setattr(resilient, "_last_warning", -resilient.WARN_EVERY_SECONDS)


def test_a_value_cached_by_one_process_is_read_by_another():
    key = f"summary-{uuid.uuid4().hex}"
    script = (
        "import django; django.setup();"
        "from django.core.cache import cache;"
        f"cache.set('{key}', {{'critical': 3}}, 60)"
    )
    environment = {**os.environ, "DJANGO_CACHE_URL": REDIS_URL, "DJANGO_DEBUG": "1"}
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=environment, check=True)

    with override_settings(CACHES=redis_cache_settings(REDIS_URL, "triage")):
        shared = caches["default"]
        # The subprocess used the settings' own prefix; this process reads the same key.
        assert shared.get(key) == {"critical": 3}
        shared.delete(key)


def test_settings_select_the_resilient_redis_backend_from_the_environment():
    script = (
        "import django; django.setup();"
        "from django.conf import settings;"
        "print(settings.CACHES['default']['BACKEND'], settings.CACHES['default']['LOCATION'])"
    )
    environment = {**os.environ, "DJANGO_CACHE_URL": REDIS_URL, "DJANGO_DEBUG": "1"}
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=environment, check=True, capture_output=True
    ).stdout.decode()
    assert output.split() == ["triage_site.cache.ResilientRedisCache", REDIS_URL]

    environment.pop("DJANGO_CACHE_URL")
    output = subprocess.run(
        [sys.executable, "-c", script.replace(", settings.CACHES['default']['LOCATION']", "")],
        cwd=REPO,
        env=environment,
        check=True,
        capture_output=True,
    ).stdout.decode()
    assert output.strip() == "django.core.cache.backends.locmem.LocMemCache"


def test_an_unreachable_redis_is_a_miss_and_a_dropped_write_with_one_warning(caplog):
    with override_settings(CACHES=redis_cache_settings(DEAD_REDIS_URL, "dead")):
        dead = caches["default"]
        with caplog.at_level(logging.WARNING, logger="triage_site.cache"):
            assert dead.get("anything", "fallback") == "fallback"
            dead.set("anything", 1, 30)
            assert dead.add("other", 1) is False
            assert dead.get_many(["a", "b"]) == {}
            assert dead.get_or_set("computed", lambda: 42) == 42
        warnings = [record for record in caplog.records if record.name == "triage_site.cache"]
        assert len(warnings) == 1
        assert "serving uncached pages" in warnings[0].getMessage()


def test_after_an_outage_redis_is_tried_again(monkeypatch):
    with override_settings(CACHES=redis_cache_settings(REDIS_URL, f"t-{uuid.uuid4().hex}")):
        live = caches["default"]
        monkeypatch.setattr(resilient, "_down_until", float("inf"))
        live.set("key", "while down", 30)
        assert live.get("key") is None
        monkeypatch.setattr(resilient, "_down_until", 0.0)
        live.set("key", "back", 30)
        assert live.get("key") == "back"
        live.delete("key")


@pytest.mark.django_db
def test_the_dashboard_serves_every_page_while_redis_is_down(client, viewer):
    incident = make_incident(resource_name="checkout-api-7f9c")
    client.force_login(viewer)
    with override_settings(CACHES=redis_cache_settings(DEAD_REDIS_URL, "dead")):
        for path in ("/", f"/incidents/{incident.incident_id}/", "/incidents.csv"):
            response = client.get(path)
            assert response.status_code == 200, path
        assert b"checkout-api-7f9c" in client.get("/").content

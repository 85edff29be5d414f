"""A Redis cache that degrades to "no cache" while Redis is away, instead of failing the page.

Everything the dashboard caches (summaries, filter choices, rendered reports) is a copy of what
the database or the renderer can produce again, so a miss is always correct, only slower. Django's
own Redis backend raises on a lost connection, which would turn a cache outage into a 500 on
every page: this subclass turns each failed call into a miss (reads) or a no-op (writes) and
logs one WARNING per outage, not one per call.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Seconds between two warnings about the same outage (one process logs at most this often).
WARN_EVERY_SECONDS = 60.0
# After a failure, skip Redis for this long: a page must not wait on a socket timeout per call.
RETRY_AFTER_SECONDS = 5.0


def _degrading(name: str, fallback: Callable[..., Any]) -> Callable[..., Any]:
    """RedisCache.<name>, answering `fallback(*args, **kwargs)` when Redis fails."""
    method = getattr(RedisCache, name)

    @functools.wraps(method)
    def degraded(self: RedisCache, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() < _down_until:
            return fallback(*args, **kwargs)
        try:
            return method(self, *args, **kwargs)
        except (RedisError, OSError) as error:
            _mark_down(name, error)
            return fallback(*args, **kwargs)

    return degraded


_state_lock = threading.Lock()
_last_warning = -WARN_EVERY_SECONDS
_down_until = 0.0


def _mark_down(operation: str, error: Exception) -> None:
    global _last_warning, _down_until
    now = time.monotonic()
    with _state_lock:
        _down_until = now + RETRY_AFTER_SECONDS
        if now - _last_warning < WARN_EVERY_SECONDS:
            return
        _last_warning = now
    logger.warning("cache unavailable, serving uncached pages (%s failed): %s", operation, error)


def _default(key: Any, default: Any = None, *args: Any, **kwargs: Any) -> Any:
    return kwargs.get("default", default)


class ResilientRedisCache(RedisCache):
    """Django's RedisCache; a Redis error is a cache miss or a dropped write, with a warning."""

    get = _degrading("get", _default)
    get_many = _degrading("get_many", lambda *args, **kwargs: {})
    has_key = _degrading("has_key", lambda *args, **kwargs: False)
    add = _degrading("add", lambda *args, **kwargs: False)
    set = _degrading("set", lambda *args, **kwargs: None)
    set_many = _degrading("set_many", lambda data, *args, **kwargs: list(data))
    touch = _degrading("touch", lambda *args, **kwargs: False)
    delete = _degrading("delete", lambda *args, **kwargs: False)
    delete_many = _degrading("delete_many", lambda *args, **kwargs: None)
    clear = _degrading("clear", lambda *args, **kwargs: False)

"""The shared cache used for things that must not take a request down when the cache (Redis) is unreachable:
import progress and login throttling. Every call logs the failure and answers as if the key were absent."""

from __future__ import annotations

import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)


def _guard(what: str, default, call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # redis-py errors, connection refused, timeouts
        logger.warning("cache unavailable (%s): %s", what, exc)
        return default


def cache_get(key: str, default=None):
    return _guard("get", default, cache.get, key, default)


def cache_set(key: str, value, timeout: int) -> None:
    _guard("set", None, cache.set, key, value, timeout=timeout)


def cache_delete(key: str) -> None:
    _guard("delete", None, cache.delete, key)


def cache_count(key: str, timeout: int) -> None:
    """Add one to a counter that expires ``timeout`` seconds after its first increment."""

    def bump():
        if not cache.add(key, 1, timeout):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout)

    _guard("count", None, bump)

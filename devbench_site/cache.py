"""The cache backend: Django's Redis cache that keeps serving when Redis is briefly away.

The cache holds only counters for rate limits (failed sign-ins, bench creations, API
throttling). While Redis restarts, a read answers "nothing cached" and a write is dropped, so
pages and the API keep working (limits fail open for those seconds) instead of answering 500.
"""

from __future__ import annotations

import functools
import logging

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def _tolerant(default):
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except _UNAVAILABLE as exc:
                logger.warning("cache unavailable (%s): %s skipped", exc.__class__.__name__, method.__name__)
                return default() if callable(default) else default

        return wrapper

    return decorate


class ResilientRedisCache(RedisCache):
    add = _tolerant(False)(RedisCache.add)
    get = _tolerant(None)(RedisCache.get)
    set = _tolerant(None)(RedisCache.set)
    touch = _tolerant(False)(RedisCache.touch)
    delete = _tolerant(False)(RedisCache.delete)
    get_many = _tolerant(dict)(RedisCache.get_many)
    set_many = _tolerant(list)(RedisCache.set_many)
    delete_many = _tolerant(None)(RedisCache.delete_many)
    has_key = _tolerant(False)(RedisCache.has_key)
    incr = _tolerant(0)(RedisCache.incr)
    clear = _tolerant(False)(RedisCache.clear)

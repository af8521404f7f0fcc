"""The cache backend: Django's Redis cache that keeps serving when Redis is briefly away, with
one connection pool per process.

The cache holds counters for rate limits (failed sign-ins, bench creations, API throttling) and
the dashboard's rendered bench cards. While Redis restarts, a read answers "nothing cached" and a
write is dropped, so pages and the API keep working (limits fail open for those seconds, cards
are rendered) instead of answering 500.

Django keeps one cache object per thread, and under ASGI every request runs in a thread of its
own, so Django's client opened a new Redis connection (connect, HELLO, CLIENT SETINFO) for every
request that touched the cache. The pools here belong to the process; redis-py's pools are
thread-safe and reset themselves after a fork.
"""

from __future__ import annotations

import functools
import logging
import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
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


class ProcessWideRedisCacheClient(RedisCacheClient):
    """Django's Redis client, with one ``redis.Redis`` (and its connection pool) per server shared
    by every thread of the process. Django built a new ``redis.Redis`` for every cache call (~85 µs
    of CPU: its table of ~170 response callbacks) on pools kept per thread; redis-py's clients take
    a connection from their pool for each command, so one serves every thread."""

    _shared_clients: dict[tuple[str, str], object] = {}
    _shared_lock = threading.Lock()

    def get_client(self, key=None, *, write=False):
        server = self._servers[self._get_connection_pool_index(write)]
        shared_key = (server, repr(sorted(self._pool_options.items(), key=lambda item: item[0])))
        client = self._shared_clients.get(shared_key)
        if client is None:
            with self._shared_lock:
                client = self._shared_clients.get(shared_key)
                if client is None:
                    pool = self._pool_class.from_url(server, **self._pool_options)
                    client = self._shared_clients[shared_key] = self._client(connection_pool=pool)
        return client


class ResilientRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ProcessWideRedisCacheClient

    @_tolerant((0, 0))
    def count_in_window(self, key: str, window_seconds: int) -> tuple[int, int]:
        """Count one event under ``key`` in a fixed window that starts with the key's first event,
        in one round trip (INCR, EXPIRE NX, TTL): the count so far and the window's seconds left.
        Redis away: ``(0, 0)``, i.e. limits fail open like the rest of this cache."""
        key = self.make_and_validate_key(key)
        with self._cache.get_client(key, write=True).pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, window_seconds, nx=True)
            pipe.ttl(key)
            count, _, ttl = pipe.execute()
        return count, max(ttl, 0)

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

"""The cache backend: django-redis, plus the one atomic counter the rate limits need.

django-redis keeps one connection pool per process for every thread's cache object, and with
``IGNORE_EXCEPTIONS`` (settings.CACHES) a read answers "nothing cached" and a write is dropped
while Redis is away, so pages and the API keep working (limits fail open, cards are rendered)
instead of answering 500. ``count_in_window`` fails open the same way.
"""

from __future__ import annotations

from django_redis.cache import RedisCache as DjangoRedisCache
from django_redis.cache import omit_exception
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisCache(DjangoRedisCache):
    """django-redis's cache with a fixed-window counter for the rate limits."""

    def get_many(self, *args, **kwargs) -> dict:
        """A new dict every time: while Redis is away django-redis answers every ``get_many`` with
        one shared dict, so what a caller adds to its answer would show up in every later one."""
        return dict(super().get_many(*args, **kwargs))

    @omit_exception(return_value=(0, 0))
    def count_in_window(self, key: str, window_seconds: int) -> tuple[int, int]:
        """Count one event under ``key`` in a fixed window that starts with the key's first event,
        in one round trip (INCR, EXPIRE NX, TTL): the count so far and the window's seconds left.
        Redis away: ``(0, 0)``, i.e. limits fail open like the rest of this cache."""
        key = self.client.make_key(key)
        client = self.client.get_client(write=True)
        try:
            with client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, window_seconds, nx=True)
                pipe.ttl(key)
                count, _, ttl = pipe.execute()
        except _UNAVAILABLE as exc:
            raise ConnectionInterrupted(connection=client) from exc
        return count, max(ttl, 0)

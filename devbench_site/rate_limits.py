"""Fixed-window counters in the shared cache (Redis), for limits every process must agree on:
failed sign-ins per username and address, bench creations per user."""

from __future__ import annotations

import hashlib

from django.core.cache import cache


class FixedWindowCounter:
    """Counts events per key in a window that starts with the key's first event."""

    def __init__(self, name: str, *, limit: int, window_seconds: int):
        self.name = name
        self.limit = limit
        self.window_seconds = window_seconds

    def _key(self, key: str) -> str:
        return f"limit:{self.name}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    def exceeded(self, *keys: str) -> bool:
        """Whether any of ``keys`` has already reached the limit in its window."""
        counts = cache.get_many([self._key(key) for key in keys])
        return any(count >= self.limit for count in counts.values())

    def record(self, *keys: str) -> None:
        """Count one event under each key; the first event starts the key's window (one atomic
        round trip per key, ``ResilientRedisCache.count_in_window``)."""
        for key in keys:
            cache.count_in_window(self._key(key), self.window_seconds)

    def reset(self, key: str) -> None:
        cache.delete(self._key(key))

"""Fixed-window counters in the shared cache (Redis), for limits every process must agree on:
sign-in attempts per username and address, bench creations per user.

A limited action takes its place in the window before it runs (``take``) and gives it back if it
turns out not to count (``give_back``). Checking a count first and recording the event after
the action lets every request of a burst pass the check before any of them is recorded.
"""

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

    def take(self, *keys: str) -> bool:
        """Count one event under each of ``keys``, unless that takes one of them over the limit:
        then count nothing and answer False. Each count is one atomic round trip
        (``ResilientRedisCache.count_in_window``), so events at once cannot all pass."""
        counted = []
        for key in keys:
            count, _seconds_left = cache.count_in_window(self._key(key), self.window_seconds)
            counted.append(key)
            if count > self.limit:
                self.give_back(*counted)
                return False
        return True

    def give_back(self, *keys: str) -> None:
        """Uncount one event taken under each of ``keys`` that did not happen after all."""
        for key in keys:
            try:
                cache.decr(self._key(key))
            except ValueError:
                pass  # the window ended meanwhile, and the count with it

    def reset(self, key: str) -> None:
        cache.delete(self._key(key))

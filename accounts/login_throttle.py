"""The failed sign-in limit: after ``limit`` failures within ``window`` seconds for one username,
or from one client address, sign-in is refused (429) until the window has passed.

Counters live in the shared cache (Redis), so every Daphne process sees the same counts, and
nothing is written to the database on a failed attempt. The client address is REMOTE_ADDR:
behind a proxy, Daphne's ``--proxy-headers`` sets it from X-Forwarded-For.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def _keys(username: str, address: str) -> list[str]:
    def digest(value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()[:32]

    return [f"login-fail:user:{digest(username.lower())}", f"login-fail:addr:{digest(address)}"]


def is_locked_out(*, username: str, address: str) -> bool:
    counts = cache.get_many(_keys(username, address))
    return any(count >= settings.DEVBENCH_LOGIN_FAILURE_LIMIT for count in counts.values())


def record_failure(*, username: str, address: str) -> None:
    for key in _keys(username, address):
        # add() starts the window on the first failure; incr() keeps its expiry.
        cache.add(key, 0, timeout=settings.DEVBENCH_LOGIN_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.DEVBENCH_LOGIN_WINDOW_SECONDS)


def reset(*, username: str) -> None:
    """A successful sign-in clears the username's count (not the address's)."""
    cache.delete(_keys(username, "")[0])

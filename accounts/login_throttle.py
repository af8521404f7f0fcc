"""The failed sign-in limit: after ``DEVBENCH_LOGIN_FAILURE_LIMIT`` failures within
``DEVBENCH_LOGIN_WINDOW_SECONDS`` for one username, or from one client address, sign-in is
refused (429) until the window has passed.

Counters live in the shared cache (Redis), so every Daphne process sees the same counts, and
nothing is written to the database on a failed attempt. The client address is REMOTE_ADDR:
behind a proxy, Daphne's ``--proxy-headers`` sets it from X-Forwarded-For.
"""

from __future__ import annotations

from django.conf import settings

from devbench_site.rate_limits import FixedWindowCounter


def _counter() -> FixedWindowCounter:
    return FixedWindowCounter(
        "login-failures",
        limit=settings.DEVBENCH_LOGIN_FAILURE_LIMIT,
        window_seconds=settings.DEVBENCH_LOGIN_WINDOW_SECONDS,
    )


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"user:{username.lower()}", f"addr:{address}"


def is_locked_out(*, username: str, address: str) -> bool:
    return _counter().exceeded(*_keys(username, address))


def record_failure(*, username: str, address: str) -> None:
    _counter().record(*_keys(username, address))


def reset(*, username: str) -> None:
    """A successful sign-in clears the username's count (not the address's)."""
    _counter().reset(_keys(username, "")[0])

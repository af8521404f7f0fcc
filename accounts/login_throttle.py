"""The sign-in limits.

Failed sign-ins: after ``DEVBENCH_LOGIN_FAILURE_LIMIT`` failures within
``DEVBENCH_LOGIN_WINDOW_SECONDS`` for one username, or from one client address, sign-in is
refused (429) until the window has passed. Each attempt is counted before its password is
checked, and given back when the password was right (or never checked), so a burst sent at
once gets no more checks than the limit: counting after the slow check let every request of
the burst through.

Password checks at once: at most ``DEVBENCH_LOGIN_CONCURRENT_CHECKS`` per process. A check is
slow and memory-hungry on purpose (Argon2), so a burst could otherwise take every core and the
database connections the checks hold. An attempt over the cap is refused at once (503, retry in
a second) rather than queued: a queue would hold a thread and a connection per waiting request,
which is the exhaustion the cap exists to prevent.

Counters live in the shared cache (Redis), so every Daphne process sees the same counts, and
nothing is written to the database on a failed attempt. The client address is REMOTE_ADDR:
behind a proxy, Daphne's ``--proxy-headers`` sets it from X-Forwarded-For.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from devbench_site.errors import RateLimited, Unavailable
from devbench_site.rate_limits import FixedWindowCounter

LOCKED_OUT_MESSAGE = "Too many failed sign-in attempts. Wait a minute and try again."
BUSY_MESSAGE = "Too many sign-ins at once. Try again in a moment."
BUSY_RETRY_AFTER_SECONDS = 1

_checks_lock = threading.Lock()
_checks: tuple[int, threading.BoundedSemaphore] | None = None


class Busy(Unavailable):
    """Too many password checks are running in this process."""


class Attempt:
    """One counted sign-in attempt; ``succeeded()`` once the password proved right."""

    def __init__(self, username: str, address: str):
        self.username = username
        self.address = address
        self.outcome_known = False

    def succeeded(self) -> None:
        """A right password is no failure: the username's count starts again (earlier typos are
        forgotten) and this attempt is given back to the address, whose failures stay."""
        user_key, address_key = _keys(self.username, self.address)
        counter = _counter()
        counter.reset(user_key)
        counter.give_back(address_key)
        self.outcome_known = True

    def failed(self) -> None:
        """A wrong password: the attempt stays counted."""
        self.outcome_known = True


def _counter() -> FixedWindowCounter:
    return FixedWindowCounter(
        "login-failures",
        limit=settings.DEVBENCH_LOGIN_FAILURE_LIMIT,
        window_seconds=settings.DEVBENCH_LOGIN_WINDOW_SECONDS,
    )


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"user:{username.lower()}", f"addr:{address}"


def _password_checks() -> threading.BoundedSemaphore:
    """The process's semaphore, made again when the setting changed (tests change it)."""
    global _checks
    size = max(1, settings.DEVBENCH_LOGIN_CONCURRENT_CHECKS)
    with _checks_lock:
        if _checks is None or _checks[0] != size:
            _checks = (size, threading.BoundedSemaphore(size))
        return _checks[1]


@contextmanager
def attempt(*, username: str, address: str) -> Iterator[Attempt]:
    """Count a sign-in attempt and hold a password-check place for the block, which checks the
    password and says how it went. Raises ``RateLimited`` over the failure limit and ``Busy``
    over the cap, counting nothing. An attempt whose block ends without an outcome (an error)
    is given back."""
    keys = _keys(username, address)
    counter = _counter()
    if not counter.take(*keys):
        raise RateLimited(LOCKED_OUT_MESSAGE)
    checks = _password_checks()
    if not checks.acquire(blocking=False):
        counter.give_back(*keys)
        raise Busy(BUSY_MESSAGE)
    current = Attempt(username, address)
    try:
        yield current
    finally:
        checks.release()
        if not current.outcome_known:
            counter.give_back(*keys)

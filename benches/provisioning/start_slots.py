"""Start-up slots: how many jobs of one worker process start their remote command at once.

Starting a job is a burst of Python work: its queries, fabric's runner and its threads, the SSH
channel. The output of the jobs already running is read, stored and published by threads of the
same process, and with 50 jobs starting at once those threads waited for the GIL behind all of
them: output printed meanwhile was stored 190-350 ms late (docs/PERFORMANCE.md, benchmark 1).

A job holds a slot from the start of its task until its command runs on the host; at most
``settings.DEVBENCH_JOB_START_SLOTS`` hold one at once (0: no limit). A job that opens a new
connection, or waits for another job to open it, gives its slot up first, since that waits on
the network. Two bounds keep a slow host from holding up the others: a job that finds no free
slot within ``SLOT_WAIT_SECONDS`` starts without one, and a slot held longer than
``SLOT_HOLD_SECONDS`` (a host that hangs while a command starts) is taken back.

The limit is per process, so it matters for the threads pool (many jobs in one process, as in
the benchmark); a prefork child runs one job at a time and never waits for a slot.

The slot is held through opening the channel and starting the command, two round trips to the
host: giving it up before them (fabric's ``Runner.start``) measured no better than no slots at all
(p99 143-352 ms against 87-135 ms). On a host 50 ms away, 50 jobs asked for at once would need
~2.5 s to start through 2 slots (those still waiting after 2 s start without one) and ~5 s
through 1, which is why the default is 2 and not 1 (1 measured as well: p99 70-145 ms).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Iterator

from django.conf import settings

logger = logging.getLogger(__name__)

SLOT_WAIT_SECONDS = 2.0
SLOT_HOLD_SECONDS = 10.0

# The slot the current thread holds: (the StartSlots it came from, its lease), or None.
_held = threading.local()


class StartSlots:
    """At most ``size`` leases at once; a lease is held by one thread, which can give it up
    early, and expires after ``hold_seconds``."""

    def __init__(self, size: int, *, wait_seconds: float = SLOT_WAIT_SECONDS,
                 hold_seconds: float = SLOT_HOLD_SECONDS):
        self.size = size
        self.wait_seconds = wait_seconds
        self.hold_seconds = hold_seconds
        self._changed = threading.Condition()
        self._leases: dict[int, float] = {}  # lease -> when it expires (time.monotonic())
        self._next_lease = itertools.count(1)

    @contextlib.contextmanager
    def slot(self) -> Iterator[bool]:
        """Hold a slot for the block, or until :func:`release_held_slot` in this thread.

        Yields whether a slot was got: False without a limit, after ``wait_seconds`` with none
        free, or inside another ``slot()`` block of this thread (which keeps the outer one).
        """
        if self.size <= 0 or holds_slot():
            yield False
            return
        lease = self._acquire()
        if lease is None:
            logger.info("no job start-up slot free after %g s; starting without one", self.wait_seconds)
            yield False
            return
        _held.lease = (self, lease)
        try:
            yield True
        finally:
            release_held_slot()

    def in_use(self) -> int:
        """How many slots are held now (expired ones not counted)."""
        with self._changed:
            self._expire(time.monotonic())
            return len(self._leases)

    def _acquire(self) -> int | None:
        deadline = time.monotonic() + self.wait_seconds
        with self._changed:
            while True:
                now = time.monotonic()
                self._expire(now)
                if len(self._leases) < self.size:
                    lease = next(self._next_lease)
                    self._leases[lease] = now + self.hold_seconds
                    return lease
                if now >= deadline:
                    return None
                self._changed.wait(min(deadline, min(self._leases.values())) - now)

    def _expire(self, now: float) -> None:
        for lease, expires in list(self._leases.items()):
            if expires <= now:
                del self._leases[lease]
                logger.warning("a job held its start-up slot for over %g s; the slot is taken back",
                               self.hold_seconds)

    def _release(self, lease: int) -> None:
        with self._changed:
            if self._leases.pop(lease, None) is not None:
                self._changed.notify()


def release_held_slot() -> None:
    """Give the current thread's slot back to the slots it came from (its command now runs, or it
    waits on the network, or its block ended); nothing when it holds none."""
    held = getattr(_held, "lease", None)
    if held is not None:
        _held.lease = None
        slots, lease = held
        slots._release(lease)


def holds_slot() -> bool:
    """Whether the current thread holds a slot now."""
    return getattr(_held, "lease", None) is not None


_slots: StartSlots | None = None
_slots_lock = threading.Lock()


def job_start_slots() -> StartSlots:
    """This process's slots, sized by ``settings.DEVBENCH_JOB_START_SLOTS`` (made again when the
    setting changes; a slot is always given back to the slots it came from)."""
    global _slots
    size = settings.DEVBENCH_JOB_START_SLOTS
    slots = _slots
    if slots is None or slots.size != size:
        with _slots_lock:
            if _slots is None or _slots.size != size:
                _slots = StartSlots(size)
            slots = _slots
    return slots

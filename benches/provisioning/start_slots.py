"""Start-up slots: how many jobs of one worker process start their remote command at once.

Starting a job is a burst of Python work: its queries, fabric's runner and its threads, the SSH
channel. The output of the jobs already running is read, stored and published by threads of the
same process, and with 50 jobs starting at once those threads waited for the GIL behind all of
them: output printed meanwhile was stored 190-350 ms late (docs/PERFORMANCE.md, benchmark 1).

A job holds a slot from the start of its task until its command runs on the host; at most
``settings.DEVBENCH_JOB_START_SLOTS`` hold one at once (0: no limit). A job that opens a new
connection, or waits for another job to open it, gives its slot up first, since that waits on
the network, and a job that finds no
free slot within ``SLOT_WAIT_SECONDS`` starts without one, so a host that hangs while a command
starts delays the others by at most that long.

The slot is held through opening the channel and starting the command, two round trips to the
host: giving it up before them (fabric's ``Runner.start``) measured no better than no slots at all
(p99 143-352 ms against 87-135 ms). On a host 50 ms away, 50 jobs asked for at once therefore
start over ~2.5 s with 2 slots, which is why the default is 2 and not 1 (1 measured as well:
p99 70-145 ms).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from django.conf import settings

logger = logging.getLogger(__name__)

SLOT_WAIT_SECONDS = 2.0


class StartSlots:
    """A semaphore whose holder is a thread, and which that thread can give up early."""

    def __init__(self, size: int, *, wait_seconds: float = SLOT_WAIT_SECONDS):
        self.size = size
        self.wait_seconds = wait_seconds
        self._semaphore = threading.BoundedSemaphore(size) if size > 0 else None
        self._holder = threading.local()

    @contextlib.contextmanager
    def slot(self) -> Iterator[bool]:
        """Hold a slot for the block, or until :meth:`release` in this thread.

        Yields whether a slot was got (False without a limit, or after ``wait_seconds``).
        """
        got = self._semaphore is not None and self._semaphore.acquire(timeout=self.wait_seconds)
        if self._semaphore is not None and not got:
            logger.info("no job start-up slot free after %.1f s; starting without one", self.wait_seconds)
        self._holder.held = got
        try:
            yield got
        finally:
            self.release()

    def release(self) -> None:
        """Give this thread's slot to the next job; nothing when this thread holds none."""
        if getattr(self._holder, "held", False):
            self._holder.held = False
            self._semaphore.release()

    def holds_slot(self) -> bool:
        """Whether the calling thread holds a slot now."""
        return getattr(self._holder, "held", False)


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


def command_started() -> None:
    """The calling thread's job now runs its command (or waits on the network): free its slot."""
    if _slots is not None:
        _slots.release()

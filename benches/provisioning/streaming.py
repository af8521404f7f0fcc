"""Turning a job's output into stored chunks and Channels events, in that order.

Output arrives in small pieces from the transport's reader threads. A flusher thread coalesces
them every ``FLUSH_INTERVAL`` seconds (or once ``MAX_BUFFER`` characters are pending) into
chunks with a per-job sequence number, stores them in one INSERT, and only then sends them to
the owner's browsers. The WebSocket therefore never shows what is not stored, and a client that
reconnects can replay the log from the database without a gap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable

from channels.layers import get_channel_layer
from django.db import close_old_connections, connection

from ..models import Job, JobChunk
from . import messages

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05
MAX_BUFFER = 32 * 1024


class ChannelsPublisher:
    """Sends group messages through the channel layer from sync code.

    One event loop thread per process owns the layer's Redis connections, so a flush costs a
    publish, not a new connection (``async_to_sync`` would start a loop per call).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="devbench-publisher", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def send(self, group: str, payloads: list[dict]) -> None:
        """Send each payload to ``group`` in order; errors are logged, never raised."""
        if not payloads:
            return
        layer = get_channel_layer()
        if layer is None:
            return

        async def send_all() -> None:
            for payload in payloads:
                await layer.group_send(group, {"type": "bench.event", "message": payload})

        future = asyncio.run_coroutine_threadsafe(send_all(), self._ensure_loop())
        try:
            future.result(timeout=10)
        except Exception:
            logger.warning("could not publish %d message(s) to %s", len(payloads), group, exc_info=True)


publisher = ChannelsPublisher()


def user_group(user_id: int) -> str:
    """The Channels group of one user's connections."""
    return f"user-{user_id}"


class JobOutputStream:
    """Collects a running job's output and flushes it as stored, then published, chunks."""

    def __init__(self, job: Job, *, on_flush: Callable[[str], None] | None = None):
        self.job = job
        self.seq = job.last_seq
        self._pending: list[tuple[str, str]] = []
        self._pending_size = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._on_flush = on_flush
        self._group = user_group(job.owner_id) if job.owner_id else None

    def __enter__(self) -> JobOutputStream:
        self._thread = threading.Thread(target=self._run, name=f"devbench-job-{self.job.pk}-flush", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, stream: str, text: str) -> None:
        """Queue output from ``stream`` ("stdout" or "stderr"); thread-safe."""
        if not text:
            return
        with self._lock:
            if self._pending and self._pending[-1][0] == stream:
                self._pending[-1] = (stream, self._pending[-1][1] + text)
            else:
                self._pending.append((stream, text))
            self._pending_size += len(text)
            if self._pending_size >= MAX_BUFFER:
                self._wake.set()

    def close(self) -> None:
        """Flush what is left and stop the flusher thread."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        else:
            self.flush()

    def _run(self) -> None:
        try:
            while not self._closed:
                self._wake.wait(FLUSH_INTERVAL)
                self._wake.clear()
                self.flush()
            self.flush()
        finally:
            connection.close()  # this thread's own database connection

    def flush(self) -> None:
        with self._lock:
            pending, self._pending, self._pending_size = self._pending, [], 0
        if not pending:
            return
        chunks = []
        for stream, text in pending:
            self.seq += 1
            chunks.append(JobChunk(job_id=self.job.pk, seq=self.seq, stream=stream, data=text))
        close_old_connections()
        JobChunk.objects.bulk_create(chunks)
        if self._group:
            publisher.send(self._group, [messages.script_output(self.job, chunk) for chunk in chunks])
        if self._on_flush is not None:
            self._on_flush("".join(text for stream, text in pending if stream == "stdout"))

"""Turning a job's output into stored chunks, in the order it was written, and only then handing
them to the publisher (publishing.py).

Output arrives in small pieces from the transport's reader threads. One flusher thread per
process coalesces the pending output of every running job every ``FLUSH_INTERVAL`` seconds (or
as soon as one job has ``MAX_BUFFER`` characters pending) into chunks with a per-job sequence
number, stores all of them in one INSERT, and only then has them sent to the owners' browsers. The
WebSocket therefore never shows what is not stored, and a client that reconnects can replay the
log from the database without a gap.

The same thread records every running job's heartbeat and reads their cancel requests, one query
each for all of them, so a worker running N jobs holds one database connection for their output
instead of 2N (docs/PERFORMANCE.md: 50 concurrent jobs exhausted PostgreSQL's 100 connections).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, IntegrityError, connection
from django.utils import timezone

from ..models import Job, JobChunk
from . import messages
from .publishing import publisher, user_group

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05
MAX_BUFFER = 32 * 1024
HEARTBEAT_INTERVAL = 5.0
CANCEL_POLL_INTERVAL = 0.25


def _drop_broken_connection() -> None:
    """Django's ``close_old_connections()`` without its ``CONN_MAX_AGE`` part: with the default
    ``CONN_MAX_AGE=0`` that part closes the connection every time, so every flush paid for a new
    PostgreSQL connection (a backend process: ~7 ms of server CPU). Only a broken one is dropped."""
    if connection.connection is not None and connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()


def _store_and_publish(batch: list[tuple[JobOutputStream, list[JobChunk]]], *, wait: bool = True) -> None:
    """Store the chunks of several streams in one INSERT, then publish them, then call back.

    With ``wait=False`` (the shared flusher) the publish is queued, not awaited: the next cycle's
    INSERT overlaps it, and the publisher's order keeps each job's chunks in ``seq`` order.
    A failed INSERT raises; the caller puts the chunks back (database away) or drops them.
    """
    _drop_broken_connection()
    JobChunk.objects.bulk_create([chunk for _stream, chunks in batch for chunk in chunks])
    publisher.send_many([
        (stream._group, [messages.script_output(stream.job, chunk) for chunk in chunks])
        for stream, chunks in batch
        if stream._group
    ], wait=wait)
    for stream, chunks in batch:
        if stream._on_flush is not None:
            stream._on_flush("".join(chunk.data for chunk in chunks if chunk.stream == JobChunk.Stream.STDOUT))


class _Flusher:
    """The process's one flusher thread, shared by every open :class:`JobOutputStream`."""

    def __init__(self) -> None:
        self._streams: dict[int, JobOutputStream] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def add(self, stream: JobOutputStream) -> None:
        with self._lock:
            self._streams[id(stream)] = stream
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="devbench-output-flusher", daemon=True)
                self._pid = os.getpid()
                self._thread.start()
        self._wake.set()  # its first heartbeat at once

    def remove(self, stream: JobOutputStream) -> None:
        with self._lock:
            self._streams.pop(id(stream), None)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        next_cancel_poll = 0.0
        failing = False
        while True:
            with self._lock:
                streams = list(self._streams.values())
            if not streams:
                connection.close()  # hold no connection while no job runs here
                self._wake.wait()
                self._wake.clear()
                continue
            cycle_end = time.monotonic() + FLUSH_INTERVAL
            try:
                self._flush(streams)
                now = time.monotonic()
                due = [stream for stream in streams if now >= stream._next_beat]
                if due:
                    self._heartbeat(due, now)
                if now >= next_cancel_poll:
                    self._poll_cancel(streams)
                    next_cancel_poll = now + CANCEL_POLL_INTERVAL
                failing = False
            except Exception:
                if not failing:  # once per outage, not every cycle
                    logger.exception("storing job output failed; retrying every %s s", FLUSH_INTERVAL)
                failing = True
                connection.close()  # reconnect on the next cycle
            self._wake.wait(max(0.0, cycle_end - time.monotonic()))
            self._wake.clear()

    @staticmethod
    def _flush(streams: list[JobOutputStream]) -> None:
        batch: list[tuple[JobOutputStream, list[JobChunk]]] = []
        try:
            for stream in streams:
                if not stream._flush_lock.acquire(blocking=False):
                    continue  # its owner is flushing it (closing)
                chunks = [] if stream._closed else stream._take_chunks()
                if chunks:
                    batch.append((stream, chunks))
                else:
                    stream._flush_lock.release()
            if not batch:
                return
            try:
                _store_and_publish(batch, wait=False)
            except IntegrityError:
                # One job's rows refused (its job row is gone?): store the others on their own.
                for index, (stream, chunks) in enumerate(batch):
                    try:
                        _store_and_publish([(stream, chunks)], wait=False)
                    except IntegrityError:
                        logger.warning("dropped %d output chunk(s) of job %s", len(chunks), stream.job.pk,
                                       exc_info=True)
                    except DatabaseError:
                        for later, later_chunks in batch[index:]:
                            later._put_back(later_chunks)
                        raise
            except DatabaseError:
                for stream, chunks in batch:  # the database is away: keep them for the next cycle
                    stream._put_back(chunks)
                raise
        finally:
            for stream, _chunks in batch:
                stream._flush_lock.release()

    @staticmethod
    def _heartbeat(streams: list[JobOutputStream], now: float) -> None:
        """Tell the stale-job sweeper that these jobs' worker is alive."""
        for stream in streams:
            stream._next_beat = now + HEARTBEAT_INTERVAL
        _drop_broken_connection()
        Job.objects.filter(pk__in=[stream.job.pk for stream in streams]).update(heartbeat_at=timezone.now())

    @staticmethod
    def _poll_cancel(streams: list[JobOutputStream]) -> None:
        waiting = {stream.job.pk: stream for stream in streams if not stream._cancel_requested}
        if not waiting:
            return
        _drop_broken_connection()
        for job_id in Job.objects.filter(pk__in=list(waiting), cancel_requested_at__isnull=False).values_list(
            "pk", flat=True
        ):
            waiting[job_id]._cancel_requested = True


_flusher = _Flusher()


class JobOutputStream:
    """Collects a running job's output; the shared flusher stores, then publishes, it as chunks.

    Use it as a context manager: on exit what is left is flushed in the caller's thread, so every
    chunk is stored and published before the caller announces the job's end.
    """

    def __init__(self, job: Job, *, on_flush: Callable[[str], None] | None = None):
        self.job = job
        self.seq = job.last_seq
        self._pending: list[tuple[str, list[str]]] = []
        self._pending_size = 0
        self._lock = threading.Lock()  # guards _pending
        self._flush_lock = threading.Lock()  # one flush of this stream at a time, in seq order
        self._closed = False
        self._registered = False
        self._cancel_requested = False
        self._next_beat = 0.0
        self._on_flush = on_flush
        self._group = user_group(job.owner_id) if job.owner_id else None

    def __enter__(self) -> JobOutputStream:
        self._registered = True
        _flusher.add(self)
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, stream: str, text: str) -> None:
        """Queue output from ``stream`` ("stdout" or "stderr"); thread-safe.

        A NUL character becomes U+FFFD: PostgreSQL's text columns refuse NUL, and one refused
        row would hold back the INSERT of every running job's output."""
        if not text:
            return
        if "\x00" in text:
            text = text.replace("\x00", "\ufffd")
        with self._lock:
            if self._pending and self._pending[-1][0] == stream:
                self._pending[-1][1].append(text)
            else:
                self._pending.append((stream, [text]))
            self._pending_size += len(text)
            full = self._pending_size >= MAX_BUFFER
        if full and self._registered:
            _flusher.wake()

    def cancel_requested(self) -> bool:
        """Whether someone asked to cancel the job (read by the shared flusher every
        ``CANCEL_POLL_INTERVAL`` seconds while the stream is open; asked directly otherwise)."""
        if self._cancel_requested or not self._registered or self._closed:
            return self._cancel_requested or Job.objects.filter(
                pk=self.job.pk, cancel_requested_at__isnull=False
            ).exists()
        return False

    def close(self) -> None:
        """Stop sharing the flusher and store and publish what is left, in this thread."""
        if self._registered:
            _flusher.remove(self)
        self._closed = True
        try:
            self.flush()
        except DatabaseError:
            logger.warning("could not store the last output of job %s", self.job.pk, exc_info=True)

    def flush(self) -> None:
        """Store, then publish, what is pending now (in the caller's thread)."""
        with self._flush_lock:
            chunks = self._take_chunks()
            if chunks:
                try:
                    _store_and_publish([(self, chunks)])
                except DatabaseError:
                    self._put_back(chunks)
                    raise

    # --- used under _flush_lock ---------------------------------------------------------------

    def _take_chunks(self) -> list[JobChunk]:
        with self._lock:
            pending, self._pending, self._pending_size = self._pending, [], 0
        chunks = []
        for stream, parts in pending:
            self.seq += 1
            chunks.append(JobChunk(job_id=self.job.pk, seq=self.seq, stream=stream, data="".join(parts)))
        return chunks

    def _put_back(self, chunks: list[JobChunk]) -> None:
        """Undo a take whose INSERT failed: same text, same sequence numbers next time."""
        self.seq -= len(chunks)
        with self._lock:
            self._pending[:0] = [(chunk.stream, [chunk.data]) for chunk in chunks]
            self._pending_size += sum(len(chunk.data) for chunk in chunks)

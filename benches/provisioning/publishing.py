"""Publishing job events to the owners' browsers over the Channels layer, from sync code.

``publisher`` is the process's one :class:`ChannelsPublisher`; ``user_group`` names the group of
one user's connections. The output stream (streaming.py) stores chunks first and then hands them
here, so a browser never sees what is not stored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


class ChannelsPublisher:
    """Sends group messages through the channel layer from sync code, strictly in call order.

    One event loop thread per process owns the layer's Redis connections, so a flush costs a
    publish, not a new connection (``async_to_sync`` would start a loop per call). Calls go
    through one FIFO drained by one task on that loop: whatever is sent is published after
    everything sent before it, from any thread. ``wait=False`` returns once the batch is queued,
    so the flusher stores the next chunks while the last ones are published (at most
    ``MAX_QUEUED`` batches ahead); ``wait=True`` returns once this batch, and so every earlier
    one, is published.
    """

    MAX_QUEUED = 64

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._room = threading.BoundedSemaphore(self.MAX_QUEUED)
        self._pid: int | None = None
        self._lock = threading.Lock()

    def _ensure_loop(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue]:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop, queue = asyncio.new_event_loop(), asyncio.Queue()
                threading.Thread(target=loop.run_forever, name="devbench-publisher", daemon=True).start()
                asyncio.run_coroutine_threadsafe(self._drain(queue), loop)
                self._room = threading.BoundedSemaphore(self.MAX_QUEUED)
                self._loop, self._queue, self._pid = loop, queue, os.getpid()
            return self._loop, self._queue

    def send(self, group: str, payloads: list[dict], *, wait: bool = True) -> None:
        """Send each payload to ``group`` in order; errors are logged, never raised."""
        self.send_many([(group, payloads)], wait=wait)

    def send_many(self, batches: list[tuple[str, list[dict]]], *, wait: bool = True) -> None:
        """Send several groups' payloads: each group's in order, the groups side by side, after
        everything sent before. Errors are logged, never raised."""
        batches = [(group, payloads) for group, payloads in batches if payloads]
        if not batches or get_channel_layer() is None:
            return
        loop, queue = self._ensure_loop()
        done: concurrent.futures.Future = concurrent.futures.Future()
        if not self._room.acquire(timeout=10):
            logger.warning("publishing is stuck: %d group(s) not published", len(batches))
            return
        loop.call_soon_threadsafe(queue.put_nowait, (batches, done))
        if wait:
            try:
                done.result(timeout=10)
            except concurrent.futures.TimeoutError:
                logger.warning("could not publish to %d group(s) within 10 s", len(batches))

    async def _drain(self, queue: asyncio.Queue) -> None:
        while True:
            batches, done = await queue.get()
            try:
                await self._publish(get_channel_layer(), batches)
            finally:
                self._room.release()
                done.set_result(None)

    @staticmethod
    async def _publish(layer, batches: list[tuple[str, list[dict]]]) -> None:
        async def send_group(group: str, payloads: list[dict]) -> None:
            for payload in payloads:
                await layer.group_send(group, {"type": "bench.event", "message": payload})

        results = await asyncio.gather(*(send_group(*batch) for batch in batches), return_exceptions=True)
        for (group, payloads), result in zip(batches, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("could not publish %d message(s) to %s", len(payloads), group, exc_info=result)


publisher = ChannelsPublisher()


def user_group(user_id: int) -> str:
    """The Channels group of one user's connections."""
    return f"user-{user_id}"

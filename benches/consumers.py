"""The WebSocket: a user's bench events (the original's ``script_output``, ``script_complete``,
``status_update``) and replay of stored job logs.

Only a signed-in session (from a page of this site's origin) or a Bearer API key may connect;
others are closed with 4401 (4403 for a session from another origin). The connection joins its
own user's group at once; the original's ``register`` is accepted for the connection's own user id
and refused for any other. ``replay`` sends the stored chunks
after a sequence number, then the live ones, with no gap and no duplicate: live messages for
that job are held back while the stored ones are read and sent, then deduplicated by ``seq``.

The socket ends with its credential (``accounts.socket_credentials``): closed with 4401 when its session
signs out or expires, its key is revoked, or the user's password is reset or the user is
deactivated; nothing is sent after that.
"""

from __future__ import annotations

import asyncio
import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from accounts import socket_credentials, ws_auth
from devbench_site.errors import DomainError

from . import selectors
from .models import Job
from .provisioning import messages
from .provisioning.publishing import user_group

MAX_FRAME_BYTES = 16 * 1024
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403


def _non_negative_int(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise DomainError(f"'{field}' must be a non-negative integer")
    return value


class BenchEventsConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: tuple[str, ...] = ()
    ended = False
    expiry_task: asyncio.Task | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if self.scope.get("auth_method") == "session" and not ws_auth.session_origin_allowed(self.scope):
            await self.accept()
            await self.close(code=CLOSE_FORBIDDEN_ORIGIN)
            return
        self.user = user
        self.credential: socket_credentials.SocketCredential = self.scope["credential"]
        self.delivered: dict[int, int] = {}
        self.completed: set[int] = set()
        self.held: dict[int, list[dict]] = {}
        self.groups_joined = (user_group(user.pk), socket_credentials.credentials_group(user.pk))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        if self.credential.expires_at is not None:
            self.expiry_task = asyncio.create_task(self._close_when_session_expires())

    async def disconnect(self, code) -> None:
        await self._leave_groups()
        if self.expiry_task is not None and self.expiry_task is not asyncio.current_task():
            self.expiry_task.cancel()

    async def _leave_groups(self) -> None:
        groups, self.groups_joined = self.groups_joined, ()
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    # --- the end of the socket's credential ---------------------------------------------------

    async def credentials_ended(self, event: dict) -> None:
        if socket_credentials.ended_by(self.credential, event):
            await self._end()

    async def _close_when_session_expires(self) -> None:
        """Sleep until the session's expiry; it may have been extended meanwhile, so look once
        more then (one read per expiry, none per message) and close when it is gone."""
        expires_at = self.credential.expires_at
        while expires_at is not None:
            await asyncio.sleep(max(0.0, (expires_at - timezone.now()).total_seconds()))
            expires_at = await database_sync_to_async(socket_credentials.session_still_valid_until)(self.credential)
        await self._end()

    async def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        await self._leave_groups()
        await self.close(code=socket_credentials.CLOSE_CREDENTIALS_ENDED)

    async def send(self, text_data=None, bytes_data=None, close=False) -> None:
        if not self.ended:  # after the credential ended, not one more frame
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    # --- frames from the client ---------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        if self.ended:
            return
        if text_data is None or len(text_data) > MAX_FRAME_BYTES:
            await self._error("Send JSON text frames of at most 16 KiB")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self._error("Malformed JSON")
            return
        if not isinstance(content, dict):
            await self._error("A message must be a JSON object")
            return
        handler = {"register": self._register, "replay": self._replay, "ping": self._ping}.get(content.get("type"))
        if handler is None:
            await self._error("Unknown message type; use register, replay or ping")
            return
        try:
            await handler(content)
        except DomainError as exc:
            await self._error(exc.message)

    async def _error(self, text: str) -> None:
        await self.send_json({"type": "error", "error": text})

    async def _ping(self, content: dict) -> None:
        await self.send_json({"type": "pong"})

    async def _register(self, content: dict) -> None:
        user_id = content.get("userId")
        if user_id != self.user.pk and str(user_id) != str(self.user.pk):
            raise DomainError("You can only register for your own events")
        # Already subscribed to this user's group on connect; nothing more to do.

    async def _replay(self, content: dict) -> None:
        after = _non_negative_int(content.get("after", 0), "after")
        if "jobId" in content:
            job = await database_sync_to_async(self._own_job)(_non_negative_int(content["jobId"], "jobId"))
        elif "devbenchId" in content:
            job = await database_sync_to_async(selectors.latest_job)(
                _non_negative_int(content["devbenchId"], "devbenchId"), self.user
            )
        else:
            raise DomainError("replay needs 'jobId' or 'devbenchId'")
        if job is None:
            return  # a bench with no job yet has no log
        self.held.setdefault(job.pk, [])
        try:
            job, chunks = await database_sync_to_async(self._stored_after)(job.pk, after)
            self.delivered[job.pk] = after
            self.completed.discard(job.pk)
            for chunk in chunks:
                await self.send_json(messages.script_output(job, chunk))
                self.delivered[job.pk] = chunk.seq
            if job.is_finished:
                self.completed.add(job.pk)
                await self.send_json(messages.script_complete(job))
        finally:
            for message in self.held.pop(job.pk, []):
                await self._deliver(message)

    def _own_job(self, job_id: int) -> Job:
        return selectors.job_for_owner(self.user, job_id)

    @staticmethod
    def _stored_after(job_id: int, after: int):
        job = Job.objects.get(pk=job_id)
        return job, list(selectors.job_log_after(job, after))

    # --- events from the channel layer --------------------------------------------------------

    async def bench_event(self, event: dict) -> None:
        await self._deliver(event["message"])

    async def _deliver(self, message: dict) -> None:
        job_id = message.get("jobId")
        if job_id in self.held:
            self.held[job_id].append(message)
            return
        kind = message.get("type")
        if kind == "script_output" and job_id is not None:
            if message["seq"] <= self.delivered.get(job_id, 0):
                return
            self.delivered[job_id] = message["seq"]
        elif kind == "script_complete" and job_id is not None:
            if job_id in self.completed:
                return
            self.completed.add(job_id)
        await self.send_json(message)

"""The credential an open WebSocket was opened with, and ending those sockets.

A socket lives no longer than its credential: ``end_sockets`` tells the user's open sockets,
through their credentials group, that a session ended, a key was revoked, or all of the user's
credentials ended (password reset, deactivation, deletion); the consumer closes those it concerns
with ``CLOSE_CREDENTIALS_ENDED``. A session socket also closes when its session expires.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from . import selectors

logger = logging.getLogger(__name__)

CLOSE_CREDENTIALS_ENDED = 4401


@dataclass(frozen=True)
class SocketCredential:
    """The session or the API key (by id) a socket authenticated with."""

    session_key: str | None = field(default=None, repr=False)
    api_key_id: int | None = None
    expires_at: datetime | None = None  # the session's expiry when the socket opened


def _session_digest(session_key: str) -> str:
    # The raw session key is a bearer secret: it stays out of the channel layer's messages.
    return hashlib.sha256(session_key.encode()).hexdigest()


def credentials_group(user_id: int) -> str:
    """The Channels group every open socket of one user joins, to hear that credentials ended."""
    return f"credentials-{user_id}"


def end_sockets(*, user_id: int, session_key: str | None = None, api_key_id: int | None = None) -> None:
    """Close the user's open sockets opened with that session, with that key, or (neither given)
    all of them, once the current transaction commits."""
    message = {
        "type": "credentials.ended",
        "session": _session_digest(session_key) if session_key else None,
        "apiKey": api_key_id,
    }

    def send() -> None:
        try:
            async_to_sync(get_channel_layer().group_send)(credentials_group(user_id), message)
        except Exception:  # the credential has ended in the database either way
            logger.exception("could not tell user %s's sockets that their credentials ended", user_id)

    transaction.on_commit(send)


def ended_by(credential: SocketCredential, message: dict) -> bool:
    """Whether a ``credentials.ended`` message concerns a socket opened with ``credential``."""
    if message.get("session") is None and message.get("apiKey") is None:
        return True
    if credential.session_key is not None:
        return message.get("session") == _session_digest(credential.session_key)
    return credential.api_key_id is not None and message.get("apiKey") == credential.api_key_id


def session_still_valid_until(credential: SocketCredential) -> datetime | None:
    """When the socket's session now expires (it may have been extended), or None when it is gone."""
    return selectors.session_expiry(credential.session_key) if credential.session_key else None

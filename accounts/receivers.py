"""Reactions to Django's auth signals."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from . import socket_credentials


@receiver(user_logged_out, dispatch_uid="accounts-close-sockets-of-ended-session")
def close_sockets_of_ended_session(sender, request, user, **kwargs) -> None:
    """Signing out (our /logout, the admin's) closes the sockets opened with that session."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        socket_credentials.end_sockets(user_id=user.pk, session_key=session_key)

"""Reactions to other apps' signals: a deleted user's namespace goes with them."""

from __future__ import annotations

from django.dispatch import receiver

from accounts.signals import user_deletion_requested

from . import services


@receiver(user_deletion_requested, dispatch_uid="sessionhosts.delete_with_user")
def delete_session_host_with_user(sender, user, **kwargs) -> None:
    """Delete the user's namespace now; the record (and so the user row) stays until it is gone."""
    services.delete_session_host(user=user)

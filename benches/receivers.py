"""Reactions to other apps' signals."""

from __future__ import annotations

from django.dispatch import receiver

from accounts.signals import user_deletion_requested

from . import services


@receiver(user_deletion_requested, dispatch_uid="benches-delete-benches-of-deleted-user")
def delete_benches_of_deleted_user(sender, user, actor, **kwargs) -> None:
    services.delete_benches_of(user=user, actor=actor)

"""Reactions to other apps' signals."""

from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from accounts.signals import user_deletion_requested

from . import services


@receiver(user_deletion_requested, dispatch_uid="benches-delete-benches-of-deleted-user")
def delete_benches_of_deleted_user(sender, user, actor, **kwargs) -> None:
    services.delete_benches_of(user=user, actor=actor)


@receiver(post_migrate, dispatch_uid="benches-ensure-local-host")
def create_local_host(sender: AppConfig, using: str = "default", **kwargs) -> None:
    """The built-in ``local`` host exists once the database is migrated (``make run`` migrates on
    every start; a test database flush migrates again), unless DEVBENCH_LOCAL_HOST turns it off."""
    if sender.label == "benches" and using == "default":
        services.ensure_local_host()

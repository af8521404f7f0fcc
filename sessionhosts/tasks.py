"""Celery tasks: reconcile one user's session host; the periodic resync of all of them (beat)."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from accounts import selectors as account_selectors

from . import services


@shared_task
def reconcile_session_host(user_id: int) -> None:
    """Ensure one user's session host (or finish deleting it with the user)."""
    user = account_selectors.user_by_id(user_id)
    if user is not None:
        services.reconcile_session_host(user=user)


@shared_task
def resync_session_hosts() -> dict:
    """Drift repair of every session host; returns what it did (for the worker log)."""
    return asdict(services.resync_session_hosts())

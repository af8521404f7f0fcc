"""Celery tasks: reconcile one user's session host; the periodic resync of all of them (beat).

Both retry, with exponential backoff and jitter, when the API server fails in a way a later
attempt may not (``KubernetesAPIUnavailable``: 429/5xx, or no answer within the timeout), at most
``DEVBENCH_KUBE_RETRY_MAX`` times. Each attempt redoes the whole create-or-get, which starts by
reading, so a write the server applied before failing is found, not repeated. Refusals (403, 422…)
are not retried: they fail the task at once.
"""

from __future__ import annotations

from dataclasses import asdict

from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings

from accounts import selectors as account_selectors

from . import services
from .kube import KubernetesAPIUnavailable


def _retry_later(task: Task, exc: KubernetesAPIUnavailable) -> Exception:
    """The task's retry (raise it): 2, 4, 8… seconds by default, capped, with full jitter.

    The limits are read from settings on each call, not frozen into the task at import.
    """
    countdown = get_exponential_backoff_interval(
        factor=settings.DEVBENCH_KUBE_RETRY_BACKOFF_SECONDS,
        retries=task.request.retries,
        maximum=settings.DEVBENCH_KUBE_RETRY_BACKOFF_MAX_SECONDS,
        full_jitter=True,
    )
    # Past the limit, ``retry`` raises ``exc`` itself: the task fails with the API server's reason.
    return task.retry(exc=exc, countdown=countdown, max_retries=settings.DEVBENCH_KUBE_RETRY_MAX)


@shared_task(bind=True)
def reconcile_session_host(self: Task, user_id: int) -> None:
    """Ensure one user's session host (or finish deleting it with the user)."""
    user = account_selectors.user_by_id(user_id)
    if user is None:
        return
    try:
        services.reconcile_session_host(user=user)
    except KubernetesAPIUnavailable as exc:
        raise _retry_later(self, exc) from exc


@shared_task(bind=True)
def resync_session_hosts(self: Task) -> dict:
    """Drift repair of every session host; returns what it did (for the worker log)."""
    try:
        return asdict(services.resync_session_hosts())
    except KubernetesAPIUnavailable as exc:  # a LIST failed: nothing was decided or written
        raise _retry_later(self, exc) from exc

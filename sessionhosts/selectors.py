"""Session-host reads."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User

from .models import SessionHost


def session_host_for(user: User) -> SessionHost | None:
    """The user's session-host record, or None when they never asked for one."""
    return SessionHost.objects.filter(user=user).first()


def session_hosts_for_resync() -> QuerySet[SessionHost]:
    """Every record with its user, for the resync to sort into active, deleting and idle."""
    return SessionHost.objects.select_related("user").order_by("pk")


def session_hosts_with_users(*, state: str | None = None) -> QuerySet[SessionHost]:
    """Every record with its user (one query), by username; only those in ``state`` when given."""
    hosts = SessionHost.objects.select_related("user").order_by("user__username")
    if state:
        hosts = hosts.filter(state=state)
    return hosts

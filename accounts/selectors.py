"""Account reads."""

from __future__ import annotations

from datetime import datetime

from django.contrib.sessions.models import Session
from django.db.models import QuerySet
from django.utils import timezone

from .models import APIKey, SSHKey, User


def api_keys_for(user: User) -> QuerySet[APIKey]:
    """The user's API keys, newest first, revoked ones included (they are the audit trail)."""
    return APIKey.objects.filter(user=user).order_by("-created_at")


def user_by_id(user_id: int) -> User | None:
    return User.objects.filter(pk=user_id).first()


def users_with_bench_counts() -> QuerySet[User]:
    """Every user with the number of their benches (one query), by username."""
    from django.db.models import Count

    return User.objects.annotate(bench_count=Count("benches")).order_by("username")


def user_with_bench_count(user_id: int) -> User | None:
    return users_with_bench_counts().filter(pk=user_id).first()


def session_expiry(session_key: str) -> datetime | None:
    """When a stored (database-backed) session expires, or None when it is gone or expired."""
    return (
        Session.objects.filter(session_key=session_key, expire_date__gt=timezone.now())
        .values_list("expire_date", flat=True)
        .first()
    )


def ssh_keys_for(user: User) -> QuerySet[SSHKey]:
    """The user's SSH keys, oldest first."""
    return SSHKey.objects.filter(user=user).order_by("created_at", "id")


def ssh_public_keys_for(user: User) -> list[str]:
    """The user's SSH public key lines, oldest first: what a new bench's VM authorizes."""
    return list(ssh_keys_for(user).values_list("public_key", flat=True))

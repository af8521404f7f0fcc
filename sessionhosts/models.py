"""The last-known state of each user's session host (the cluster is the truth; this is the record)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SessionHost(models.Model):
    """One per user who ever asked for a session host.

    The row is written before anything is created on the cluster and removed only once the user's
    namespace is gone, and it PROTECTs the user: a deleted user's row stays (deactivated) while
    their namespace may still exist.
    """

    class State(models.TextChoices):
        UNKNOWN = "unknown", "Not checked yet"
        MISSING = "missing", "No pod"
        PENDING = "pending", "Starting"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        DELETING = "deleting", "Deleting"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="session_host"
    )
    namespace = models.CharField(max_length=63)
    state = models.CharField(max_length=16, choices=State.choices, default=State.UNKNOWN)
    ready = models.BooleanField(default=False)
    pod_phase = models.CharField(max_length=16, blank=True)
    cert_ready = models.BooleanField("certificate ready", default=False)
    cert_pending_reason = models.TextField("certificate pending reason", blank=True)
    atch_session_count = models.PositiveIntegerField("atch sessions", default=0)
    pod_created_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(
        null=True, blank=True, help_text="When the cluster last answered about this session host."
    )
    last_error = models.TextField(
        blank=True, help_text="The last failure talking to the cluster; empty after a success."
    )
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"session host of {self.user.username}"

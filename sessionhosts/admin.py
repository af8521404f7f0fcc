"""Session hosts in the admin panel: the last-known state of every user's, read-only.

Deleting one (or its user) deletes the namespace through the services; the record stays until the
namespace is gone.
"""

from __future__ import annotations

from django.contrib import admin, messages

from devbench_site.errors import DomainError

from . import services
from .models import SessionHost


@admin.register(SessionHost)
class SessionHostAdmin(admin.ModelAdmin):
    list_display = (
        "user", "namespace", "state", "cert_ready", "atch_session_count", "pod_created_at",
        "last_checked_at", "short_error",
    )
    list_filter = ("state", "ready", "cert_ready")
    search_fields = ("user__username", "namespace")
    list_select_related = ("user",)
    ordering = ("user__username",)
    actions = ["check_now"]

    def has_add_permission(self, request) -> bool:
        return False  # created by the user's first POST

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the cluster is the truth; this is its last-known state

    def delete_model(self, request, obj: SessionHost) -> None:
        """Deleting a session host deletes its namespace; the record goes once that is gone."""
        self._delete_hosts(request, [obj])

    def delete_queryset(self, request, queryset) -> None:
        self._delete_hosts(request, list(queryset.select_related("user")))

    def _delete_hosts(self, request, hosts: list[SessionHost]) -> None:
        for host in hosts:
            if not services.delete_session_host(user=host.user):
                self.message_user(
                    request,
                    f"{host.user.username}: namespace {host.namespace} is being deleted; "
                    "the record goes once it is gone.",
                    messages.WARNING,
                )

    @admin.display(description="Last error")
    def short_error(self, obj: SessionHost) -> str:
        return obj.last_error[:80]

    @admin.action(description="Check the selected session hosts now")
    def check_now(self, request, queryset) -> None:
        for host in queryset.select_related("user"):
            try:
                status = services.session_host_status(user=host.user)
            except DomainError as exc:
                self.message_user(request, f"{host.user.username}: {exc.message}", messages.ERROR)
                continue
            state = "ready" if status.ready else "not ready"
            self.message_user(request, f"{host.user.username}: {state}", messages.SUCCESS)

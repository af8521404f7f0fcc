"""Users and API keys in the admin panel; deletes and password resets go through the services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm

from devbench_site.errors import DomainError

from . import services
from .models import APIKey, User


class UserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = UserCreationForm
    list_display = ("username", "email", "is_staff", "is_active", "bench_quota", "date_joined", "last_login")
    list_filter = ("is_staff", "is_active")
    search_fields = ("username", "email")
    ordering = ("username",)
    actions = ["reset_passwords"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Contact", {"fields": ("email", "first_name", "last_name")}),
        ("DevBench", {"fields": ("bench_quota", "deletion_requested_at")}),
        ("Role", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),
    )
    readonly_fields = ("deletion_requested_at", "last_login", "date_joined")

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and (obj.is_staff or obj.is_superuser):
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        """Benches and session hosts protect the user row so that none vanishes while its VM or
        namespace may exist; deleting goes through ``services.delete_user``, which removes them
        first. So they do not block the confirmation page."""
        deleted, model_count, perms_needed, _protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, perms_needed, []

    def delete_model(self, request, obj) -> None:
        self._delete_users(request, [obj])

    def delete_queryset(self, request, queryset) -> None:
        self._delete_users(request, list(queryset))

    def _delete_users(self, request, users) -> None:
        for user in users:
            try:
                gone = services.delete_user(admin=request.user, user=user)
            except DomainError as exc:
                self.message_user(request, f"{user.username}: {exc.message}", messages.ERROR)
                continue
            if not gone:
                self.message_user(
                    request,
                    f"{user.username} is deactivated; the account goes once their benches are removed.",
                    messages.WARNING,
                )

    @admin.action(description="Reset password (generate a new one)")
    def reset_passwords(self, request, queryset) -> None:
        for user in queryset:
            new_password = services.generate_password()
            try:
                services.reset_password(admin=request.user, user=user, new_password=new_password)
            except DomainError as exc:
                self.message_user(request, f"{user.username}: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request, f"New password for {user.username}: {new_password} (shown once)", messages.SUCCESS
            )


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at")
    fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")

    def has_add_permission(self, request) -> bool:
        return False  # keys are created by their owner, who alone sees the raw key

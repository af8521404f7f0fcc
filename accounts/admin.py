"""Users and API keys in the admin panel; deletes, deactivations, password resets and key
revocations go through the services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from devbench_site.errors import DomainError

from . import services
from .models import APIKey, SSHKey, User


class UserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email")


RESET_CONSEQUENCES = "Their API keys are revoked and their open connections closed."


class PasswordResetForm(AdminPasswordChangeForm):
    """The admin's password form without "disable password-based authentication": DevBench
    accounts sign in with a password. For another user it is a reset (``services.reset_password``)."""

    def __init__(self, user, *args, **kwargs):
        super().__init__(user, *args, **kwargs)
        self.fields.pop("usable_password", None)
        self.fields["password1"].required = self.fields["password2"].required = True


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = UserCreationForm
    change_password_form = PasswordResetForm
    list_display = ("username", "email", "is_staff", "is_active", "bench_quota", "date_joined", "last_login")
    list_filter = ("is_staff", "is_active")
    search_fields = ("username", "email")
    ordering = ("username",)
    actions = ["reset_passwords"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Contact", {"fields": ("email", "first_name", "last_name")}),
        ("DevBench", {"fields": ("bench_quota", "vcpu_quota", "memory_quota_mib", "disk_quota_gib",
                                 "deletion_requested_at")}),
        ("Role", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "password1", "password2")}),
    )
    readonly_fields = ("deletion_requested_at", "last_login", "date_joined")

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            services.deactivate_user(admin=request.user, user=obj)

    def user_change_password(self, request, id, form_url=""):
        """Another user's password is reset through the service, which refuses admins and
        revokes the user's keys; an admin's own password is changed as Django does it."""
        target = self.get_object(request, unquote(id))
        if target is None or target.pk == request.user.pk:
            return super().user_change_password(request, id, form_url)
        if not self.has_change_permission(request, target):
            raise PermissionDenied
        try:
            services.check_password_reset_allowed(user=target)
            if request.method == "POST":
                form = self.change_password_form(target, request.POST)
                if form.is_valid():
                    new_password = form.cleaned_data["password1"]
                    services.reset_password(admin=request.user, user=target, new_password=new_password)
                    self.log_change(request, target, "Reset the password; revoked the API keys.")
                    messages.success(request, f"Password changed. {RESET_CONSEQUENCES}")
                    return HttpResponseRedirect(reverse("admin:accounts_user_change", args=(target.pk,)))
        except DomainError as exc:
            context = {"status": exc.http_status, "message": exc.message}
            return render(request, "error.html", context, status=exc.http_status)
        # GET, or a form with errors: Django's page renders it.
        return super().user_change_password(request, id, form_url)

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

    @admin.action(description="Reset password (generate a new one, revoke API keys)")
    def reset_passwords(self, request, queryset) -> None:
        for user in queryset:
            new_password = services.generate_password()
            try:
                services.reset_password(admin=request.user, user=user, new_password=new_password)
            except DomainError as exc:
                self.message_user(request, f"{user.username}: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request, f"New password for {user.username}: {new_password} (shown once). {RESET_CONSEQUENCES}",
                messages.SUCCESS,
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

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if obj.revoked_at is not None and "revoked_at" in form.changed_data:
            services.revoke_api_key(user=obj.user, key_id=obj.pk)  # closes its open sockets


@admin.register(SSHKey)
class SSHKeyAdmin(admin.ModelAdmin):
    """Users add their own keys; an admin can see and remove them (a leaked key, a leaver)."""

    list_display = ("name", "user", "fingerprint", "created_at")
    search_fields = ("name", "fingerprint", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("user", "name", "public_key", "fingerprint", "created_at")
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

"""Permissions shared by the API's endpoints."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

ADMIN_REQUIRED = "Admin access required"  # the compatible admin routes say the same


class IsAdmin(BasePermission):
    """Admins only (``is_staff``); a signed-in user who is not one gets 403."""

    message = ADMIN_REQUIRED

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)

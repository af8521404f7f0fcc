"""The original's admin JSON routes (admin only, CSRF-protected, JSON or form bodies)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from devbench_site.errors import NotFound, json_errors
from devbench_site.request_data import body_fields

from . import selectors, services
from .decorators import admin_required_json

SUCCESS = {"success": True}


def _target_user(user_id: int):
    user = selectors.user_by_id(user_id)
    if user is None:
        raise NotFound("User not found")
    return user


@require_POST
@admin_required_json
@json_errors
def add_user(request: HttpRequest) -> JsonResponse:
    fields = body_fields(request)
    services.create_user(
        username=fields.get("username", ""),
        email=fields.get("email", ""),
        password=fields.get("password", ""),
    )
    return JsonResponse(SUCCESS)


@require_POST
@admin_required_json
@json_errors
def delete_user(request: HttpRequest, user_id: int) -> JsonResponse:
    services.delete_user(admin=request.user, user=_target_user(user_id))
    return JsonResponse(SUCCESS)


@require_POST
@admin_required_json
@json_errors
def reset_password(request: HttpRequest, user_id: int) -> JsonResponse:
    fields = body_fields(request)
    services.reset_password(
        admin=request.user, user=_target_user(user_id), new_password=fields.get("newPassword", "")
    )
    return JsonResponse(SUCCESS)

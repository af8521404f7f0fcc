"""The API's one exception handler: every error is the original's ``{"error": "..."}``, with the
field errors listed under ``"fields"`` when there are any.

Domain errors raised by the services keep their message and status code; DRF's own exceptions
(validation, authentication, permission, not found, throttling, parse, media type) get the same
shape. Anything else is left to Django's 500 handler.
"""

from __future__ import annotations

import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from devbench_site.errors import DomainError, error_body

NOT_AUTHENTICATED = "not authenticated"  # as the session-host endpoints (dev-pod-api) answer
NON_FIELD_KEYS = ("non_field_errors", "__all__")


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"field": [...], "items.0.name": [...]}``."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(_flatten(value, name))
        return flat
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        flat = {}
        for index, value in enumerate(detail):
            flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    items = detail if isinstance(detail, list) else [detail]
    return {prefix: [str(item) for item in items]}


def validation_body(detail) -> dict:
    """``{"error": "<field>: <first message>", "fields": {...}}`` for a ValidationError's detail."""
    if not isinstance(detail, dict):
        messages = _flatten(detail).get("", [])
        return error_body(messages[0] if messages else "Invalid input")
    flat = _flatten(detail)
    fields = {name: messages for name, messages in flat.items() if name not in NON_FIELD_KEYS}
    general = [message for key in NON_FIELD_KEYS for message in flat.get(key, [])]
    if general:
        message = general[0]
    elif fields:
        name, messages = next(iter(fields.items()))
        message = f"{name}: {messages[0]}"
    else:
        message = "Invalid input"
    return error_body(message, fields)


def _api_field_names(context: dict) -> dict[str, str]:
    """``{"script_path": "scriptPath", ...}`` from the view's request serializer, so that field
    errors raised by a service (model field names) come out under the names the client sent."""
    view = context.get("view")
    get_serializer_class = getattr(view, "get_serializer_class", None)
    if get_serializer_class is None:
        return {}
    try:
        fields = get_serializer_class()().fields
    except Exception:  # a view without a usable serializer has no names to map
        return {}
    return {field.source: name for name, field in fields.items() if field.source and field.source != name}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        names = _api_field_names(context) if exc.fields else {}
        fields = {names.get(name, name): messages for name, messages in exc.fields.items()}
        set_rollback()
        return Response(error_body(exc.message, fields), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    headers = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if wait is not None:
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    if isinstance(exc, exceptions.NotAuthenticated):
        body = error_body(NOT_AUTHENTICATED)
    elif isinstance(exc, exceptions.ValidationError):
        body = validation_body(exc.detail)
    else:
        detail = exc.detail
        body = error_body(str(detail) if isinstance(detail, str) else validation_body(detail)["error"])
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)

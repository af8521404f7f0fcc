"""Domain errors shared by every app, and their one mapping to the original's ``{"error": ...}``.

Services raise these. The DRF API renders them through its exception handler
(``devbench_site.api.exceptions``), the compatible JSON routes through ``json_errors``; both
build the body with ``error_body``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse


class DomainError(Exception):
    """A business rule refused the action. ``http_status`` is how the outside sees it."""

    http_status = 400

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class InvalidInput(DomainError):
    http_status = 400


class NotFound(DomainError):
    http_status = 404


class Forbidden(DomainError):
    http_status = 403


class Conflict(DomainError):
    """The object is busy or in a state that does not allow the action now."""

    http_status = 409


class PayloadTooLarge(DomainError):
    http_status = 413


class RateLimited(DomainError):
    http_status = 429


class Unavailable(DomainError):
    http_status = 503


def error_body(message: str, fields: dict[str, list[str]] | None = None) -> dict:
    """The original's error shape, with field errors listed when there are any."""
    body: dict = {"error": message}
    if fields:
        body["fields"] = fields
    return body


def json_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A non-DRF JSON route: a domain error it raises answers the original's JSON error and its code."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DomainError as exc:
            return JsonResponse(error_body(exc.message, exc.fields), status=exc.http_status)

    return wrapper

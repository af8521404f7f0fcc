"""Project-wide views: the health check and error pages that answer JSON clients in JSON."""

from __future__ import annotations

import logging
import sys

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from devbench_site import __version__

logger = logging.getLogger(__name__)


def _timestamp() -> str:
    return timezone.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """``{"status": "ok", ...}`` once the database answered a query; 503 when it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse(
            {"status": "error", "timestamp": _timestamp(), "version": __version__,
             "error": "database unavailable"},
            status=503,
        )
    return JsonResponse({"status": "ok", "timestamp": _timestamp(), "version": __version__})


def wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return (
        request.content_type == "application/json"
        or "application/json" in accept
        or "text/html" not in accept
    )


def _error(request: HttpRequest, status: int, message: str) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"error": message}, status=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _error(request, 403, "CSRF verification failed: send the csrftoken with the request")


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    return _error(request, 400, "Bad request")


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    return _error(request, 403, "You do not have permission to open this page")


def page_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    return _error(request, 404, "Not found")


def database_unavailable(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    logger.error("database unavailable for %s %s: %s", request.method, request.path, exception)
    response = _error(request, 503, "The database is unavailable right now; try again in a moment")
    response["Retry-After"] = "5"
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """The 500 handler. A database that is unreachable (restarting, failing over) gets a 503
    with a clear message: Django opens a new connection on the next request, so DevBench
    recovers by itself once the database is back."""
    exception = sys.exc_info()[1]
    if isinstance(exception, (OperationalError, InterfaceError)):
        return database_unavailable(request, exception)
    return _error(request, 500, "Internal server error")

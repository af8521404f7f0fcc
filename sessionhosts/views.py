"""The dev-pod-api session-host endpoints (DRF, thin): create-or-get and live status.

Errors are the seed's ``{"error": "..."}``: 401 ``not authenticated`` for anonymous callers,
403 ``subject mismatch`` for another user's status, 503 when Kubernetes is not configured, 500 with
the API server's reason when it fails.
"""

from __future__ import annotations

from collections.abc import Callable

from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from devbench_site.errors import DomainError, Forbidden, error_body

from . import services

NOT_AUTHENTICATED = "not authenticated"


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Map domain errors and DRF's own exceptions to the seed's error body."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.message, exc.fields), status=exc.http_status)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return Response(
            error_body(NOT_AUTHENTICATED), status=401, headers={"WWW-Authenticate": 'Bearer realm="api"'}
        )
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        return Response(error_body(str(detail)), status=exc.status_code)
    return None


class SessionHostAPIView(APIView):
    """Bearer key or session cookie (with CSRF); JSON only; the seed's errors."""

    renderer_classes = [JSONRenderer]

    def get_exception_handler(self) -> Callable[[Exception, dict], Response | None]:
        return api_exception_handler


class EnsureSessionHostView(SessionHostAPIView):
    def post(self, request: Request) -> Response:
        """``POST /api/v1/pods/session-host``: create-or-get the caller's session host."""
        status = services.ensure_session_host(user=request.user)
        return Response(status.as_json())


class SessionHostStatusView(SessionHostAPIView):
    def get(self, request: Request, user: str) -> Response:
        """``GET /api/v1/pods/session-host/<user>/status``: live readiness, creating nothing."""
        if user.lower() != request.user.username.lower():  # usernames are unique regardless of case
            raise Forbidden("subject mismatch")
        status = services.session_host_status(user=request.user)
        return Response(status.as_json())

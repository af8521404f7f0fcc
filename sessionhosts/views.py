"""The dev-pod-api session-host endpoints (DRF, thin): create-or-get and live status.

Errors are the original's ``{"error": "..."}``: 401 ``not authenticated`` for anonymous callers,
403 ``subject mismatch`` for another user's status, 503 when Kubernetes is not configured, 500 with
the API server's reason when it fails.
"""

from __future__ import annotations

from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from devbench_site.errors import Forbidden

from . import services


class SessionHostAPIView(APIView):
    """Bearer key or session cookie (with CSRF); JSON only; errors rendered by the API's one
    exception handler (``devbench_site.api.exceptions``)."""

    renderer_classes = [JSONRenderer]


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

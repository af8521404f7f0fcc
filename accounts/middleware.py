"""Bearer API-key authentication for every route (compatible routes, API, WebSocket handshakes use
their own path). A valid key sets ``request.user`` and exempts the request from CSRF, since a
browser never sends a Bearer header on its own; an invalid one is refused with 401."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from . import services


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


class APIKeyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        token = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
        request.api_key = None
        if token is not None:
            found = services.authenticate_api_key(token)
            if found is None:
                response = JsonResponse({"error": "invalid or revoked API key"}, status=401)
                response["WWW-Authenticate"] = 'Bearer realm="api", error="invalid_token"'
                return response
            request.user, request.api_key = found
            request._dont_enforce_csrf_checks = True
        return self.get_response(request)

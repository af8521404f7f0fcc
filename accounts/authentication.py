"""DRF authentication by Bearer API key (the middleware has already checked the key)."""

from __future__ import annotations

from rest_framework import authentication


class APIKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        api_key = getattr(request._request, "api_key", None)
        if api_key is None:
            return None
        return request._request.user, api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

"""WebSocket authentication by Bearer API key: the ``Authorization`` header, or ``?token=``
for clients (browsers) that cannot set headers. Runs inside Channels' session AuthMiddleware,
so a valid key wins over the cookie; ``scope["auth_method"]`` says which one authenticated."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser

from . import services
from .middleware import bearer_token


def _token_from_scope(scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            token = bearer_token(value.decode("latin1"))
            if token is not None:
                return token
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    values = query.get("token")
    return values[0] if values else None


class APIKeyWebSocketMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        token = _token_from_scope(scope)
        if token is not None:
            found = await database_sync_to_async(services.authenticate_api_key)(token)
            scope = {**scope, "user": found[0] if found else AnonymousUser(), "auth_method": "api_key"}
        else:
            scope = {**scope, "auth_method": "session"}
        return await super().__call__(scope, receive, send)

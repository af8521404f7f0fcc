"""WebSocket authentication: by Bearer API key (the ``Authorization`` header, or ``?token=``
for clients, browsers, that cannot set headers) or by the session cookie from a page of this
site's own origin. The middleware runs inside Channels' session AuthMiddleware, so a valid key
wins over the cookie; ``scope["auth_method"]`` says which one authenticated and
``scope["credential"]`` which session or key it was (``accounts.socket_credentials``).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

from . import selectors, services
from .middleware import bearer_token
from .socket_credentials import SocketCredential

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def _header(scope, name: bytes) -> str | None:
    return next((value.decode("latin1") for key, value in scope.get("headers", []) if key == name), None)


def _parse_origin(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) origin, with the scheme's default port filled in."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _is_secure(scope) -> bool:
    if scope.get("scheme") == "wss":
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:  # e.g. ("HTTP_X_FORWARDED_PROTO", "https"), as Django reads it for HTTP
        name, secure_value = proxy_header
        value = _header(scope, name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin1"))
        return value is not None and value.split(",")[0].strip() == secure_value
    return False


def _own_origin(scope) -> Origin | None:
    """The origin the client reached this server at: the handshake's scheme and Host header,
    when the host is one of ``ALLOWED_HOSTS``."""
    host = _header(scope, b"host")
    if not host:
        return None
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]"]):
        return None
    return _parse_origin(f"{'https' if _is_secure(scope) else 'http'}://{host}")


def _trusted(origin: Origin) -> bool:
    """Whether ``CSRF_TRUSTED_ORIGINS`` names the origin (``https://*.example.com`` for subdomains)."""
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        scheme, _, rest = entry.partition("://")
        wildcard = rest.startswith("*.")
        trusted = _parse_origin(f"{scheme}://{rest[1:] if wildcard else rest}")
        if trusted is None or trusted[0] != origin[0] or trusted[2] != origin[2]:
            continue
        if is_same_domain(origin[1], "." + trusted[1].lstrip(".") if wildcard else trusted[1]):
            return True
    return False


def session_origin_allowed(scope) -> bool:
    """Whether a cookie-authenticated handshake comes from a page of this site: its ``Origin``
    must equal the server's own origin (scheme, host and port) or a ``CSRF_TRUSTED_ORIGINS``
    entry. A page on another port of the same host is another origin."""
    origin = _parse_origin(_header(scope, b"origin") or "")
    if origin is None:
        return False
    return origin == _own_origin(scope) or _trusted(origin)


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
            scope = {
                **scope,
                "user": found[0] if found else AnonymousUser(),
                "auth_method": "api_key",
                "credential": SocketCredential(api_key_id=found[1].pk) if found else None,
            }
        else:
            scope = {**scope, "auth_method": "session", "credential": await self._session_credential(scope)}
        return await super().__call__(scope, receive, send)

    @staticmethod
    async def _session_credential(scope) -> SocketCredential | None:
        user, session = scope.get("user"), scope.get("session")
        if user is None or not user.is_authenticated or session is None or not session.session_key:
            return None
        expires_at = await database_sync_to_async(selectors.session_expiry)(session.session_key)
        return SocketCredential(session_key=session.session_key, expires_at=expires_at)

"""Response headers Django's SecurityMiddleware does not set: Content-Security-Policy,
Permissions-Policy, and ``Cache-Control: no-store`` on what a signed-in user is sent. Pages load
scripts and styles only from this origin (vendored assets) and connect only to it: ``'self'``
also allows the same origin's ``ws:``/``wss:`` (CSP Level 3), so no scheme source is needed."""

from __future__ import annotations

from django.conf import settings
from django.utils.cache import patch_cache_control

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeadersMiddleware:
    """Add a Content-Security-Policy and a Permissions-Policy to every response, and keep
    responses to signed-in users (pages, JSON) out of browser and proxy caches."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.csp = getattr(settings, "DEVBENCH_CSP", DEFAULT_CSP)

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.csp)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        # ``request.user`` is set only once the request got past WhiteNoise: static files stay cacheable.
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, no_store=True)
        return response


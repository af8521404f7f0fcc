"""Project middleware: response headers Django's SecurityMiddleware does not set
(Content-Security-Policy, Permissions-Policy, and ``Cache-Control: no-store`` on what a signed-in
user is sent), and the request body limit answered with 413. Pages load scripts and styles only
from this origin (vendored assets) and connect only to it: ``'self'`` also allows the same
origin's ``ws:``/``wss:`` (CSP Level 3), so no scheme source is needed."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control

from devbench_site.errors import error_body
from devbench_site.request_data import TOO_LARGE_MESSAGE
from devbench_site.views import wants_json

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



class BodySizeLimitMiddleware:
    """Refuse a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``DEVBENCH_MAX_BODY_BYTES``) with 413.

    Django refuses it too, but as a 400 and only when something reads the body (the CSRF check
    does, before any view): answering here, from the declared length, gives the documented code,
    the JSON error for JSON clients and an error page for browsers' form posts.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and _declared_length(request) > limit:
            return payload_too_large(request)
        return self.get_response(request)


def _declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # Django refuses a malformed length itself


def payload_too_large(request: HttpRequest) -> HttpResponse:
    """413: the original's JSON error for JSON and API clients, the error page for a browser."""
    if wants_json(request) or request.path.startswith("/api/"):
        return JsonResponse(error_body(TOO_LARGE_MESSAGE), status=413)
    return render(request, "error.html", {"status": 413, "message": TOO_LARGE_MESSAGE}, status=413)

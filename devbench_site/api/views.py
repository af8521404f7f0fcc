"""The API's own pages: the v1 root (links, for the browsable API) and the interactive docs.

The docs page is drf-spectacular's Swagger UI in its "split" form: the page loads Swagger UI's
assets from /static/ (drf-spectacular-sidecar, no CDN) and its init script from
``/api/docs/?script=``, so the Content-Security-Policy's ``script-src 'self'`` needs no exception.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

ROOT_LINKS = {
    "me": "api-me",
    "benches": "api-bench-list",
    "images": "api-image-list",
    "plans": "api-plan-list",
    "api-keys": "api-key-list",
    "ssh-keys": "api-ssh-key-list",
    "users": "api-user-list",
    "hosts": "api-host-list",
    "session-hosts": "api-session-host-list",
}


class APIRootView(APIView):
    """DevBench's JSON API, version 1. The OpenAPI document is at /api/schema/, its docs at /api/docs/."""

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        links = {name: reverse(url_name, request=request) for name, url_name in ROOT_LINKS.items()}
        links["schema"] = reverse("api-schema", request=request)
        links["docs"] = reverse("api-docs", request=request)
        return Response(links)


class DocsView(SpectacularSwaggerSplitView):
    url_name = "api-schema"

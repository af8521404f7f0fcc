"""Everything under ``/api/v1/`` that is not the session-host endpoints (``sessionhosts.urls``),
and the OpenAPI document and docs under ``/api/``."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

import sessionhosts.api_schema  # noqa: F401  (describes the session-host views in the schema)
from devbench_site.api import schema  # noqa: F401  (registers the Bearer security scheme)
from sessionhosts.api_admin import SessionHostAdminViewSet

from .views import APIRootView, DocsView

admin_router = SimpleRouter()
admin_router.register("session-hosts", SessionHostAdminViewSet, basename="api-session-host")

v1_patterns = [
    path("", APIRootView.as_view(), name="api-root"),
    path("", include("accounts.api.urls")),
    path("", include("benches.api.urls")),
    *admin_router.urls,
]

docs_patterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", DocsView.as_view(), name="api-docs"),
]

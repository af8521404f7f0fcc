"""``/api/v1/me/``, ``/api/v1/api-keys/``,
``/api/v1/ssh-keys/``, ``/api/v1/users/`` (mounted by devbench_site.api.urls)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("api-keys", views.APIKeyViewSet, basename="api-key")
router.register("ssh-keys", views.SSHKeyViewSet, basename="api-ssh-key")
router.register("users", views.UserViewSet, basename="api-user")

urlpatterns = [
    path("me/", views.MeView.as_view(), name="api-me"),
    *router.urls,
]

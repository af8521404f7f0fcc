"""Routes: the compatible routes keep their exact paths; the admin panel is the Django admin."""

from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import include, path

from accounts import admin_routes
from accounts import views as account_views
from devbench_site import (
    converters,  # noqa: F401  (registers the "id" converter)
    views,
)
from devbench_site.api import urls as api_urls


def root(request):
    if request.user.is_authenticated:
        return HttpResponseRedirect(account_views.landing_path(request.user))
    return HttpResponseRedirect("/login")


urlpatterns = [
    path("", root),
    path("health", views.health, name="health"),
    path("login", account_views.login_view, name="login"),
    path("logout", account_views.logout_view, name="logout"),
    path("api/user-info", account_views.user_info, name="user-info"),
    path("account/api-keys", account_views.api_keys_page, name="api-keys"),
    path("account/api-keys/create", account_views.api_key_create, name="api-key-create"),
    path("account/api-keys/<id:key_id>/revoke", account_views.api_key_revoke, name="api-key-revoke"),
    path("account/ssh-keys", account_views.ssh_keys_page, name="ssh-keys"),
    path("account/ssh-keys/add", account_views.ssh_key_add, name="ssh-key-add"),
    path("account/ssh-keys/<id:key_id>/delete", account_views.ssh_key_delete, name="ssh-key-delete"),
    path("admin/add-user", admin_routes.add_user, name="admin-add-user"),
    path("admin/delete-user/<id:user_id>", admin_routes.delete_user, name="admin-delete-user"),
    path("admin/reset-password/<id:user_id>", admin_routes.reset_password, name="admin-reset-password"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("sessionhosts.urls")),
    path("api/v1/", include(api_urls.v1_patterns)),
    path("api/", include(api_urls.docs_patterns)),
    path("", include("benches.urls")),
]

handler400 = "devbench_site.views.bad_request"
handler403 = "devbench_site.views.permission_denied"
handler404 = "devbench_site.views.page_not_found"
handler500 = "devbench_site.views.server_error"

"""The admin panel's site: anonymous visitors go to DevBench's own sign-in page, signed-in
users who are not admins get 403 rather than the admin's login form."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect


def _login_redirect(request) -> HttpResponseRedirect:
    path = request.get_full_path()
    if path in ("/admin/", "/admin/login/"):
        return HttpResponseRedirect("/login")
    return HttpResponseRedirect("/login?" + urlencode({"next": path}))


class DevBenchAdminSite(admin.AdminSite):
    site_header = "DevBench admin"
    site_title = "DevBench admin"
    index_title = "Users, hosts, benches and jobs"

    def has_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def guarded(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return _login_redirect(request)
            if not self.has_permission(request):
                raise PermissionDenied
            return inner(request, *args, **kwargs)

        guarded.__dict__.update(inner.__dict__)
        return guarded

    def login(self, request, extra_context=None):
        if request.user.is_authenticated:
            if self.has_permission(request):
                return HttpResponseRedirect("/admin/")
            raise PermissionDenied
        return _login_redirect(request)

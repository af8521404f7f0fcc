"""Access rules for the compatible routes: anonymous users go to ``/login`` (exactly, as the original
says), signed-in users who lack the role get 403."""

from __future__ import annotations

from functools import wraps

from django.http import HttpResponseRedirect, JsonResponse

LOGIN_PATH = "/login"


def sign_in_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return HttpResponseRedirect(LOGIN_PATH)
        return view(request, *args, **kwargs)

    return wrapper


def admin_required_json(view):
    @wraps(view)
    @sign_in_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            return JsonResponse({"error": "Admin access required"}, status=403)
        return view(request, *args, **kwargs)

    return wrapper

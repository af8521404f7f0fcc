"""Sign-in, sign-out, the user-info route, and the API-keys and SSH-keys pages."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from devbench_site.errors import DomainError, error_body
from devbench_site.request_data import body_fields

from . import login_throttle, selectors, services
from .decorators import sign_in_required

logger = logging.getLogger(__name__)

FAILED_LOGIN_MESSAGE = "Invalid username or password"


def landing_path(user) -> str:
    """Where a signed-in user lands: admins on the admin panel, users on their dashboard."""
    return "/admin" if user.is_staff else "/dashboard"


def _safe_next(request: HttpRequest, candidate: str) -> str | None:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return None


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.GET.get("next", "")
    if request.method == "GET":
        if request.user.is_authenticated:
            return HttpResponseRedirect(landing_path(request.user))
        return render(request, "accounts/login.html", {"next": next_url})
    try:
        fields = body_fields(request)
    except DomainError as exc:
        return render(request, "accounts/login.html", {"error": exc.message, "next": next_url}, status=exc.http_status)
    username = fields.get("username", "").strip()
    next_url = fields.get("next", next_url)
    address = request.META.get("REMOTE_ADDR", "")
    try:
        with login_throttle.attempt(username=username, address=address) as attempt:
            user = auth.authenticate(request, username=username, password=fields.get("password", ""))
            if user is None:
                attempt.failed()
            else:
                attempt.succeeded()
    except DomainError as exc:  # locked out (429) or too many checks at once (503)
        return _refused(request, exc)
    if user is None:
        logger.warning("failed sign-in for %r from %s", username[:64], address)
        return render(
            request,
            "accounts/login.html",
            {"error": FAILED_LOGIN_MESSAGE, "username": username, "next": next_url},
        )
    auth.login(request, user)  # rotates the session key
    return HttpResponseRedirect(_safe_next(request, next_url) or landing_path(user))


def _refused(request: HttpRequest, exc: DomainError) -> HttpResponse:
    """The refusal with a clear message (JSON for JSON clients); busy says when to retry."""
    if request.content_type == "application/json":
        response = JsonResponse(error_body(exc.message), status=exc.http_status)
    else:
        response = render(request, "accounts/login.html", {"error": exc.message}, status=exc.http_status)
    if isinstance(exc, login_throttle.Busy):
        response["Retry-After"] = str(login_throttle.BUSY_RETRY_AFTER_SECONDS)
    return response


# What a browser's ``Sec-Fetch-Site`` says of a request the user made on this site or by hand.
USER_INITIATED_FETCH_SITES = ("same-origin", "none")


@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    """Sign out (POST, CSRF-checked; or the original's GET) and go to the sign-in page.

    A GET that a browser marks as coming from another site (a link, an image) does not sign out.
    A GET without ``Sec-Fetch-Site`` does: browsers that send cookies along with cross-site
    requests send that header, so such a request comes from an old client or a program (curl).
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if request.method == "POST" or fetch_site is None or fetch_site in USER_INITIATED_FETCH_SITES:
        auth.logout(request)
    return HttpResponseRedirect("/login")


@require_GET
@sign_in_required
def user_info(request: HttpRequest) -> JsonResponse:
    user = request.user
    return JsonResponse({"userId": user.pk, "username": user.username, "isAdmin": user.is_staff})


def _api_keys_page(request: HttpRequest, *, status: int = 200, **context) -> HttpResponse:
    """The API-keys page with the user's keys, plus a new key or an error to show."""
    context["keys"] = selectors.api_keys_for(request.user)
    return render(request, "accounts/api_keys.html", context, status=status)


@sign_in_required
@require_GET
def api_keys_page(request: HttpRequest) -> HttpResponse:
    return _api_keys_page(request)


@sign_in_required
@require_POST
def api_key_create(request: HttpRequest) -> HttpResponse:
    try:
        key, raw_key = services.create_api_key(user=request.user, name=request.POST.get("name", ""))
    except DomainError as exc:
        return _api_keys_page(request, status=exc.http_status, error=exc.message)
    return _api_keys_page(request, new_key=raw_key, new_key_name=key.name)


@sign_in_required
@require_POST
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        services.revoke_api_key(user=request.user, key_id=key_id)
    except DomainError as exc:
        return _api_keys_page(request, status=exc.http_status, error=exc.message)
    return HttpResponseRedirect("/account/api-keys")


def _ssh_keys_page(request: HttpRequest, *, status: int = 200, **context) -> HttpResponse:
    """The SSH-keys page with the user's keys, plus an error (and the rejected input) to show."""
    context["keys"] = selectors.ssh_keys_for(request.user)
    context["limit"] = settings.DEVBENCH_MAX_SSH_KEYS_PER_USER
    return render(request, "accounts/ssh_keys.html", context, status=status)


@sign_in_required
@require_GET
def ssh_keys_page(request: HttpRequest) -> HttpResponse:
    return _ssh_keys_page(request)


@sign_in_required
@require_POST
def ssh_key_add(request: HttpRequest) -> HttpResponse:
    try:
        services.add_ssh_key(
            user=request.user, public_key=request.POST.get("public_key", ""), name=request.POST.get("name", "")
        )
    except DomainError as exc:
        return _ssh_keys_page(
            request, status=exc.http_status, error=exc.message,
            entered_name=request.POST.get("name", ""), entered_key=request.POST.get("public_key", ""),
        )  # fmt: skip
    return HttpResponseRedirect("/account/ssh-keys")  # a reload does not add it twice


@sign_in_required
@require_POST
def ssh_key_delete(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        services.delete_ssh_key(user=request.user, key_id=key_id)
    except DomainError as exc:
        return _ssh_keys_page(request, status=exc.http_status, error=exc.message)
    return HttpResponseRedirect("/account/ssh-keys")

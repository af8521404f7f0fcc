"""The user's pages: the dashboard and the help page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.decorators import login_required_seed


@require_GET
@login_required_seed
def dashboard(request: HttpRequest) -> HttpResponse:
    if request.user.is_staff:
        return HttpResponseRedirect("/admin")
    return render(request, "benches/dashboard.html")


@require_GET
@login_required_seed
def help_page(request: HttpRequest) -> HttpResponse:
    return render(request, "benches/help.html")

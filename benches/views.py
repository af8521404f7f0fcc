"""The compatible bench routes (exact JSON and codes), the dashboard, help and SSH config download."""

from __future__ import annotations

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import sign_in_required
from devbench_site.errors import NotFound, json_errors
from devbench_site.request_data import body_fields

from . import selectors, services, ssh_config
from .models import Job

SUCCESS = {"success": True}


def _json_action(action: Callable[[HttpRequest, int], dict]) -> Callable:
    """Run a service action for an owned bench and answer the original's JSON."""

    @json_errors
    def view(request: HttpRequest, object_id: int) -> JsonResponse:
        return JsonResponse(action(request, object_id))

    view.__name__ = action.__name__
    view.__doc__ = action.__doc__
    return sign_in_required(view)


@require_POST
@sign_in_required
@json_errors
def create_devbench(request: HttpRequest) -> JsonResponse:
    fields = body_fields(request)
    bench = services.create_bench(
        user=request.user, name=fields.get("name", ""), image=fields.get("image"), plan=fields.get("plan")
    )
    return JsonResponse({"success": True, "devbenchId": bench.pk})


def _delete(request: HttpRequest, bench_id: int) -> dict:
    services.delete_bench(bench=selectors.bench_for_owner(request.user, bench_id), actor=request.user)
    return SUCCESS


def _command(command: str) -> Callable[[HttpRequest, int], dict]:
    def action(request: HttpRequest, bench_id: int) -> dict:
        bench = selectors.bench_for_owner(request.user, bench_id)
        services.request_command(bench=bench, command=command, actor=request.user)
        return SUCCESS

    action.__name__ = f"{command}_devbench"
    return action


def _check_status(request: HttpRequest, bench_id: int) -> dict:
    bench = selectors.bench_for_owner(request.user, bench_id)
    return {"status": services.check_status(bench=bench, actor=request.user)}


def _cancel_job(request: HttpRequest, job_id: int) -> dict:
    job = selectors.job_for_owner(request.user, job_id)
    job = services.cancel_job(job=job, actor=request.user)
    return {"success": True, "state": job.state}


delete_devbench = require_POST(_json_action(_delete))
activate_devbench = require_POST(_json_action(_command(Job.Command.ACTIVATE)))
start_devbench = require_POST(_json_action(_command(Job.Command.START)))
stop_devbench = require_POST(_json_action(_command(Job.Command.STOP)))
check_status = require_GET(_json_action(_check_status))
cancel_job = require_POST(_json_action(_cancel_job))


@require_GET
@sign_in_required
def dashboard(request: HttpRequest) -> HttpResponse:
    if request.user.is_staff:
        return HttpResponseRedirect("/admin")
    return render(
        request,
        "benches/dashboard.html",
        {
            "benches": list(selectors.cards_for(request.user)),
            "vm_username": ssh_config.vm_username(request.user),
            "quota": services.quota_for(request.user),
            "images": list(selectors.images_offered()),
            "plans": list(selectors.plans_offered()),
        },
    )


@require_GET
@sign_in_required
def bench_cards(request: HttpRequest) -> HttpResponse:
    """The dashboard's list of cards alone (the script swaps it in after live updates were cut)."""
    return render(
        request,
        "benches/_bench_list.html",
        {"benches": selectors.cards_for(request.user), "vm_username": ssh_config.vm_username(request.user)},
    )


@require_GET
@sign_in_required
def bench_card(request: HttpRequest, object_id: int) -> HttpResponse:
    """One of the user's bench cards (the script swaps it in for a new bench); 404 for any other."""
    try:
        bench = selectors.bench_detail_for_owner(request.user, object_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return render(
        request, "benches/_bench_card.html", {"bench": bench, "vm_username": ssh_config.vm_username(request.user)}
    )


@require_GET
@sign_in_required
def help_page(request: HttpRequest) -> HttpResponse:
    benches = list(selectors.benches_for(request.user))
    return render(
        request,
        "benches/help.html",
        {
            "entries": ssh_config.entries_for(request.user, benches),
            "config_text": ssh_config.render(request.user, benches),
        },
    )


@require_GET
@sign_in_required
def ssh_config_download(request: HttpRequest) -> HttpResponse:
    text = ssh_config.render(request.user, list(selectors.benches_for(request.user)))
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="devbench_ssh_config"'
    return response

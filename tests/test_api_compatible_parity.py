"""For each action, the compatible route and the API's route leave the same state: the same bench
fields, the same job rows and the same stored output (names, ids, ports and times aside), because
both call the same service. Each action runs on two fresh benches of one user, one per route."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.test import Client

from benches import selectors, services
from benches.models import DevBench, Job
from tests.api_helpers import bearer_client, post_json

pytestmark = pytest.mark.django_db  # transactional where jobs run (``run_jobs`` asks for it)


@dataclass(frozen=True)
class Action:
    prepare: Callable  # (user, name, run_jobs) -> DevBench | None
    compatible: Callable  # (client, bench, name) -> response
    api: Callable
    compatible_status: int
    api_status: int


def created(user, name, run_jobs):
    bench = services.create_bench(user=user, name=name)
    run_jobs()
    bench.refresh_from_db()
    return bench


def stopped(user, name, run_jobs):
    bench = created(user, name, run_jobs)
    services.request_command(bench=bench, command="stop", actor=user)
    run_jobs()
    return bench


def queued(user, name, run_jobs):
    return services.create_bench(user=user, name=name)


def busy(user, name, run_jobs):
    bench = created(user, name, run_jobs)
    services.request_command(bench=bench, command="stop", actor=user)  # queued, not run
    return bench


def latest_job(bench):
    return Job.objects.filter(original_bench_id=bench.pk).latest("id")


ACTIONS = {
    "create": Action(
        lambda user, name, run_jobs: None,
        lambda c, bench, name: post_json(c, "/create-devbench", {"name": name}),
        lambda c, bench, name: post_json(c, "/api/v1/benches/", {"name": name}),
        200, 201),
    "create-invalid": Action(
        lambda user, name, run_jobs: None,
        lambda c, bench, name: post_json(c, "/create-devbench", {"name": name + ";id"}),
        lambda c, bench, name: post_json(c, "/api/v1/benches/", {"name": name + ";id"}),
        400, 400),
    "activate": Action(stopped, lambda c, b, n: c.post(f"/activate-devbench/{b.pk}"),
                       lambda c, b, n: c.post(f"/api/v1/benches/{b.pk}/activate/"), 200, 202),
    "start": Action(stopped, lambda c, b, n: c.post(f"/start-devbench/{b.pk}"),
                    lambda c, b, n: c.post(f"/api/v1/benches/{b.pk}/start/"), 200, 202),
    "stop": Action(created, lambda c, b, n: c.post(f"/stop-devbench/{b.pk}"),
                   lambda c, b, n: c.post(f"/api/v1/benches/{b.pk}/stop/"), 200, 202),
    "stop-while-busy": Action(busy, lambda c, b, n: c.post(f"/stop-devbench/{b.pk}"),
                              lambda c, b, n: c.post(f"/api/v1/benches/{b.pk}/stop/"), 409, 409),
    "check-status": Action(stopped, lambda c, b, n: c.get(f"/check-status/{b.pk}"),
                           lambda c, b, n: c.post(f"/api/v1/benches/{b.pk}/refresh-status/"), 200, 200),
    "delete": Action(created, lambda c, b, n: c.post(f"/delete-devbench/{b.pk}"),
                     lambda c, b, n: c.delete(f"/api/v1/benches/{b.pk}/"), 200, 202),
    "delete-never-started": Action(queued, lambda c, b, n: c.post(f"/delete-devbench/{b.pk}"),
                                   lambda c, b, n: c.delete(f"/api/v1/benches/{b.pk}/"), 200, 204),
    "cancel-queued-create": Action(queued, lambda c, b, n: c.post(f"/cancel-job/{latest_job(b).pk}"),
                                   lambda c, b, n: c.post(f"/api/v1/jobs/{latest_job(b).pk}/cancel/"), 200, 202),
}


def state_of(user, name: str) -> dict:
    """Everything the action may have changed, with what differs between two benches masked."""

    def mask(text: str) -> str:
        return re.sub(r"\d+", "N", (text or "").replace(name, "<name>"))

    bench = DevBench.objects.filter(user=user, name=name).select_related("host").first()
    jobs = Job.objects.filter(owner=user, bench_name=name).order_by("id")
    return {
        "bench": None if bench is None else {
            "status": bench.status, "actual_name": mask(bench.actual_name), "last_error": mask(bench.last_error),
            "ssh_info": mask(bench.ssh_info), "vnc_info": mask(bench.vnc_info), "vm_ip": bench.vm_ip,
            "host": bench.host.name,
        },
        "jobs": [
            {"command": job.command, "state": job.state, "exit_code": job.exit_code, "error": mask(job.error),
             "requested_by": job.requested_by_id, "vm_name": mask(job.vm_name), "started": job.started_at is not None,
             "finished": job.finished_at is not None, "cancel_requested": job.cancel_requested_at is not None,
             "log": mask(selectors.stored_log_text(job))}
            for job in jobs
        ],
    }


@pytest.mark.parametrize("action_name", list(ACTIONS))
def test_compatible_route_and_api_route_leave_the_same_state(action_name, user, local_agent, run_jobs):
    action = ACTIONS[action_name]
    compatible_client = Client()
    compatible_client.force_login(user)
    api_client = bearer_client(user)
    outcomes = {}
    routes = (("compatible", compatible_client, action.compatible, action.compatible_status),
              ("api", api_client, action.api, action.api_status))
    for route, client, call, expected in routes:
        name = f"{route}-vm"
        bench = action.prepare(user, name, run_jobs)
        response = call(client, bench, name)
        assert response.status_code == expected, (route, response.content)
        if expected >= 400:
            outcomes[route + "-error"] = response.json()["error"].replace(name, "<name>")
        run_jobs()
        outcomes[route] = state_of(user, name)
    assert outcomes["compatible"] == outcomes["api"]
    assert outcomes.get("compatible-error") == outcomes.get("api-error")
    assert outcomes["api"]["jobs"] or action_name == "create-invalid"

"""The compatible bench routes on the built-in local host (the real agent, simulated backend)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.test import Client

from accounts.models import User
from benches import selectors, services
from benches.models import DevBench, Job, JobChunk
from tests.bench_fixtures import bench_named, build_active_bench

pytestmark = pytest.mark.django_db  # transactional where jobs run (``run_jobs``) or threads need commits


def create(client: Client, name, **extra):
    return client.post("/create-devbench", data=json.dumps({"name": name}), content_type="application/json", **extra)


def test_create_records_bench_and_queues_job(user_client, user, local_agent):
    response = create(user_client, "test-vm")
    assert response.status_code == 200
    bench = bench_named(user, "test-vm")
    assert response.json() == {"success": True, "devbenchId": bench.pk}
    assert bench.status == "creating"
    assert bench.actual_name == ""
    job = Job.objects.get(bench=bench)
    assert (job.command, job.state, job.requested_by, job.owner) == ("create", "queued", user, user)


def test_create_runs_to_active_with_ports(user_client, user, local_agent, run_jobs):
    create(user_client, "test-vm")
    [job] = run_jobs()
    bench = bench_named(user, "test-vm")
    assert (job.state, job.exit_code) == ("succeeded", 0)
    assert bench.status == "active"
    assert bench.actual_name == "alice_test-vm"
    assert int(bench.ssh_info) >= 6000 and int(bench.vnc_info) >= 5000
    log = selectors.stored_log_text(job)
    assert "VM alice_test-vm Created and Ready" in log
    assert f"SSH Port: {bench.ssh_info}" in log
    seqs = list(JobChunk.objects.filter(job=job).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and job.last_seq == len(seqs)


def test_create_with_form_body(user_client, user, local_agent):
    response = user_client.post("/create-devbench", {"name": "formvm"})
    assert response.status_code == 200
    assert bench_named(user, "formvm").status == "creating"


def test_machine_format_records_vm_ip(user_client, user, local_agent, run_jobs):
    local_agent.configure(output_format="machine", host_ip="10.0.2.15")
    create(user_client, "machine")
    run_jobs()
    bench = bench_named(user, "machine")
    assert bench.status == "active"
    assert bench.ssh_info and bench.vnc_info


@pytest.mark.parametrize(
    "name",
    ["x;id", "$(id)", "`id`", "a\nb", "a b", "é", "naïve", "x" * 49, "", "../x", "a/b", "a'b", "a\x00b", "a|b"],
)
def test_invalid_names_are_400_and_nothing_runs(user_client, user, local_agent, name):
    response = create(user_client, name)
    assert response.status_code == 400
    assert response.json()["error"] in (
        "Invalid DevBench name. Use only letters, numbers, hyphens and underscores.",
        "DevBench name must be at most 48 characters",
        "DevBench name is required",
        "Field 'name' must not contain NUL characters",
    )
    assert not DevBench.objects.exists()
    assert not Job.objects.exists()


def test_non_string_name_is_400(user_client, local_agent):
    response = user_client.post("/create-devbench", data='{"name": ["x"]}', content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": "Field 'name' must be a string"}


def test_duplicate_name_is_400_with_the_original_message(user_client, user, local_agent, make_user):
    assert create(user_client, "dup").status_code == 200
    response = create(user_client, "dup")
    assert response.status_code == 400
    assert response.json()["error"] == "DevBench with this name already exists"
    assert DevBench.objects.filter(user=user).count() == 1
    # Another user may use the same name.
    other = Client()
    other.force_login(make_user("bob"))
    assert create(other, "dup").status_code == 200


def test_quota_is_enforced_with_per_user_override(user_client, user, local_agent, settings):
    settings.DEVBENCH_DEFAULT_QUOTA = 2
    assert create(user_client, "one").status_code == 200
    assert create(user_client, "two").status_code == 200
    response = create(user_client, "three")
    assert response.status_code == 400
    assert response.json()["error"] == "DevBench quota reached: you have 2 of 2. Delete one first."
    User.objects.filter(pk=user.pk).update(bench_quota=3)
    assert create(user_client, "three").status_code == 200


def test_creation_rate_limit_is_429(user_client, user, local_agent, settings):
    settings.DEVBENCH_CREATE_LIMIT_PER_HOUR = 2
    settings.DEVBENCH_DEFAULT_QUOTA = 10
    assert create(user_client, "a1").status_code == 200
    assert create(user_client, "a2").status_code == 200
    response = create(user_client, "a3")
    assert response.status_code == 429
    assert response.json() == {"error": "You can create at most 2 DevBenches per hour; try later"}
    assert DevBench.objects.filter(user=user).count() == 2


def test_no_host_with_capacity_is_503(user_client, user, settings):
    settings.DEVBENCH_LOCAL_HOST = False
    response = create(user_client, "nohost")
    assert response.status_code == 503
    assert response.json() == {"error": "No host has free capacity for a new DevBench; ask an admin"}
    assert not DevBench.objects.exists()


def test_failing_create_puts_bench_in_error(user_client, user, local_agent, run_jobs):
    local_agent.configure(fail_commands=["create"])
    create(user_client, "broken")
    [job] = run_jobs()
    bench = bench_named(user, "broken")
    assert (job.state, job.exit_code) == ("failed", 1)
    assert bench.status == "error"
    assert bench.last_error.startswith("The create command failed with exit code 1")
    assert JobChunk.objects.filter(job=job, stream="stderr").exists()


def test_create_without_ports_is_error_with_clear_message(user_client, user, local_agent, run_jobs):
    local_agent.configure(omit_ports=True)
    create(user_client, "noports")
    [job] = run_jobs()
    bench = bench_named(user, "noports")
    assert job.state == "succeeded"
    assert bench.status == "error"
    assert bench.last_error == "The create script exited 0 but printed no SSH port and VNC port"


def test_hung_create_times_out(user_client, user, local_agent, run_jobs):
    local_agent.configure(hang_commands=["create"])
    create(user_client, "hung")
    bench = bench_named(user, "hung")
    bench.host.command_timeout = 2
    bench.host.save()
    started = time.monotonic()
    [job] = run_jobs()
    assert time.monotonic() - started < 15
    bench.refresh_from_db()
    assert job.state == "timed_out"
    assert bench.status == "error"
    assert bench.last_error == "The create command timed out after 2 seconds"


@pytest.mark.django_db(transaction=True)
def test_cancel_running_create(user, local_agent):
    local_agent.configure(hang_commands=["create"])
    bench = services.create_bench(user=user, name="cancelme")
    job = Job.objects.get(bench=bench)
    worker = threading.Thread(target=services.execute_job, args=(job.pk,))
    worker.start()
    for _ in range(100):
        job.refresh_from_db()
        if job.state == "running" and job.last_seq == 0 and JobChunk.objects.filter(job=job).exists():
            break
        time.sleep(0.05)
    client = Client()
    client.force_login(user)
    started = time.monotonic()
    response = client.post(f"/cancel-job/{job.pk}")
    assert response.json() == {"success": True, "state": "running"}
    worker.join(timeout=20)
    assert not worker.is_alive()
    assert time.monotonic() - started < 10
    job.refresh_from_db()
    bench.refresh_from_db()
    assert job.state == "cancelled"
    assert bench.status == "error"
    assert bench.last_error == "The create command was cancelled"


def test_cancel_queued_create(user_client, user, local_agent):
    create(user_client, "queued")
    job = Job.objects.get()
    assert user_client.post(f"/cancel-job/{job.pk}").json() == {"success": True, "state": "cancelled"}
    assert bench_named(user, "queued").status == "error"
    assert user_client.post(f"/cancel-job/{job.pk}").status_code == 409


def test_delete_keeps_row_until_remote_delete_succeeds(user_client, user, local_agent, run_jobs):
    create(user_client, "gone")
    run_jobs()
    bench = bench_named(user, "gone")
    response = user_client.post(f"/delete-devbench/{bench.pk}")
    assert response.json() == {"success": True}
    bench.refresh_from_db()
    assert bench.status == "deleting"
    [job] = run_jobs()
    assert job.command == "delete" and job.state == "succeeded"
    assert not DevBench.objects.filter(pk=bench.pk).exists()
    # The jobs stay as the audit trail.
    assert Job.objects.filter(original_bench_id=bench.pk).count() == 2
    assert not (local_agent.state_dir / "vms" / "alice_gone.json").exists()


def test_delete_keeps_bench_when_remote_delete_fails(user_client, user, local_agent, run_jobs):
    create(user_client, "sticky")
    run_jobs()
    local_agent.configure(fail_commands=["delete"])
    bench = bench_named(user, "sticky")
    user_client.post(f"/delete-devbench/{bench.pk}")
    [job] = run_jobs()
    bench.refresh_from_db()
    assert job.state == "failed"
    assert bench.status == "error"
    assert bench.last_error.startswith("Delete failed, the VM may still exist: The delete command failed")


def test_delete_of_bench_never_started_removes_it_at_once(user_client, user, local_agent):
    create(user_client, "early")
    bench = bench_named(user, "early")
    assert user_client.post(f"/delete-devbench/{bench.pk}").json() == {"success": True}
    assert not DevBench.objects.filter(pk=bench.pk).exists()
    assert Job.objects.get().state == "cancelled"


def test_delete_while_creating_is_refused(user_client, user, local_agent):
    create(user_client, "busy")
    bench = bench_named(user, "busy")
    DevBench.objects.filter(pk=bench.pk).update(actual_name="alice_busy")
    Job.objects.update(state="running")
    response = user_client.post(f"/delete-devbench/{bench.pk}")
    assert response.status_code == 409
    assert response.json() == {"error": "DevBench is busy: create is running; cancel it first"}
    assert bench_named(user, "busy").status == "creating"


def test_stop_start_activate_and_check_status(user_client, user, local_agent, run_jobs):
    create(user_client, "cycle")
    run_jobs()
    bench = bench_named(user, "cycle")
    assert user_client.post(f"/stop-devbench/{bench.pk}").json() == {"success": True}
    run_jobs()
    assert user_client.get(f"/check-status/{bench.pk}").json() == {"status": "inactive"}
    assert user_client.post(f"/activate-devbench/{bench.pk}").json() == {"success": True}
    run_jobs()
    assert user_client.get(f"/check-status/{bench.pk}").json() == {"status": "active"}
    user_client.post(f"/stop-devbench/{bench.pk}")
    run_jobs()
    assert user_client.post(f"/start-devbench/{bench.pk}").json() == {"success": True}
    run_jobs()
    bench.refresh_from_db()
    assert bench.status == "active"
    commands = list(Job.objects.filter(bench=bench).order_by("id").values_list("command", "state", "requested_by"))
    assert commands == [
        ("create", "succeeded", user.pk), ("stop", "succeeded", user.pk), ("status", "succeeded", user.pk),
        ("activate", "succeeded", user.pk), ("status", "succeeded", user.pk), ("stop", "succeeded", user.pk),
        ("start", "succeeded", user.pk),
    ]


def test_check_status_of_vm_missing_on_host_is_unknown(user_client, user, local_agent, run_jobs):
    create(user_client, "lost")
    run_jobs()
    bench = bench_named(user, "lost")
    (local_agent.state_dir / "vms" / "alice_lost.json").unlink()
    assert user_client.get(f"/check-status/{bench.pk}").json() == {"status": "unknown"}
    bench.refresh_from_db()
    assert bench.status == "unknown"


def test_second_change_while_one_is_queued_is_409(user_client, user, local_agent, run_jobs):
    create(user_client, "race")
    run_jobs()
    bench = bench_named(user, "race")
    assert user_client.post(f"/stop-devbench/{bench.pk}").status_code == 200
    response = user_client.post(f"/activate-devbench/{bench.pk}")
    assert response.status_code == 409
    assert response.json() == {"error": "DevBench is busy: stop is queued"}
    assert user_client.post(f"/delete-devbench/{bench.pk}").status_code == 409


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/delete-devbench/{}"), ("post", "/activate-devbench/{}"), ("post", "/start-devbench/{}"),
     ("post", "/stop-devbench/{}"), ("get", "/check-status/{}")],
)
def test_another_users_bench_is_404(make_user, local_agent, method, path):
    owner = make_user("owner")
    bench = build_active_bench(owner, "mine")
    intruder = Client()
    intruder.force_login(make_user("intruder"))
    response = getattr(intruder, method)(path.format(bench.pk))
    assert response.status_code == 404
    assert response.json() == {"error": "DevBench not found"}
    bench.refresh_from_db()
    assert bench.status == "active"
    assert Job.objects.filter(bench=bench).count() == 1


def test_another_users_job_cannot_be_cancelled(make_user, local_agent):
    owner = make_user("owner")
    services.create_bench(user=owner, name="mine")
    job = Job.objects.get()
    intruder = Client()
    intruder.force_login(make_user("intruder"))
    assert intruder.post(f"/cancel-job/{job.pk}").status_code == 404
    job.refresh_from_db()
    assert job.state == "queued"


@pytest.mark.parametrize("path", ["/delete-devbench/{}", "/activate-devbench/{}", "/create-devbench"])
def test_bench_routes_need_csrf_with_a_session(user, local_agent, csrf_client, path):
    bench = build_active_bench(user, "guarded")
    csrf_client.force_login(user)
    response = csrf_client.post(path.format(bench.pk), data='{"name": "other"}', content_type="application/json")
    assert response.status_code == 403
    assert Job.objects.count() == 1
    assert DevBench.objects.count() == 1


def test_bench_routes_with_bearer_key_skip_csrf(user, local_agent):
    _key, raw = services_key(user)
    client = Client(enforce_csrf_checks=True)
    response = create(client, "viakey", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200


def services_key(user):
    from accounts.services import create_api_key

    return create_api_key(user=user)


def test_anonymous_is_sent_to_login(local_agent):
    response = Client().post("/create-devbench", {"name": "x"})
    assert response.status_code == 302
    assert response["Location"] == "/login"


def test_wrong_methods_are_405(user_client):
    assert user_client.get("/create-devbench").status_code == 405
    assert user_client.get("/delete-devbench/1").status_code == 405
    assert user_client.post("/check-status/1").status_code == 405


def test_dashboard_lists_benches_without_n_plus_one(user_client, user, local_agent, run_jobs,
                                                    django_assert_max_num_queries, settings):
    settings.DEVBENCH_DEFAULT_QUOTA = 20
    for index in range(8):
        services.create_bench(user=user, name=f"vm{index}")
    run_jobs()
    with django_assert_max_num_queries(6):
        response = user_client.get("/dashboard")
    page = response.content.decode()
    assert page.count('class="card bench-card"') == 9  # eight benches and the template
    assert "ssh -p 6000 alice@127.0.0.1" in page


def test_help_page_and_ssh_config_download(user_client, user, local_agent, run_jobs):
    services.create_bench(user=user, name="helpme")
    run_jobs()
    bench = bench_named(user, "helpme")
    bench.host.jump_host = "jump@gateway.example.com"
    bench.host.save()
    block = (
        f"# DevBench helpme (VNC: 127.0.0.1:{bench.vnc_info})\n"
        "Host devbench-helpme\n"
        "    HostName 127.0.0.1\n"
        f"    Port {bench.ssh_info}\n"
        "    User alice\n"
        "    ProxyJump jump@gateway.example.com\n"
    )
    page = user_client.get("/help").content.decode()
    assert "Host devbench-helpme" in page and "ProxyJump jump@gateway.example.com" in page
    download = user_client.get("/help/ssh-config")
    assert download["Content-Disposition"] == 'attachment; filename="devbench_ssh_config"'
    assert block in download.content.decode()


def test_admin_delete_user_deletes_benches_through_remote_delete(admin_client_, make_user, local_agent, run_jobs):
    carol = make_user("carol")
    services.create_bench(user=carol, name="one")
    run_jobs()
    response = admin_client_.post(f"/admin/delete-user/{carol.pk}")
    assert response.json() == {"success": True}
    carol.refresh_from_db()
    assert not carol.is_active and carol.deletion_requested_at is not None
    assert DevBench.objects.get(user=carol).status == "deleting"
    # The account cannot sign in meanwhile.
    assert Client().post("/login", {"username": "carol", "password": "Sturdy-Passw0rd!"}).status_code == 200
    run_jobs()
    assert not User.objects.filter(pk=carol.pk).exists()
    assert not DevBench.objects.filter(user_id=carol.pk).exists()


def test_admin_delete_user_keeps_user_while_remote_delete_fails(admin_client_, make_user, local_agent, run_jobs):
    carol = make_user("carol")
    services.create_bench(user=carol, name="one")
    run_jobs()
    local_agent.configure(fail_commands=["delete"])
    admin_client_.post(f"/admin/delete-user/{carol.pk}")
    run_jobs()
    assert User.objects.filter(pk=carol.pk, is_active=False).exists()
    assert DevBench.objects.get(user=carol).status == "error"

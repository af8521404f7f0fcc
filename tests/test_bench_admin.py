"""Hosts, benches and jobs in the admin panel, and host choice and connection reuse."""

from __future__ import annotations

import pytest

from benches import services
from benches.models import DevBench, Host, Job
from benches.provisioning import host_keys, transport
from devbench_site.errors import Unavailable

pytestmark = pytest.mark.django_db  # transactional where jobs run (``run_jobs`` asks for it)


def test_admin_lists_hosts_benches_and_jobs_with_their_log(admin_client_, user, local_agent, run_jobs):
    bench = services.create_bench(user=user, name="shown")
    [job] = run_jobs()
    assert "local" in admin_client_.get("/admin/benches/host/").content.decode()
    assert "alice_shown" in admin_client_.get("/admin/benches/devbench/").content.decode()
    page = admin_client_.get(f"/admin/benches/job/{job.pk}/change/").content.decode()
    assert "VM alice_shown Created and Ready" in page
    assert admin_client_.get(f"/admin/benches/devbench/{bench.pk}/change/").status_code == 200


def test_admin_actions_check_status_and_delete_through_services(admin_client_, admin_user, user, local_agent,
                                                                run_jobs):
    bench = services.create_bench(user=user, name="managed")
    run_jobs()
    response = admin_client_.post("/admin/benches/devbench/",
                                  {"action": "check_status", "_selected_action": [bench.pk]}, follow=True)
    assert "Status of alice_managed: active" in response.content.decode()
    status_job = Job.objects.filter(bench=bench, command="status").get()
    assert status_job.requested_by == admin_user
    admin_client_.post("/admin/benches/devbench/", {"action": "delete_benches", "_selected_action": [bench.pk]})
    bench.refresh_from_db()
    assert bench.status == "deleting"
    run_jobs()
    assert not DevBench.objects.filter(pk=bench.pk).exists()


def test_admin_stores_a_pasted_private_key_encrypted(admin_client_, sshd_host):
    key_text = sshd_host.client_key_path.read_text()
    response = admin_client_.post("/admin/benches/host/add/", {
        "name": "pasted", "kind": "ssh", "address": "127.0.0.1", "port": sshd_host.port, "username": "root",
        "identity_file": "", "private_key": key_text, "script_path": "/opt/agent", "public_host": "",
        "jump_host": "", "capacity": 3, "enabled": "on", "host_key": "", "command_timeout": 600,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    host = Host.objects.get(name="pasted")
    assert host.private_key_encrypted and "PRIVATE KEY" not in host.private_key_encrypted
    assert host_keys.load_private_key(host).get_base64() in sshd_host.client_key_path.with_suffix(".pub").read_text()
    page = admin_client_.get(f"/admin/benches/host/{host.pk}/change/").content.decode()
    assert key_text.splitlines()[1] not in page


def test_new_benches_go_to_the_host_with_most_free_capacity(ssh_agent, user, make_user, settings):
    settings.DEVBENCH_DEFAULT_QUOTA = 10
    ssh_agent("small", capacity=2)
    ssh_agent("big", capacity=3)
    placed = [services.create_bench(user=user, name=f"p{index}").host.name for index in range(5)]
    # big (3 free) first, then ties go by name: big, big/small alternate as free space evens out.
    assert placed == ["big", "big", "small", "big", "small"]
    with pytest.raises(Unavailable):
        services.create_bench(user=user, name="p5")
    assert DevBench.objects.count() == 5


def test_connection_to_a_host_is_reused_across_jobs(ssh_agent, user, sshd_host, run_jobs):
    transport.close_all()
    ssh_agent("hv1")
    before = sshd_host.log_path.read_text().count("Accepted publickey")
    for index in range(3):
        services.create_bench(user=user, name=f"r{index}")
    run_jobs()
    bench = DevBench.objects.get(name="r0")
    services.check_status(bench=bench, actor=user)
    assert sshd_host.log_path.read_text().count("Accepted publickey") - before == 1
    transport.close_all()

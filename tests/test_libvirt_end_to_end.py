"""A bench's whole life on real QEMU, through DevBench's own routes: a user picks an image and a
plan, DevBench reaches the host over the real sshd, the agent's libvirt backend makes the VM, and
the user signs in to it with their own key. Nothing of DevBench is patched; jobs run through the
Celery task function as a worker runs them."""

from __future__ import annotations

import os
import stat

import paramiko
import pytest

from accounts import services as account_services
from benches import services
from benches.models import DevBench, Image, Job, JobChunk, Plan, Snapshot
from benches.provisioning.host_keys import decrypt_private_key
from benches.vm_images import tiny as tiny_image
from tests.agent_fixtures import make_keypair
from tests.api_helpers import bearer_client, post_json
from tests.libvirt_fixtures import BOOT_TIMEOUT, URI, domains, qemu_processes, remove_domain, ssh_run, vnc_banner

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("libvirt")]


@pytest.fixture
def libvirt_bench_host(ssh_agent, libvirt_host, disk_dir, fresh_ssh_connections):
    """An SSH host on the real sshd whose agent runs the libvirt backend, its connection tested
    (so DevBench knows its capabilities), with the tiny image and a small plan offered."""
    host, control = ssh_agent("kvm1")
    control.configure(
        backend="libvirt", libvirt_uri=URI, images_dir=libvirt_host.images_dir, disk_dir=disk_dir,
        default_image=tiny_image.IMAGE_ID, accel="tcg", ssh_port_base=47000, vnc_port_base=47500,
        boot_timeout=BOOT_TIMEOUT, stop_timeout=30, output_format="machine",
    )  # fmt: skip
    check = services.check_host_connection(host=host)
    assert check.ok, check.error
    assert (check.backend, sorted(check.capabilities)) == (
        "libvirt", ["images", "list", "plans", "snapshots", "ssh-keys"])
    image = Image.objects.create(name="Tiny Linux", image_id=tiny_image.IMAGE_ID, is_default=True)
    image.hosts.add(host)
    Plan.objects.create(name="Mini", vcpus=1, memory_mib=256, disk_gib=1, is_default=True)
    host.refresh_from_db()
    return host


@pytest.fixture
def bench_name():
    return f"e2e-{os.getpid() % 10000}"


@pytest.fixture
def cleanup_vm(user, bench_name):
    yield
    name = f"{user.username}_{bench_name}"
    if name in domains():
        remove_domain(name)


def test_a_bench_on_real_qemu_from_create_to_nothing_left(
    user, user_client, libvirt_bench_host, disk_dir, tmp_path, run_jobs, bench_name, cleanup_vm
):
    private_key, public_key = make_keypair(tmp_path, "alice_key", comment="alice@laptop")
    account_services.add_ssh_key(user=user, public_key=public_key)
    api = bearer_client(user)

    created = post_json(user_client, "/create-devbench", {"name": bench_name, "image": "Tiny Linux", "plan": "Mini"},
                        HTTP_X_CSRFTOKEN="unused")  # the test client does not enforce CSRF
    assert created.status_code == 200, created.json()
    bench_id = created.json()["devbenchId"]
    [create_job] = run_jobs()
    assert create_job.state == "succeeded", (create_job.error, _log(create_job))
    bench = DevBench.objects.get(pk=bench_id)
    vm_name = bench.actual_name
    assert (bench.status, vm_name) == ("active", f"alice_{bench_name}")
    assert (bench.ssh_info, bench.vnc_info) == ("47000", "47500")
    log = _log(create_job)
    assert "PROGRESS=" in log and "SSH_PORT=47000" in log  # stored as it streamed, with its progress
    assert vm_name in domains()

    # The owner signs in with their own key, as the user the card's SSH command names.
    ssh_port, vnc_port = int(bench.ssh_info), int(bench.vnc_info)
    facts = ssh_run(ssh_port, private_key, "alice", "id -un; nproc; cat .ssh/authorized_keys")
    assert facts.splitlines() == ["alice", "1", public_key, bench.public_key]
    # DevBench's own key for the bench (the browser terminal's way in) works too.
    bench_key = tmp_path / "bench_key"
    bench_key.write_text(decrypt_private_key(bench.private_key_encrypted))
    bench_key.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert ssh_run(ssh_port, bench_key, "alice", "id -un") == "alice\n"
    stranger, _ = make_keypair(tmp_path, "stranger")
    with pytest.raises(paramiko.AuthenticationException):
        ssh_run(ssh_port, stranger, "alice", "true")
    assert vnc_banner(vnc_port).startswith(b"RFB 003.00")

    assert api.post(f"/api/v1/benches/{bench_id}/stop/").status_code == 202
    [stop_job] = run_jobs()
    assert stop_job.state == "succeeded", _log(stop_job)
    assert api.get(f"/api/v1/benches/{bench_id}/").json()["status"] == "inactive"
    assert qemu_processes(vm_name) == []
    assert user_client.post(f"/start-devbench/{bench_id}").json() == {"success": True}
    [start_job] = run_jobs()
    assert start_job.state == "succeeded", _log(start_job)
    assert api.get(f"/api/v1/benches/{bench_id}/").json()["status"] == "active"

    ssh_run(ssh_port, private_key, "alice", "echo first > ~/note.txt && sync")
    assert post_json(api, f"/api/v1/benches/{bench_id}/snapshots/", {"name": "clean"}).status_code == 202
    [snapshot_job] = run_jobs()
    assert snapshot_job.state == "succeeded", _log(snapshot_job)
    assert list(Snapshot.objects.filter(bench_id=bench_id).values_list("name", flat=True)) == ["clean"]
    ssh_run(ssh_port, private_key, "alice", "echo second > ~/note.txt && sync")

    assert api.post(f"/api/v1/benches/{bench_id}/snapshots/clean/restore/").status_code == 202
    [restore_job] = run_jobs()
    assert restore_job.state == "succeeded", _log(restore_job)
    assert api.get(f"/api/v1/benches/{bench_id}/").json()["status"] == "inactive"
    api.post(f"/api/v1/benches/{bench_id}/start/")
    run_jobs()
    assert ssh_run(ssh_port, private_key, "alice", "cat ~/note.txt") == "first\n"

    assert user_client.post(f"/delete-devbench/{bench_id}").json() == {"success": True}
    [delete_job] = run_jobs()
    assert delete_job.state == "succeeded", _log(delete_job)
    assert not DevBench.objects.filter(pk=bench_id).exists()
    assert vm_name not in domains()
    assert sorted(path.name for path in disk_dir.iterdir()) == []
    assert qemu_processes(vm_name) == []
    commands = list(Job.objects.filter(original_bench_id=bench_id).order_by("pk").values_list(
        "command", "state", "exit_code", "requested_by__username"))
    assert commands == [
        ("create", "succeeded", 0, "alice"), ("stop", "succeeded", 0, "alice"), ("start", "succeeded", 0, "alice"),
        ("snapshot", "succeeded", 0, "alice"), ("restore", "succeeded", 0, "alice"),
        ("start", "succeeded", 0, "alice"), ("delete", "succeeded", 0, "alice"),
    ]


def _log(job: Job) -> str:
    return "".join(JobChunk.objects.filter(job=job).order_by("seq").values_list("data", flat=True))

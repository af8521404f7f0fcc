"""The built-in ``local`` host: created once, after migrations, not on each create; on libvirt when
the machine has QEMU, libvirtd and an image (``manage.py build_vm_image``), else simulated."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.sql import emit_post_migrate_signal

from accounts import services as account_services
from benches import services
from benches.models import DevBench, Host, Image
from benches.services import local_host
from tests.agent_fixtures import make_keypair
from tests.libvirt_fixtures import domains, qemu_processes, remove_domain, ssh_run


def test_the_migrated_database_has_the_local_host(db):
    host = Host.objects.get(name="local")
    assert host.kind == Host.Kind.LOCAL and host.enabled


@pytest.mark.django_db(transaction=True)
def test_a_flushed_database_has_the_local_host_again():
    # pytest-django flushes after each transactional test; Django's flush sends post_migrate.
    assert Host.objects.filter(name="local", kind=Host.Kind.LOCAL).exists()


def test_migrating_creates_no_local_host_when_turned_off(db, settings):
    Host.objects.filter(name="local").delete()
    settings.DEVBENCH_LOCAL_HOST = False
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert not Host.objects.filter(name="local").exists()
    settings.DEVBENCH_LOCAL_HOST = True
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert Host.objects.filter(name="local").exists()


def test_creating_a_bench_does_not_recreate_a_deleted_local_host(user_client, settings, tmp_path):
    settings.DEVBENCH_LOCAL_AGENT_CONFIG = tmp_path / "local-agent.conf"
    Host.objects.filter(name="local").delete()
    response = user_client.post("/create-devbench", data=json.dumps({"name": "vm"}), content_type="application/json")
    assert (response.status_code, response.json()) == (
        503, {"error": "No host has free capacity for a new DevBench; ask an admin"},
    )
    assert not Host.objects.exists() and not DevBench.objects.exists()


@pytest.fixture
def local_settings(settings, tmp_path):
    """The local host's files in this test's own place, its backend chosen as on a fresh install."""
    settings.DEVBENCH_LOCAL_HOST = True
    settings.DEVBENCH_LOCAL_BACKEND = "auto"
    settings.VAR_DIR = tmp_path / "var"
    settings.DEVBENCH_LOCAL_AGENT_CONFIG = tmp_path / "var" / "local-agent.conf"
    settings.DEVBENCH_LOCAL_IMAGES_DIR = tmp_path / "images"
    return settings


def test_without_an_image_the_local_host_simulates_and_its_config_says_why_not(db, local_settings):
    if not all(shutil.which(tool) for tool in local_host.LIBVIRT_TOOLS):
        pytest.skip("without QEMU's tools the reason is their absence (the next test)")
    host = services.ensure_local_host()

    assert (host.backend, services.local_backend().name) == ("simulated", "simulated")
    images = local_settings.DEVBENCH_LOCAL_IMAGES_DIR
    assert services.local_backend().reason == f"no image in {images} (`manage.py build_vm_image` builds one)"
    config = local_settings.DEVBENCH_LOCAL_AGENT_CONFIG.read_text().splitlines()
    assert config[0] == local_host.CONFIG_MARKER
    assert config[1:3] == ["BACKEND=simulated", f"STATE_DIR={local_settings.VAR_DIR / 'local-vms'}"]
    assert not Image.objects.exists()


def test_a_machine_without_qemu_simulates_whatever_images_it_has(db, local_settings, monkeypatch, tmp_path):
    images = local_settings.DEVBENCH_LOCAL_IMAGES_DIR
    images.mkdir()
    (images / "tiny.qcow2").write_bytes(b"")
    (images / ".tiny.qcow2.partial").write_bytes(b"")  # a copy in progress is no image
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    backend = services.choose_local_backend()

    assert (backend.name, backend.reason) == (
        "simulated", "virsh, qemu-img, qemu-system-x86_64 not found "
        "(apt-get install qemu-system-x86 qemu-utils libvirt-clients)",
    )
    assert local_host.local_images() == ["tiny"]


def test_an_operators_own_agent_config_is_left_as_it_is(db, local_settings):
    config = local_settings.DEVBENCH_LOCAL_AGENT_CONFIG
    config.parent.mkdir(parents=True)
    config.write_text("BACKEND=simulated\nSTEP_DELAY=0\n")

    services.ensure_local_host()

    assert config.read_text() == "BACKEND=simulated\nSTEP_DELAY=0\n"


def test_an_explicit_simulated_backend_is_kept_with_images_present(db, local_settings):
    local_settings.DEVBENCH_LOCAL_BACKEND = "simulated"
    local_settings.DEVBENCH_LOCAL_IMAGES_DIR.mkdir()
    (local_settings.DEVBENCH_LOCAL_IMAGES_DIR / "tiny.qcow2").write_bytes(b"")

    assert services.ensure_local_host().backend == "simulated"
    assert services.local_backend().reason == "DEVBENCH_LOCAL_BACKEND is simulated"


@pytest.mark.slow
@pytest.mark.xdist_group("libvirt")
def test_build_vm_image_makes_the_local_host_create_real_vms(
    user, user_client, local_settings, libvirt_host, disk_dir, tmp_path, run_jobs
):
    images = Path(tempfile.mkdtemp(prefix="devbench-local-images-", dir="/var/tmp"))
    local_settings.DEVBENCH_LOCAL_IMAGES_DIR = images
    local_settings.DEVBENCH_LOCAL_DISK_DIR = disk_dir
    local_settings.DEVBENCH_LOCAL_ACCEL = "tcg"  # /dev/kvm answers here but cannot run guests
    bench_name = f"local-{os.getpid() % 10000}"
    vm_name = f"{user.username}_{bench_name}"
    try:
        output = io.StringIO()
        call_command("build_vm_image", stdout=output)

        assert sorted(path.name for path in images.iterdir()) == [
            "tiny.cmdline", "tiny.initrd", "tiny.qcow2", "tiny.vmlinuz"]
        assert {stat.S_IMODE(path.stat().st_mode) for path in images.iterdir()} == {0o644}
        assert "The local host's backend: libvirt (QEMU, libvirtd and 1 image(s) found)." in output.getvalue()
        host = Host.objects.get(name="local")
        assert (host.backend, sorted(host.capabilities)) == (
            "libvirt", ["images", "list", "plans", "snapshots", "ssh-keys"])
        image = Image.objects.get(image_id="tiny")
        assert (image.name, list(image.hosts.all())) == ("Tiny Linux", [host])

        private_key, public_key = make_keypair(tmp_path, "alice_key")
        account_services.add_ssh_key(user=user, public_key=public_key)
        created = user_client.post(
            "/create-devbench", data=json.dumps({"name": bench_name, "image": "Tiny Linux"}),
            content_type="application/json",
        )
        assert created.status_code == 200, created.json()
        [create_job] = run_jobs()
        bench = DevBench.objects.get(pk=created.json()["devbenchId"])
        assert (create_job.state, bench.status, bench.host.name) == ("succeeded", "active", "local"), create_job.error
        assert vm_name in domains()
        assert ssh_run(int(bench.ssh_info), private_key, "alice", "id -un") == "alice\n"

        assert user_client.post(f"/delete-devbench/{bench.pk}").json() == {"success": True}
        [delete_job] = run_jobs()
        assert delete_job.state == "succeeded"
        assert vm_name not in domains()
        assert list(disk_dir.iterdir()) == []
        assert qemu_processes(vm_name) == []
    finally:
        if vm_name in domains():
            remove_domain(vm_name)
        shutil.rmtree(images, ignore_errors=True)

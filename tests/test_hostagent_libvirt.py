"""The agent's libvirt backend on real QEMU (TCG) and a real libvirtd: through the agent's CLI, as
DevBench runs it, with the tiny image of benches/vm_images/tiny.py (the daemons and helpers:
tests/libvirt_fixtures.py)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from benches.vm_images import tiny as tiny_image
from tests.agent_fixtures import HUMAN_SSH, HUMAN_VNC, b64, make_keypair, search
from tests.libvirt_fixtures import BOOT_TIMEOUT, assert_nothing_left, domains, qemu_processes, ssh_run, vnc_banner

# One test worker runs them all (make test's --dist loadgroup): one libvirtd, one image build.
# Each test has its own VM name, and its domains are destroyed and undefined after it whatever
# happened, so that a failed test never leaves a VM that trips the next one.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("libvirt")]


@pytest.fixture
def keypair(tmp_path):
    return make_keypair(tmp_path, "alice_key", comment="alice@laptop")


# --------------------------------------------------------------------------- the whole life of a VM


def test_a_vm_lives_and_dies_on_real_qemu(libvirt_agent, keypair, disk_dir, tmp_path, vm_name):
    private, public = keypair
    agent = libvirt_agent()
    name = vm_name

    started = time.monotonic()
    created = agent.run(
        "create", name, "--vcpus", "2", "--memory", "320", "--disk", "2", "--user", "alice",
        "--ssh-key", b64(public), timeout=BOOT_TIMEOUT + 60,
    )  # fmt: skip
    boot_seconds = time.monotonic() - started
    assert created.returncode == 0, created.stdout + created.stderr
    ssh_port, vnc_port = int(search(HUMAN_SSH, created.stdout)), int(search(HUMAN_VNC, created.stdout))
    # The first free ports of the configured ranges (another session's VM may hold the first).
    assert (ssh_port // 100, vnc_port // 100) == (460, 465)
    print(f"create → SSH answers: {boot_seconds:.1f}s")

    facts = ssh_run(ssh_port, private, "alice", "id -un; hostname; nproc; cat /sys/block/vda/size .ssh/authorized_keys")
    assert facts.splitlines() == ["alice", name.lower().replace("_", "-"), "2", str(2 * 1024**3 // 512), public]
    stranger, _ = make_keypair(tmp_path, "stranger")
    with pytest.raises(paramiko.AuthenticationException):
        ssh_run(ssh_port, stranger, "alice", "true")
    assert vnc_banner(vnc_port).startswith(b"RFB 003.00")
    ssh_run(ssh_port, private, "alice", "echo first > ~/note.txt && sync")

    stopped = agent.run("stop", name, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1] == "Status: poweroff"
    assert "powering off" not in stopped.stdout, "the guest shut down on the ACPI power button"
    assert agent.status(name) == "poweroff"
    assert qemu_processes(name) == []

    restarted = agent.run("start", name, timeout=BOOT_TIMEOUT + 60)
    assert restarted.returncode == 0, restarted.stderr
    assert search(HUMAN_SSH, restarted.stdout) == str(ssh_port)
    assert ssh_run(ssh_port, private, "alice", "cat ~/note.txt") == "first\n"

    snapshot = agent.run("snapshot", name, "clean", timeout=300)
    assert snapshot.returncode == 0, snapshot.stderr
    listed = agent.run("snapshots", name)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["SNAPSHOT=clean"]
    ssh_run(ssh_port, private, "alice", "echo second > ~/note.txt && sync")

    restored = agent.run("restore", name, "clean", timeout=300)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.splitlines()[-1] == "Status: poweroff"
    assert agent.status(name) == "poweroff"
    assert agent.run("start", name, timeout=BOOT_TIMEOUT + 60).returncode == 0
    assert ssh_run(ssh_port, private, "alice", "cat ~/note.txt") == "first\n"

    deleted = agent.run("delete", name, timeout=120)
    assert deleted.returncode == 0, deleted.stderr
    assert_nothing_left(agent, name, disk_dir)


# --------------------------------------------------------------------------- faults


def test_an_image_the_host_lacks_fails_clearly_and_leaves_nothing(libvirt_agent, disk_dir, vm_name):
    agent = libvirt_agent()

    result = agent.run("create", vm_name, "--image", "debian-13")

    assert result.returncode == 1
    assert result.stderr == "ERROR: image debian-13 not found on this host (images: tiny)\n"
    assert_nothing_left(agent, vm_name, disk_dir)


def test_virsh_failing_mid_create_leaves_nothing_half_made(libvirt_agent, disk_dir, tmp_path, vm_name):
    wrapper = tmp_path / "virsh"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do [ "$arg" = start ] && { echo "error: Failed to start domain (test)" >&2; exit 1; }; done\n'
        f'exec {shutil.which("virsh")} "$@"\n'
    )
    wrapper.chmod(0o755)
    agent = libvirt_agent(virsh=wrapper)

    result = agent.run("create", vm_name, timeout=120)

    assert result.returncode == 1
    assert "ERROR: virsh start failed (exit 1): error: Failed to start domain (test)" in result.stderr
    assert f"Rolling back the partial VM {vm_name}" in result.stderr
    assert_nothing_left(agent, vm_name, disk_dir)


@pytest.fixture
def small_disk_dir(disk_dir):
    """mount(size) → disk_dir, now a tmpfs of that size: a host whose disk space has run out."""
    mounted = []

    def mount(size: str) -> Path:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0711", "tmpfs", str(disk_dir)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small file system here: {result.stderr.strip()}")
        mounted.append(disk_dir)
        return disk_dir

    yield mount
    for directory in mounted:
        subprocess.run(["umount", str(directory)], check=True)


# 64 KiB: not even the overlay's tables fit; 256 KiB: the overlay does, the seed ISO does not.
@pytest.mark.parametrize("size", ["64k", "256k"])
def test_a_full_disk_fails_clearly_and_leaves_nothing(libvirt_agent, small_disk_dir, vm_name, size):
    disk_dir = small_disk_dir(size)
    agent = libvirt_agent(disk_dir=disk_dir)

    result = agent.run("create", vm_name, timeout=120)

    assert result.returncode == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert error.startswith(f"ERROR: the disk directory {disk_dir} is full: no room for VM {vm_name}'s disk and seed (")
    assert "No space left on device" in error, error
    assert f"Rolling back the partial VM {vm_name}" in result.stderr
    assert_nothing_left(agent, vm_name, disk_dir)
    assert shutil.disk_usage(disk_dir).used == 0


def test_a_vnc_port_libvirt_gave_another_domain_is_passed_over(libvirt_agent, disk_dir, vm_name):
    # A domain of another agent shows its display on another address: the port looks free to a
    # bind on this agent's address, but libvirt reserves VNC ports per number, whatever the address.
    bases = {"ssh_port_base": 47000, "vnc_port_base": 47500, "boot_timeout": 0}
    other = libvirt_agent(vnc_address="127.0.0.2", **bases)
    other_name = f"{vm_name}-other"
    assert other.run("create", other_name, timeout=120).returncode == 0
    assert other.record(other_name)["vnc_port"] == 47500
    agent = libvirt_agent(**bases)

    result = agent.run("create", vm_name, timeout=120)

    assert result.returncode == 0, result.stderr
    assert "Port 47500 was taken meanwhile; choosing other ports\n" in result.stderr
    ssh_port, vnc_port = int(search(HUMAN_SSH, result.stdout)), int(search(HUMAN_VNC, result.stdout))
    assert (ssh_port, vnc_port) == (47001, 47501)  # 47000 is the other VM's SSH forward
    assert (agent.record(vm_name)["ssh_port"], agent.record(vm_name)["vnc_port"]) == (47001, 47501)
    assert vnc_banner(vnc_port).startswith(b"RFB 003.")
    assert agent.run("delete", vm_name, timeout=120).returncode == 0
    assert other.run("delete", other_name, timeout=120).returncode == 0
    assert_nothing_left(agent, vm_name, disk_dir)


def test_a_vm_that_does_not_answer_in_time_is_an_error_and_is_removed(libvirt_agent, disk_dir, vm_name):
    agent = libvirt_agent(boot_timeout=2)

    result = agent.run("create", vm_name, timeout=120)

    assert result.returncode == 1
    # Another test's VM on the same libvirt may hold the first port of the range.
    assert re.search(rf"ERROR: VM {vm_name} did not answer on SSH port 460\d\d within 2s", result.stderr), result.stderr
    assert_nothing_left(agent, vm_name, disk_dir)


def test_sigterm_while_booting_rolls_the_vm_back(libvirt_agent, disk_dir, vm_name):
    agent = libvirt_agent()
    process = agent.popen("create", vm_name)
    while "Waiting for the VM's SSH server" not in process.stdout.readline():
        assert process.poll() is None, process.stderr.read()
    assert vm_name in domains()

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 143, stderr
    assert_nothing_left(agent, vm_name, disk_dir)


def test_stop_powers_off_a_guest_that_ignores_acpi(libvirt_agent, vm_name):
    agent = libvirt_agent(boot_timeout=0, stop_timeout=1)
    assert agent.run("create", vm_name, timeout=120).returncode == 0

    stopped = agent.run("stop", vm_name, timeout=120)  # the kernel is still booting: no ACPI yet

    assert stopped.returncode == 0, stopped.stderr
    assert "did not shut down within 1s; powering off" in stopped.stdout
    assert agent.status(vm_name) == "poweroff"
    assert qemu_processes(vm_name) == []


def test_a_half_made_vm_is_cleaned_by_the_next_delete(libvirt_agent, disk_dir, vm_name):
    agent = libvirt_agent(boot_timeout=0)
    assert agent.run("create", vm_name, timeout=120).returncode == 0
    record = agent.record(vm_name)
    record.update(state="creating", pid=999999999)  # its creator was SIGKILLed
    (agent.state_dir / "vms" / f"{vm_name}.json").write_text(json.dumps(record))

    assert agent.status(vm_name) == "running"
    assert agent.run("delete", vm_name, timeout=120).returncode == 0
    assert_nothing_left(agent, vm_name, disk_dir)


# --------------------------------------------------------------------------- the host


def test_images_and_capabilities(libvirt_agent, libvirt_host):
    agent = libvirt_agent()

    images = agent.run("images")
    capabilities = agent.run("capabilities")

    size = tiny_image.HOME_DISK_MIB * 1024 * 1024
    assert (images.returncode, images.stdout) == (0, f"IMAGE=tiny SIZE={size}\n")
    assert capabilities.stdout == "CAPABILITIES=list images plans ssh-keys snapshots\nBACKEND=libvirt\n"


def test_doctor_on_a_host_with_everything(libvirt_agent):
    result = libvirt_agent().run("doctor", timeout=60)

    assert result.returncode == 0, result.stdout
    assert "images: tiny" in result.stdout
    assert result.stdout.splitlines()[-1] == "All good: this host can run DevBench VMs with the libvirt backend."

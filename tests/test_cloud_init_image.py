"""Real cloud-init on a real Debian guest: the agent's NoCloud seed, read by cloud-init itself (not
the tiny image's shell imitation), makes the user and the keys DevBench gave, and nothing else, what
lets SSH in. The Debian 12 image of benches/vm_images/debian.py under QEMU (TCG) and a real
libvirtd (the daemons and helpers: tests/libvirt_fixtures.py)."""

from __future__ import annotations

import time

import paramiko
import pytest

from benches.vm_images import debian as debian_image
from tests.agent_fixtures import HUMAN_SSH, b64, make_keypair, search
from tests.libvirt_fixtures import assert_nothing_left, ssh_run

# With the other real-QEMU tests, on one test worker (make test's --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("libvirt")]

# A whole Debian boot under software emulation, cloud-init's four stages in Python included.
CLOUD_INIT_BOOT_TIMEOUT = 600
# The first run on a machine also builds the image (debootstrap) in the session fixture.
TEST_TIMEOUT = 2400
SSH_PORT_BASE, VNC_PORT_BASE = 48000, 48500


def ssh_once_up(port: int, key, user: str, command: str, within: float = 120) -> str:
    """ssh_run, tried again while sshd is between a stop and a start: cloud-init restarts it once it
    has turned password logins off. A refused key is no such moment and fails at once."""
    deadline = time.monotonic() + within
    while True:
        try:
            return ssh_run(port, key, user, command)
        except paramiko.AuthenticationException:
            raise
        except (paramiko.SSHException, EOFError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def wait_for_cloud_init(port: int, key, user: str, within: float) -> str:
    """`cloud-init status` once cloud-init has finished all its stages."""
    deadline = time.monotonic() + within
    while True:
        status = ssh_once_up(port, key, user, "cloud-init status --long || true")
        first_line = status.partition("\n")[0]
        finished = "running" not in first_line and "not started" not in first_line
        if finished or time.monotonic() > deadline:
            return status
        time.sleep(5)


def offered_auth_methods(port: int, user: str) -> list[str]:
    """What the server lets `user` sign in with, as `ssh` shows it in "Permission denied (…)"."""
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.start_client(timeout=60)
        try:
            transport.auth_none(user)
        except paramiko.BadAuthenticationType as exc:
            return sorted(exc.allowed_types)
        return ["none"]
    finally:
        transport.close()


def password_login(port: int, user: str, password: str) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 (a fresh VM's key)
    try:
        client.connect(
            "127.0.0.1", port=port, username=user, password=password, look_for_keys=False, allow_agent=False,
            timeout=20, banner_timeout=60, auth_timeout=30,
        )  # fmt: skip
    finally:
        client.close()


@pytest.mark.timeout(TEST_TIMEOUT)
def test_cloud_init_lets_in_exactly_the_user_and_keys_it_was_given(
    libvirt_agent, debian_images_dir, disk_dir, tmp_path, vm_name
):
    laptop, laptop_public = make_keypair(tmp_path, "laptop", comment="alice@laptop")
    desktop, desktop_public = make_keypair(tmp_path, "desktop", comment="alice@desktop")
    stranger, _ = make_keypair(tmp_path, "stranger", comment="mallory@elsewhere")
    agent = libvirt_agent(
        images_dir=debian_images_dir, default_image=debian_image.IMAGE_ID, boot_timeout=CLOUD_INIT_BOOT_TIMEOUT,
        ssh_port_base=SSH_PORT_BASE, vnc_port_base=VNC_PORT_BASE,
    )  # fmt: skip
    name = vm_name

    started = time.monotonic()
    created = agent.run(
        "create", name, "--vcpus", "2", "--memory", "1024", "--disk", "2", "--user", "alice",
        "--ssh-key", b64(laptop_public), "--ssh-key", b64(desktop_public), timeout=CLOUD_INIT_BOOT_TIMEOUT + 120,
    )  # fmt: skip
    boot_seconds = time.monotonic() - started
    assert created.returncode == 0, created.stdout + created.stderr
    ssh_port = int(search(HUMAN_SSH, created.stdout))
    assert SSH_PORT_BASE <= ssh_port < VNC_PORT_BASE

    # The first key works as soon as sshd answers: cloud-init makes the user before sshd starts.
    facts = ssh_once_up(ssh_port, laptop, "alice", "id -un; hostname")
    assert facts.splitlines() == ["alice", name.lower().replace("_", "-")]
    status = wait_for_cloud_init(ssh_port, laptop, "alice", within=CLOUD_INIT_BOOT_TIMEOUT)
    if "done" not in status.split()[:2]:
        problems = "sudo -n grep -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log | tail -20"
        status += ssh_run(ssh_port, laptop, "alice", problems)
    done_seconds = time.monotonic() - started
    print(f"create → SSH answers: {boot_seconds:.1f}s; → cloud-init done: {done_seconds:.1f}s")
    assert status.split()[:2] == ["status:", "done"], status
    assert ssh_run(ssh_port, laptop, "alice", "test -f /var/lib/cloud/instance/boot-finished && echo yes") == "yes\n"

    assert ssh_run(ssh_port, desktop, "alice", "id -un") == "alice\n"
    with pytest.raises(paramiko.AuthenticationException):
        ssh_run(ssh_port, stranger, "alice", "true")
    assert offered_auth_methods(ssh_port, "alice") == ["publickey"]
    with pytest.raises(paramiko.AuthenticationException):
        password_login(ssh_port, "alice", "alice")
    authorized = ssh_run(ssh_port, laptop, "alice", "cat ~/.ssh/authorized_keys")
    # Exactly the two keys given (cloud-init writes them in an order of its own).
    assert sorted(line for line in authorized.splitlines() if line.strip()) == sorted([laptop_public, desktop_public])
    assert ssh_run(ssh_port, laptop, "alice", "sudo -n id -un") == "root\n"  # the seed's passwordless sudo

    deleted = agent.run("delete", name, timeout=120)
    assert deleted.returncode == 0, deleted.stderr
    assert_nothing_left(agent, name, disk_dir)

"""Real QEMU (TCG) under a real libvirtd, for the tests that boot VMs: the daemons (started here
as root when they are not running), the tiny image (benches/vm_images/tiny.py, built once per machine),
the Debian 12 image with cloud-init, a disk directory QEMU may read, a VM name per test, an agent
on the libvirt backend that deletes its VMs afterwards, and what a test checks a VM by (SSH, the
VNC banner, the domain list, QEMU processes, nothing left after a delete). Skipped with the
reason when this machine lacks QEMU or libvirt, unless DEVBENCH_REQUIRE_QEMU=1 (CI), which makes
that a failure."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from benches.vm_images import debian as debian_image
from benches.vm_images import tiny as tiny_image

URI = "qemu:///system"
QEMU_PACKAGES = "qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients genisoimage"
HOST_TOOLS = ("virsh", "qemu-img", "qemu-system-x86_64", "libvirtd", "virtlogd", "genisoimage")
BOOT_TIMEOUT = 240


def _require(reason: str) -> None:
    if os.environ.get("DEVBENCH_REQUIRE_QEMU") == "1":
        pytest.fail(f"DEVBENCH_REQUIRE_QEMU=1 but {reason}")
    pytest.skip(reason)


def virsh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["virsh", "-q", "-c", URI, *args], capture_output=True, text=True, timeout=60, check=False)


def _start_daemon(program: str, pid_file: Path) -> None:
    """``program -d``; another session starting it at the same moment is no failure."""
    subprocess.run([program, "-d"], check=False, timeout=30, capture_output=True)
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip().isdigit():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{program} -d wrote no {pid_file}")


@dataclass
class LibvirtHost:
    images_dir: Path


def libvirt_problem() -> str | None:
    """What this machine lacks to boot test VMs, in plain words, or None."""
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None] + tiny_image.missing_tools()
    if missing:
        return f"QEMU/libvirt tests need {', '.join(missing)} (apt-get install {QEMU_PACKAGES})"
    if virsh("version").returncode != 0 and os.geteuid() != 0:
        return f"libvirtd is not running at {URI} and only root can start it here"
    return None


def start_libvirt_daemons() -> None:
    """virtlogd and libvirtd, started (as root, without systemd) when libvirt does not answer. They
    are left running, as the services they are: a test session or benchmark that stopped them
    would pull them from under another one running at the same time."""
    if virsh("version").returncode == 0:
        return
    _start_daemon("virtlogd", Path("/run/virtlogd.pid"))
    _start_daemon("libvirtd", Path("/run/libvirtd.pid"))
    for _ in range(100):
        if virsh("version").returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"libvirtd started but {URI} does not answer: {virsh('version').stderr}")


@pytest.fixture(scope="session")
def libvirt_host():
    """libvirtd and virtlogd (started here, as root, when they are not running) and the tiny image
    (built once per machine)."""
    problem = libvirt_problem()
    if problem:
        _require(problem)
    try:
        start_libvirt_daemons()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    return LibvirtHost(images_dir=tiny_image.image_dir())


@pytest.fixture(scope="session")
def debian_images_dir(libvirt_host) -> Path:
    """The images directory of the Debian 12 image with real cloud-init (benches/vm_images/debian.py):
    built once per machine, in minutes, as root."""
    missing = debian_image.missing_tools()
    if missing:
        _require(f"the {debian_image.IMAGE_ID} image needs {', '.join(missing)} to be built")
    if os.geteuid() != 0 and debian_image.cached_dir() is None:
        _require(f"the {debian_image.IMAGE_ID} image is not built yet and only root can build it")
    return debian_image.image_dir()


@pytest.fixture
def disk_dir():
    """Where the VMs' disks go: outside pytest's private tmp (0700), since QEMU runs as libvirt-qemu."""
    directory = Path(tempfile.mkdtemp(prefix="devbench-agent-test-", dir="/var/tmp"))
    directory.chmod(0o711)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


_names = itertools.count(1)


@pytest.fixture
def vm_name(request) -> str:
    """A VM name of this test's own: ``alice_<test>-<n>``."""
    test = re.sub(r"[^A-Za-z0-9]", "", request.node.name.removeprefix("test_"))[:30]
    return f"alice_{test}-{os.getpid() % 10000}-{next(_names)}"


def remove_domain(name: str) -> None:
    """Whatever the agent left of VM ``name`` in libvirt: the domain, its snapshots' metadata."""
    virsh("destroy", name)
    for snapshot in virsh("snapshot-list", name, "--name").stdout.split():
        virsh("snapshot-delete", name, snapshot, "--metadata")
    virsh("undefine", name, "--nvram")
    virsh("undefine", name)


def ssh_run(port: int, key: Path, user: str, command: str) -> str:
    client = paramiko.SSHClient()
    # The VM's host key is made on its first boot; there is nothing to pin it against.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507
    client.connect(
        "127.0.0.1", port=port, username=user, key_filename=str(key), look_for_keys=False, allow_agent=False,
        timeout=20, banner_timeout=60, auth_timeout=30,
    )  # fmt: skip
    try:
        _stdin, stdout, stderr = client.exec_command(command, timeout=60)
        output = stdout.read().decode()
        assert stdout.channel.recv_exit_status() == 0, stderr.read().decode()
        return output
    finally:
        client.close()


def vnc_banner(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.settimeout(10)
        return connection.recv(12)


def qemu_processes(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(arg.startswith(f"guest={name},".encode()) or arg == f"guest={name}".encode() for arg in cmdline):
                found.append(int(entry.name))
    return found


def domains() -> list[str]:
    result = virsh("list", "--all", "--name")
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.fixture
def libvirt_agent(make_agent, libvirt_host, disk_dir, vm_name):
    """make(**config) → an Agent on the libvirt backend; every VM it made is deleted afterwards,
    through the agent and then, for whatever a failure left, through virsh."""
    agents = []

    def make(**config):
        settings = {
            "backend": "libvirt",
            "libvirt_uri": URI,
            "images_dir": libvirt_host.images_dir,
            "disk_dir": disk_dir,
            "default_image": tiny_image.IMAGE_ID,
            "accel": "tcg",
            "ssh_port_base": 46000,
            "vnc_port_base": 46500,
            "boot_timeout": BOOT_TIMEOUT,
            "stop_timeout": 30,
            "default_memory": 256,
            "default_vcpus": 1,
            "default_disk": 1,
        }
        agent = make_agent(**{**settings, **config})
        agents.append(agent)
        return agent

    yield make
    names = {vm_name}
    for agent in agents:
        for record in (agent.state_dir / "vms").glob("*.json"):
            names.add(record.stem)
            agent.run("delete", record.stem, timeout=120)
    for name in names:
        if name in domains():
            remove_domain(name)


def assert_nothing_left(agent, name: str, disk_dir: Path) -> None:
    assert name not in domains()
    assert sorted(path.name for path in disk_dir.iterdir()) == []
    assert agent.record(name) is None
    assert qemu_processes(name) == []
    assert agent.status(name) == "notfound"

"""7. Time to ready on real QEMU: from ``POST /create-devbench`` to the first successful SSH
command inside the VM, on a libvirt host (the agent's libvirt backend over a real sshd).

Floor, in alternation with DevBench: the same image booted directly by ``qemu-system-x86_64``
(the same overlay, cloud-init seed, kernel, memory, network and display) until the same SSH
command succeeds. Two images of the same system, one with 1 GiB of data and one with 10 GiB: a
bench's disk is a qcow2 overlay on its image, so its create should not depend on the image's size.
Software emulation (TCG) here; a host with KVM boots faster, which makes DevBench's share larger.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paramiko

from .data import api_keys_for, make_users, register_sshd_host
from .env import Environment
from .measure import median
from .stack import Stack
from .wsclient import post_json

NAME = "time_to_ready"
TITLE = "Time to ready on real QEMU (POST to first SSH command vs bare qemu-system)"
GIB = 1024**3
SSH_DEADLINE = 300
FLOOR_SSH_PORT, FLOOR_VNC_DISPLAY = 49000, 49500 - 5900


def _agent_module():
    """The bundled agent as a module, for the seed it writes (the floor boots with the same one)."""
    from benches.services.local_host import local_agent_script

    loader = importlib.machinery.SourceFileLoader("devbench_agent_bench", local_agent_script())
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    sys.modules[loader.name] = module  # its dataclasses look their module up there
    loader.exec_module(module)
    return module


def _sized_images(tiny_dir: Path, target: Path, sizes: dict[str, int]) -> None:
    """``<id>.qcow2`` for each id: the tiny image with ``size`` bytes of data written after its own
    (which keeps to its first 64 MiB), and its kernel, initrd and command line."""
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    for image_id, size in sizes.items():
        disk = target / f"{image_id}.qcow2"
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(tiny_dir / "tiny.qcow2"), str(disk)], check=True)
        subprocess.run(["qemu-img", "resize", "-q", str(disk), str(size)], check=True)
        writes = []  # qemu-io takes at most 2 GiB a request
        for offset in range(64 * 1024**2, size, GIB):
            writes += ["-c", f"write -P 0x5a {offset} {min(GIB, size - offset)}"]
        subprocess.run(["qemu-io", "-f", "qcow2", *writes, str(disk)], check=True, capture_output=True)
        for suffix in (".vmlinuz", ".initrd", ".cmdline"):
            shutil.copyfile(tiny_dir / f"tiny{suffix}", target / f"{image_id}{suffix}")
        for path in target.glob(f"{image_id}.*"):
            path.chmod(0o644)


def _ssh_ready(port: int, key: Path, user: str, deadline: float) -> float:
    """The time at which ``true`` first ran over SSH on ``port``."""
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # every try before the VM's sshd is up fails
    while time.monotonic() < deadline:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - a new VM's key
        try:
            client.connect("127.0.0.1", port=port, username=user, key_filename=str(key), look_for_keys=False,
                           allow_agent=False, timeout=5, banner_timeout=10, auth_timeout=10)
            _stdin, stdout, _stderr = client.exec_command("true", timeout=10)
            if stdout.channel.recv_exit_status() == 0:
                return time.monotonic()
        except (OSError, paramiko.SSHException, EOFError):
            pass
        finally:
            client.close()
        time.sleep(0.1)
    raise RuntimeError(f"no SSH on port {port} within {SSH_DEADLINE}s")


def _floor_boot(agent, images: Path, image_id: str, work: Path, key: Path, public_key: str, user: str) -> float:
    """Seconds from nothing to the first SSH command: overlay, seed, qemu-system, boot."""
    started = time.monotonic()
    overlay, seed_dir, seed = work / "floor.qcow2", work / "seed", work / "seed.iso"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(images / f"{image_id}.qcow2"),
                    str(overlay), str(11 * GIB)], check=True)
    seed_dir.mkdir(exist_ok=True)
    spec = {"user": user, "ssh_keys": [public_key]}
    for name, text in agent.cloud_init_seed("floor_vm", spec, f"floor-{time.time_ns()}").items():
        (seed_dir / name).write_text(text)
    subprocess.run(["genisoimage", "-quiet", "-volid", "cidata", "-joliet", "-rock", "-output", str(seed),
                    str(seed_dir / "user-data"), str(seed_dir / "meta-data")], check=True)
    cmdline = " ".join((images / f"{image_id}.cmdline").read_text().split())
    qemu = subprocess.Popen([
        "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "256", "-smp", "1", "-nodefaults",
        "-kernel", str(images / f"{image_id}.vmlinuz"), "-initrd", str(images / f"{image_id}.initrd"),
        "-append", cmdline, "-drive", f"file={overlay},if=virtio,format=qcow2",
        "-drive", f"file={seed},if=virtio,format=raw,readonly=on", "-serial", "null", "-vga", "std",
        "-vnc", f"127.0.0.1:{FLOOR_VNC_DISPLAY}",
        "-netdev", f"user,id=n0,hostname=floor-vm,hostfwd=tcp:127.0.0.1:{FLOOR_SSH_PORT}-:22",
        "-device", "virtio-net-pci,netdev=n0",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        ready = _ssh_ready(FLOOR_SSH_PORT, key, user, started + SSH_DEADLINE)
    finally:
        qemu.kill()
        qemu.wait()
        for path in (overlay, seed):
            path.unlink(missing_ok=True)
    return ready - started


def _devbench_boot(stack: Stack, api_key: str, name: str, image: str, key: Path, user: str) -> tuple[float, float]:
    """(seconds from the POST to the first SSH command, seconds of the delete until the row is gone)."""
    from benches.models import DevBench

    started, posted_at = time.monotonic(), time.time()
    status, body = post_json(stack.base_url + "/create-devbench", {"name": name, "image": image, "plan": "Bench"},
                             api_key)
    if status != 200:
        raise RuntimeError(f"create-devbench answered {status}: {body}")
    bench_id = body["devbenchId"]
    port = None
    while port is None:
        bench = DevBench.objects.filter(pk=bench_id).values("ssh_info", "status", "last_error").first()
        if bench["status"] == "error":
            raise RuntimeError(f"create failed: {bench['last_error']}")
        port = int(bench["ssh_info"]) if bench["ssh_info"] else None
        if time.monotonic() - started > SSH_DEADLINE:
            raise RuntimeError("the create recorded no SSH port")
        if port is None:
            time.sleep(0.05)
    ready = _ssh_ready(port, key, user, started + SSH_DEADLINE)
    phases = _create_phases(bench_id, posted_at)
    phases["first_ssh_command"] = ready - started
    deleting = time.monotonic()
    status, body = post_json(stack.base_url + f"/delete-devbench/{bench_id}", {}, api_key)
    if status != 200:
        raise RuntimeError(f"delete-devbench answered {status}: {body}")
    while DevBench.objects.filter(pk=bench_id).exists():
        if time.monotonic() - deleting > 120:
            raise RuntimeError("the delete did not finish in 120 s")
        time.sleep(0.1)
    return ready - started, time.monotonic() - deleting, phases


# Where the create's time goes: each phase's end, in seconds after the POST, from the times the
# job's output was stored (the agent's own lines) and the job's start and end.
PHASE_LINES = {"vm_starting": "Starting VM", "ssh_answered": "SSH answered"}


def _create_phases(bench_id: int, posted_at: float) -> dict[str, float]:
    from benches.models import Job

    job = Job.objects.filter(bench_id=bench_id, command="create").order_by("-id").first()
    phases = {"job_started": job.started_at.timestamp() - posted_at}
    for phase, text in PHASE_LINES.items():
        chunk = job.chunks.filter(data__contains=text).order_by("seq").first()
        if chunk is not None:
            phases[phase] = chunk.created_at.timestamp() - posted_at
    if job.finished_at is not None:
        phases["job_finished"] = job.finished_at.timestamp() - posted_at
    return phases


def run(environment: Environment, *, quick: bool = False, rounds: int | None = None) -> dict:
    from accounts.services import add_ssh_key
    from benches import services
    from benches.models import Image, Plan
    from benches.ssh_config import vm_username
    from benches.vm_images import tiny as tiny_image
    from tests.agent_fixtures import make_keypair
    from tests.libvirt_fixtures import libvirt_problem, start_libvirt_daemons
    from tests.sshd import make_agent_script, start_sshd

    problem = libvirt_problem()
    if problem:
        return {"name": NAME, "title": TITLE, "error": problem, "rows": []}
    rounds = rounds or (1 if quick else 3)
    sizes = {"tiny1g": GIB} if quick else {"tiny1g": GIB, "tiny10g": 10 * GIB}
    environment.reset_state()
    tmp = environment.tmp / NAME
    tmp.mkdir(parents=True, exist_ok=True)
    # QEMU runs as libvirt-qemu: the images and disks live outside the private temp dir.
    work = Path(tempfile.mkdtemp(prefix="devbench-ttr-", dir="/var/tmp"))
    work.chmod(0o711)
    start_libvirt_daemons()
    sshd = start_sshd(tmp / "sshd")
    stack = None
    samples: list[dict] = []
    try:
        images, disks = work / "images", work / "disks"
        disks.mkdir()
        disks.chmod(0o711)
        image_build = time.monotonic()
        _sized_images(tiny_image.image_dir(), images, sizes)
        image_build = time.monotonic() - image_build
        script = make_agent_script(
            tmp, script_name="agent", backend="libvirt", libvirt_uri="qemu:///system", images_dir=images,
            disk_dir=disks, default_image="tiny1g", accel="tcg", ssh_port_base=48800, vnc_port_base=48900,
            boot_timeout=SSH_DEADLINE, stop_timeout=10, output_format="machine",
        )  # fmt: skip
        host = register_sshd_host("kvmhost", sshd, script)
        check = services.check_host_connection(host=host)
        if not check.ok:
            raise RuntimeError(f"the libvirt host's connection test failed: {check.error}")
        for image_id in sizes:
            Image.objects.create(name=image_id, image_id=image_id, is_default=image_id == "tiny1g").hosts.add(host)
        Plan.objects.create(name="Bench", vcpus=1, memory_mib=256, disk_gib=11, is_default=True)
        [user] = make_users("ttr", 1)
        private_key, public_key = make_keypair(tmp, "user_key", comment="bench@devbench")
        add_ssh_key(user=user, public_key=public_key)
        api_key = api_keys_for([user])[user.pk]
        login = vm_username(user)
        agent = _agent_module()
        stack = Stack(environment).start()
        for round_index in range(rounds + 1):  # round 0 warms the worker's SSH connection and the caches
            for image_id in sizes:
                floor = _floor_boot(agent, images, image_id, work, private_key, public_key, login)
                devbench, delete, phases = _devbench_boot(stack, api_key, f"r{round_index}{image_id}", image_id,
                                                          private_key, login)
                samples.append({"round": round_index, "image": image_id, "floor_s": floor, "devbench_s": devbench,
                                "delete_s": delete, "phases_s": phases})
        usage = stack.usage()
        leftovers = sorted(path.name for path in disks.iterdir())
    finally:
        if stack is not None:
            stack.stop()
        sshd.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    result_images = {}
    for image_id in sizes:
        measured = [s for s in samples if s["image"] == image_id and s["round"] > 0]
        dev, floor = median([s["devbench_s"] for s in measured]), median([s["floor_s"] for s in measured])
        added = (dev - floor) / floor * 100
        result_images[image_id] = {"devbench_s": dev, "floor_s": floor, "added_percent": added}
        for phase in ("job_started", *PHASE_LINES, "job_finished"):
            ends = [s["phases_s"][phase] for s in measured if phase in s["phases_s"]]
            if ends:
                rows.append((f"{image_id}: POST to {phase.replace('_', ' ')}, median s", round(median(ends), 2), "",
                             None))
        rows += [
            (f"{image_id}: POST to first SSH command, median s", round(dev, 2), "", None),
            (f"{image_id}: bare qemu-system to first SSH command, median s", round(floor, 2), "", None),
            (f"{image_id}: DevBench adds %", round(added, 1), "<= 10", added <= 10),
        ]
    if "tiny10g" in result_images:
        ratio = result_images["tiny10g"]["devbench_s"] / result_images["tiny1g"]["devbench_s"]
        rows.append(("10 GiB image / 1 GiB image, DevBench", round(ratio, 2), "<= 1.1", ratio <= 1.1))
    rows.append(("delete: POST to row gone, median s", round(median([s["delete_s"] for s in samples]), 2), "", None))
    rows.append(("disks left on the host after every delete", len(leftovers), "0", not leftovers))
    return {
        "name": NAME,
        "title": TITLE,
        "config": {"rounds": rounds, "accel": "tcg", "memory_mib": 256, "vcpus": 1, "images": sizes,
                   "image_build_s": round(image_build, 1)},
        "samples": samples,
        "images": result_images,
        "processes": usage,
        "rows": rows,
    }

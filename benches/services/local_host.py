"""The built-in ``local`` host: the bundled agent on DevBench's own machine. It makes real VMs with
the agent's libvirt backend when the machine has QEMU, a libvirtd that answers and at least one
image (``manage.py build_vm_image`` builds one), and simulates them (JSON files) otherwise; the
host's ``backend`` says which, and so do its benches' cards."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from .. import vm_images
from ..models import IMAGE_ID_PATTERN, Host, Image
from ..provisioning.transport import transport_for
from .hosts import refresh_host_capabilities

logger = logging.getLogger(__name__)

# The first line of an agent configuration DevBench wrote, and so may write again when what the
# machine has changes; an operator who edits the file removes it to keep their edits.
CONFIG_MARKER = "# Written by DevBench, which rewrites it while this line is here: remove the line to keep your edits."
LIBVIRT_TOOLS = ("virsh", "qemu-img", "qemu-system-x86_64")
LIBVIRT_URI = "qemu:///system"
IMAGE_FILE_RE = re.compile(IMAGE_ID_PATTERN.removeprefix(r"\A").removesuffix(r"\Z") + r"\.qcow2")


@dataclass(frozen=True)
class LocalBackend:
    """The agent backend the local host runs, why, and the images it has (libvirt only)."""

    name: str
    reason: str
    images: tuple[str, ...] = ()


def local_agent_script() -> str:
    return str(Path(settings.BASE_DIR) / "hostagent" / "devbench-agent")


def local_images() -> list[str]:
    """The ids of the images in DEVBENCH_LOCAL_IMAGES_DIR (``<id>.qcow2``), sorted."""
    try:
        names = [path.name for path in Path(settings.DEVBENCH_LOCAL_IMAGES_DIR).iterdir()]
    except OSError:
        return []
    return sorted(name.removesuffix(".qcow2") for name in names if IMAGE_FILE_RE.fullmatch(name))


def _libvirt_problem(images: list[str]) -> str | None:
    """What keeps this machine from running the libvirt backend, in plain words, or None."""
    missing = [tool for tool in LIBVIRT_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found (apt-get install qemu-system-x86 qemu-utils libvirt-clients)"
    if not images:
        return f"no image in {settings.DEVBENCH_LOCAL_IMAGES_DIR} (`manage.py build_vm_image` builds one)"
    try:
        subprocess.run(
            ["virsh", "-q", "-c", LIBVIRT_URI, "version"], capture_output=True, timeout=15, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return f"libvirtd does not answer at {LIBVIRT_URI}"
    return None


def choose_local_backend() -> LocalBackend:
    """libvirt or simulated, by DEVBENCH_LOCAL_BACKEND: ``auto`` takes libvirt when the machine
    can run it; ``libvirt`` takes it regardless (its jobs then say what is missing)."""
    wanted = settings.DEVBENCH_LOCAL_BACKEND
    if wanted == "simulated":
        return LocalBackend("simulated", "DEVBENCH_LOCAL_BACKEND is simulated")
    images = local_images()
    problem = _libvirt_problem(images)
    if problem is None:
        return LocalBackend("libvirt", f"QEMU, libvirtd and {len(images)} image(s) found", tuple(images))
    if wanted == "libvirt":
        logger.warning("DEVBENCH_LOCAL_BACKEND is libvirt, but %s", problem)
        return LocalBackend("libvirt", problem, tuple(images))
    return LocalBackend("simulated", problem)


def local_agent_config(backend: LocalBackend) -> str:
    """The bundled agent's configuration for ``backend``."""
    lines = [CONFIG_MARKER, f"BACKEND={backend.name}", f"STATE_DIR={Path(settings.VAR_DIR) / 'local-vms'}"]
    if backend.name == "simulated":
        lines += ["OUTPUT_FORMAT=human", f"STEP_DELAY={settings.DEVBENCH_LOCAL_STEP_DELAY}"]
    else:
        # QEMU runs as libvirt's own user: images and disks live outside VAR_DIR, which only
        # DevBench's user may enter.
        default_image = "tiny" if "tiny" in backend.images else (backend.images or ("tiny",))[0]
        lines += [
            "OUTPUT_FORMAT=machine",
            f"LIBVIRT_URI={LIBVIRT_URI}",
            f"IMAGES_DIR={settings.DEVBENCH_LOCAL_IMAGES_DIR}",
            f"DISK_DIR={settings.DEVBENCH_LOCAL_DISK_DIR}",
            f"DEFAULT_IMAGE={default_image}",
            f"ACCEL={settings.DEVBENCH_LOCAL_ACCEL}",
        ]
    return "\n".join(lines) + "\n"


def _write_agent_config(config: Path, backend: LocalBackend) -> None:
    """Write the configuration unless the operator keeps one of their own (no marker line)."""
    try:
        current = config.read_text()
    except FileNotFoundError:
        current = None
    if current is not None and not current.startswith(CONFIG_MARKER):
        return
    wanted = local_agent_config(backend)
    if current != wanted:
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(wanted)
        logger.info("local host: %s backend (%s)", backend.name, backend.reason)


# What the machine offers, decided once per process and settings: the suite's database flushes
# create the local host again and again.
_backends: dict[tuple, LocalBackend] = {}


def local_backend() -> LocalBackend:
    key = (settings.DEVBENCH_LOCAL_BACKEND, str(settings.DEVBENCH_LOCAL_IMAGES_DIR), tuple(local_images()))
    if key not in _backends:
        _backends[key] = choose_local_backend()
    return _backends[key]


def ensure_local_host() -> Host | None:
    """The built-in ``local`` host with its agent configured for what the machine has, unless
    DEVBENCH_LOCAL_HOST turns it off; on libvirt, its images offered to users."""
    if not settings.DEVBENCH_LOCAL_HOST:
        return None
    config = Path(settings.DEVBENCH_LOCAL_AGENT_CONFIG)
    backend = local_backend()
    _write_agent_config(config, backend)
    host, _created = Host.objects.get_or_create(
        name="local",
        defaults={
            "kind": Host.Kind.LOCAL,
            "script_path": local_agent_script(),
            "public_host": "127.0.0.1",
            "capacity": settings.DEVBENCH_LOCAL_HOST_CAPACITY,
        },
    )
    _learn_local_capabilities(host, config)
    if host.backend == "libvirt":
        _offer_local_images(host, backend.images)
    return host


def _offer_local_images(host: Host, image_ids: tuple[str, ...]) -> None:
    """Each local image as an Image of the local host (one an admin made for it is reused)."""
    for image_id in image_ids:
        image = Image.objects.filter(image_id=image_id).order_by("pk").first()
        if image is None:
            name = vm_images.IMAGE_NAMES.get(image_id, image_id)
            if Image.objects.filter(name=name).exists():
                name = image_id
            image = Image.objects.create(name=name, image_id=image_id, description="On DevBench's own machine")
        image.hosts.add(host)


# What the bundled agent answered to ``capabilities``, per script and configuration.
_local_capabilities: dict[tuple[str, str], tuple[list[str], str]] = {}


def _learn_local_capabilities(host: Host, config: Path) -> None:
    """The local host's capabilities (images, plans, keys, snapshots), asked of its agent once per
    configuration, so that its benches get them without an admin testing its connection."""
    key = (host.script_path, config.read_text() if config.exists() else "")
    known = _local_capabilities.get(key)
    if known is None:
        known = _local_capabilities[key] = refresh_host_capabilities(host=host, transport=transport_for(host))
    elif known != (host.capabilities, host.backend):
        Host.objects.filter(pk=host.pk).update(capabilities=known[0], backend=known[1], updated_at=timezone.now())
        host.capabilities, host.backend = known

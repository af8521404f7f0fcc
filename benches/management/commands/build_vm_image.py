"""Build a small VM image from Debian's packages and put it where the local host's agent finds it,
so that DevBench's own machine makes real VMs (with QEMU and libvirtd installed).

``python manage.py build_vm_image [IMAGE] [--images-dir DIR]``
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from benches import services, vm_images
from benches.vm_images import building


class Command(BaseCommand):
    help = "Build a small VM image from Debian's packages for the local host (a try-out of real VMs)."

    def add_arguments(self, parser):
        parser.add_argument("image", nargs="?", default="tiny", choices=sorted(vm_images.BUILDERS),
                            help="Which image (default: tiny).")  # fmt: skip
        parser.add_argument("--images-dir", type=Path, default=None,
                            help="Where to put it (default: DEVBENCH_LOCAL_IMAGES_DIR).")  # fmt: skip

    def handle(self, *args, image: str, images_dir: Path | None, **options):
        builder = importlib.import_module(vm_images.BUILDERS[image])
        missing = builder.missing_tools()
        if missing:
            raise CommandError(f"Building the {image} image needs: {', '.join(missing)}")
        target = images_dir or Path(settings.DEVBENCH_LOCAL_IMAGES_DIR)
        self.stdout.write(f"Building the {image} image (once per machine; cached under {building.CACHE_ROOT})...")
        try:
            built = builder.image_dir()
            copied = install_image(built, image, target)
        except OSError as exc:
            raise CommandError(f"Cannot put the image in {target}: {exc.strerror or exc}") from None
        except RuntimeError as exc:  # the builder's own account of a failed step
            raise CommandError(f"Building the {image} image failed: {exc}") from None
        for path in copied:
            self.stdout.write(f"  {path}")
        if images_dir is None or images_dir.resolve() == Path(settings.DEVBENCH_LOCAL_IMAGES_DIR).resolve():
            host = services.ensure_local_host()
            if host is not None:
                backend = services.local_backend()
                self.stdout.write(f"The local host's backend: {host.backend or backend.name} ({backend.reason}).")
        else:
            self.stdout.write(f"Give a host's agent IMAGES_DIR={target} to offer it there.")


def install_image(built: Path, image_id: str, target: Path) -> list[Path]:
    """Copy the image's files (``<id>.qcow2`` and its kernel, initrd, command line) into ``target``,
    readable by QEMU's user; the disk last, since its presence is what makes the image count."""
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o755)  # noqa: S103 - QEMU runs as libvirt's user and must reach the images
    files = sorted(built.glob(f"{image_id}.*"), key=lambda path: path.suffix == ".qcow2")
    copied = []
    for source in files:
        destination = target / source.name
        partial = target / f".{source.name}.partial"
        shutil.copyfile(source, partial)
        os.chmod(partial, 0o644)
        os.replace(partial, destination)
        copied.append(destination)
    return copied

"""What every image builder shares: its build tools, running a build step, and the cache that
makes a machine build an image once (``CACHE_ROOT/<hash of the builder and of this module>/``)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ROOT = Path(os.environ.get("DEVBENCH_TEST_IMAGE_CACHE", "/var/cache/devbench/test-images"))


def missing_tools(build_tools: dict[str, str]) -> list[str]:
    """`program (package)` for each of `build_tools` (program → Debian package) this machine lacks."""
    return [f"{tool} ({package})" for tool, package in build_tools.items() if shutil.which(tool) is None]


def run(*argv: str, cwd: Path | None = None, env: dict | None = None) -> str:
    """A build step's standard output; its failure a RuntimeError with what the step said."""
    result = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip())[-1500:]
        raise RuntimeError(f"{' '.join(argv)} failed (exit {result.returncode}): {detail}")
    return result.stdout


def module_name(path: str) -> str:
    """`kernel/fs/ext4/ext4.ko.xz` → `ext4`, as modprobe spells module names."""
    return Path(path).name.split(".ko")[0].replace("-", "_")


def _target(builder_file: str) -> Path:
    digest = hashlib.sha256(Path(builder_file).read_bytes() + Path(__file__).read_bytes()).hexdigest()[:16]
    return CACHE_ROOT / digest


def cached_dir(builder_file: str, image_id: str) -> Path | None:
    """The image's directory if this machine has built it, else None."""
    target = _target(builder_file)
    return target if (target / f"{image_id}.qcow2").exists() else None


def cached_image_dir(builder_file: str, image_id: str, build: Callable[[Path], Path]) -> Path:
    """The image's directory, made by `build(work directory)` if this machine has not built it yet;
    the disk (``<id>.qcow2``) is there only once the whole image is."""
    target = _target(builder_file)
    if (target / f"{image_id}.qcow2").exists():
        return target
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    CACHE_ROOT.chmod(0o755)
    # A lock per image: a quick image's build need not wait for a long one's.
    with open(CACHE_ROOT / f".{image_id}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be building the same image
        if not (target / f"{image_id}.qcow2").exists():
            with tempfile.TemporaryDirectory(dir=CACHE_ROOT, prefix=f".build-{image_id}-") as work:
                built = build(Path(work))
                built.chmod(0o755)
                built.rename(target)
    return target


def main(image_dir: Callable[[], Path]) -> None:
    """A builder run as a program: build (if needed) and print the directory (an agent's IMAGES_DIR)."""
    with contextlib.suppress(BrokenPipeError):
        print(image_dir())
    sys.exit(0)

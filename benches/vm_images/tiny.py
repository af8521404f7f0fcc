"""The tiny VM image, for a local try-out of the libvirt backend and for the tests that boot VMs:
Debian's cloud kernel, and busybox and dropbear in an initramfs whose init brings up QEMU's
user-mode network, mounts the disk as /home, creates the user and authorized_keys from the NoCloud
seed and starts dropbear on port 22. Built from Debian packages (`apt-get download`, `dpkg-deb -x`;
nothing is installed) and cached outside the clone, in /var/cache/devbench/test-images/<hash of
this file and building.py>/, so a machine builds it once.

`python -m benches.vm_images.tiny` builds it and prints the directory (an agent's IMAGES_DIR).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import stat
import struct
from pathlib import Path

from benches.vm_images import building
from benches.vm_images.building import module_name, run

IMAGE_ID = "tiny"
KERNEL_PACKAGE = "linux-image-cloud-amd64"
# Host programs the build needs, and the Debian package of each.
BUILD_TOOLS = {
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "ldd": "libc-bin",
    "mkfs.ext4": "e2fsprogs",
    "qemu-img": "qemu-utils",
}
# Kernel modules the init loads (with their dependencies), unless the kernel has them built in.
REQUIRED_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "crc32c_generic", "ext4", "isofs"]
OPTIONAL_MODULES = ["button", "evdev"]  # the ACPI power button, so `virsh shutdown` works
HOME_DISK_MIB = 64
CMDLINE = "console=ttyS0 loglevel=4 panic=0"

INIT = r"""#!/bin/sh
# PID 1 of DevBench's tiny test VM.
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
while read -r module; do insmod "/lib/modules/$module.ko" || echo "tiny: cannot load $module"; done < /etc/modules
tries=0
while [ ! -b /dev/vda ] && [ $tries -lt 100 ]; do sleep 0.1; tries=$((tries + 1)); done

ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

# The NoCloud seed (an ISO labelled cidata): the user, its keys, the host name.
user=devbench
name=tiny
for device in /dev/vd[b-z]; do
  if mount -t iso9660 -o ro "$device" /seed 2>/dev/null; then
    [ -f /seed/user-data ] && break
    umount /seed
  fi
done
if [ -f /seed/user-data ]; then
  user=$(sed -n 's/^  - name: "\(.*\)"$/\1/p' /seed/user-data | head -n 1)
  name=$(sed -n 's/^local-hostname: "\(.*\)"$/\1/p' /seed/meta-data)
fi
hostname "$name"

# /home lives on the VM's disk, so it survives a reboot and is what snapshots keep.
mount -t ext4 /dev/vda /home || echo "tiny: cannot mount /dev/vda on /home"
echo "$user:x:1000:1000::/home/$user:/bin/sh" >> /etc/passwd
echo "$user:*:19000:0:99999:7:::" >> /etc/shadow
echo "$user:x:1000:" >> /etc/group
mkdir -p "/home/$user/.ssh"
sed -n 's/^      - "\(.*\)"$/\1/p' /seed/user-data > "/home/$user/.ssh/authorized_keys"
chown -R 1000:1000 "/home/$user"
chmod 700 "/home/$user" "/home/$user/.ssh"
chmod 600 "/home/$user/.ssh/authorized_keys"

# ACPI power button (virsh shutdown): sync, unmount, power off.
for event in /sys/class/input/event*; do
  if [ "$(cat "$event/device/name" 2>/dev/null)" = "Power Button" ]; then
    (dd if="/dev/input/${event##*/}" bs=24 count=1 of=/dev/null 2>/dev/null
     echo "tiny: power button"; sync; umount /home; poweroff -f) &
  fi
done

/usr/sbin/dropbear -R -s -p 22 && echo "tiny: dropbear started for $user"
while :; do sleep 3600; done
"""


def missing_tools() -> list[str]:
    """`program (package)` for each build tool this machine lacks."""
    return building.missing_tools(BUILD_TOOLS)


def image_dir() -> Path:
    """The directory with tiny.qcow2, tiny.vmlinuz, tiny.initrd and tiny.cmdline, built if needed."""
    return building.cached_image_dir(__file__, IMAGE_ID, _build)


def _download(packages: list[str], directory: Path) -> None:
    directory.chmod(0o777)  # apt-get download drops to the _apt user where it can
    run("apt-get", "download", "-q", *packages, cwd=directory)


def _depends(deb: Path) -> list[str]:
    field = run("dpkg-deb", "-f", str(deb), "Depends")
    return [re.split(r"[\s(:]", part.split("|")[0].strip())[0] for part in field.split(",") if part.strip()]


def _fetch_packages(work: Path) -> Path:
    """Download and extract the kernel, busybox-static, dropbear-bin and dropbear's libraries."""
    debs = work / "debs"
    debs.mkdir()
    _download([KERNEL_PACKAGE, "busybox-static", "dropbear-bin"], debs)
    kernel = next(_depends(deb) for deb in debs.glob(f"{KERNEL_PACKAGE}_*.deb"))
    libraries = {dep for deb in debs.glob("dropbear-bin_*.deb") for dep in _depends(deb)} - {"libc6"}
    _download([*kernel, *sorted(libraries)], debs)
    for deb in list(debs.glob("lib*.deb")):  # the libraries' own libraries (libtomcrypt → libtommath…)
        libraries |= set(_depends(deb))
    extra = sorted(libraries - {"libc6", "libgcc-s1"} - {deb.name.split("_")[0] for deb in debs.glob("*.deb")})
    if extra:
        _download(extra, debs)
    root = work / "packages"
    for deb in sorted(debs.glob("*.deb")):
        if not deb.name.startswith("linux-image-"):
            run("dpkg-deb", "-x", str(deb), str(root))
    return root


def _modinfo(module: bytes) -> dict[str, str]:
    """The key=value strings of a kernel module's .modinfo ELF section (the .deb has no modules.dep:
    depmod makes that when a kernel is installed)."""
    (shoff,) = struct.unpack_from("<Q", module, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", module, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", module, shoff + index * shentsize)
        return name, offset, size

    _, names_offset, _ = section(shstrndx)
    for index in range(shnum):
        name, offset, size = section(index)
        if module[names_offset + name : module.index(b"\0", names_offset + name)] == b".modinfo":
            pairs = (item.partition(b"=") for item in module[offset : offset + size].split(b"\0") if item)
            return {key.decode(): value.decode() for key, _, value in pairs}
    return {}


def _modules(kernel_root: Path) -> list[tuple[str, bytes]]:
    """(name, .ko bytes) of the wanted modules and their dependencies, dependencies first."""
    (modules_dir,) = (kernel_root / "lib" / "modules").iterdir()
    files = {path.name.removesuffix(".ko").replace("-", "_"): path for path in modules_dir.rglob("*.ko")}
    builtin = {module_name(line) for line in (modules_dir / "modules.builtin").read_text().splitlines()}
    ordered: dict[str, bytes] = {}

    def add(name: str) -> None:
        if name in ordered or name in builtin:
            return
        data = files[name].read_bytes()
        for dependency in filter(None, _modinfo(data).get("depends", "").split(",")):
            add(dependency.replace("-", "_"))
        ordered[name] = data

    for name in REQUIRED_MODULES + OPTIONAL_MODULES:
        if name in files or name in builtin:
            add(name)
        elif name in REQUIRED_MODULES:
            raise RuntimeError(f"the kernel has no {name} module and does not build it in")
    return list(ordered.items())


def _libraries(binary: Path, root: Path) -> list[Path]:
    """The shared libraries (and the loader) `binary` needs, from the extracted packages or the host."""
    search = [root / "lib/x86_64-linux-gnu", root / "usr/lib/x86_64-linux-gnu"]
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(str(path) for path in search)}
    found = []
    for line in run("ldd", str(binary), env=env).splitlines():
        if "not found" in line:
            raise RuntimeError(f"{binary.name} needs a library no package provided: {line.strip()}")
        match = re.search(r"(/\S+)", line)
        if match:
            found.append(Path(match.group(1)))
    return found


class Cpio:
    """An initramfs: a newc cpio archive, gzip-compressed."""

    def __init__(self):
        self.buffer, self.inode = io.BytesIO(), 1

    def add(self, name: str, mode: int, data: bytes = b"") -> None:
        fields = [self.inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        self.inode += 1
        header = b"070701" + b"".join(b"%08X" % value for value in fields) + name.encode() + b"\0"
        self.buffer.write(header + b"\0" * (-len(header) % 4) + data + b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self.add(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.add(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self.add(name, stat.S_IFLNK | 0o777, target.encode())

    def gzipped(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return gzip.compress(self.buffer.getvalue(), compresslevel=6)


def _initramfs(root: Path, kernel_root: Path) -> bytes:
    archive = Cpio()
    for directory in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "etc/dropbear", "dev", "proc", "sys",
                      "tmp", "run", "var", "home", "seed", "root", "lib", "lib/modules", "lib64",
                      "lib/x86_64-linux-gnu"):  # fmt: skip
        archive.directory(directory)
    archive.symlink("var/run", "/run")
    archive.file("init", INIT.encode(), 0o755)
    archive.file("bin/busybox", (root / "bin/busybox").read_bytes(), 0o755)
    archive.symlink("bin/sh", "busybox")
    dropbear = root / "usr/sbin/dropbear"
    archive.file("usr/sbin/dropbear", dropbear.read_bytes(), 0o755)
    for library in _libraries(dropbear, root):
        place = "lib64" if library.name.startswith("ld-linux") else "lib/x86_64-linux-gnu"
        archive.file(f"{place}/{library.name}", library.resolve().read_bytes(), 0o755)
    modules = _modules(kernel_root)
    for name, data in modules:
        archive.file(f"lib/modules/{name}.ko", data)
    archive.file("etc/modules", "".join(f"{name}\n" for name, _ in modules).encode())
    archive.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    archive.file("etc/shadow", b"root:*:19000:0:99999:7:::\n", 0o600)
    archive.file("etc/group", b"root:x:0:\n")
    archive.file("etc/shells", b"/bin/sh\n")
    return archive.gzipped()


def _build(work: Path) -> Path:
    root = _fetch_packages(work)
    kernel_root = work / "kernel"
    (kernel_deb,) = [deb for deb in (work / "debs").glob("linux-image-*.deb") if "cloud-amd64_" in deb.name
                     and not deb.name.startswith(KERNEL_PACKAGE + "_")]  # fmt: skip
    run("dpkg-deb", "-x", str(kernel_deb), str(kernel_root))
    out = work / "image"
    out.mkdir()
    (vmlinuz,) = (kernel_root / "boot").glob("vmlinuz-*")
    shutil.copyfile(vmlinuz, out / f"{IMAGE_ID}.vmlinuz")
    (out / f"{IMAGE_ID}.initrd").write_bytes(_initramfs(root, kernel_root))
    (out / f"{IMAGE_ID}.cmdline").write_text(CMDLINE + "\n")
    home = work / "home"
    home.mkdir()
    (home / "README").write_text("The persistent /home of DevBench's tiny test VM.\n")
    raw = work / "home.img"
    with open(raw, "wb") as handle:
        handle.truncate(HOME_DISK_MIB * 1024 * 1024)
    run("mkfs.ext4", "-q", "-F", "-L", "home", "-E", "root_owner=0:0", "-d", str(home), str(raw))
    run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(out / f"{IMAGE_ID}.qcow2"))
    for path in out.iterdir():
        path.chmod(0o644)
    return out


if __name__ == "__main__":
    building.main(image_dir)

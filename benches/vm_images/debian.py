"""A small Debian 12 (bookworm) VM image with the real cloud-init and OpenSSH, for the tests that
check what a NoCloud seed does to a real guest: the user, its keys, the host name, no passwords.

debootstrap (minbase, plus systemd, Debian's cloud kernel, openssh-server, cloud-init, ifupdown
and sudo) makes the root file system from Debian's packages, configured for a quick boot under
software emulation (cloud-init looks for NoCloud only, makes only an ed25519 host key, periodic
timers are masked); `mkfs.ext4 -d` turns it into a disk without mounting anything, and the
kernel and initrd are copied out beside it for direct kernel boot. Cached like the tiny image, in
building.CACHE_ROOT/<hash>/, so a machine builds it once. Building needs root (debootstrap
and chroot); it runs in a mount namespace of its own, so no mount it makes outlives it.

`python -m benches.vm_images.debian` builds it and prints the directory (an agent's IMAGES_DIR).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
from pathlib import Path

from benches.vm_images import building

IMAGE_ID = "debian12"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Beyond minbase: an init, the cloud kernel (its initramfs-tools builds the initrd), an SSH
# server, cloud-init and what it uses on Debian to configure the network (ENI + dhclient), udev
# and D-Bus (hostnamectl, which cloud-init sets the host name with), sudo for the seed's user.
# debootstrap does not resolve virtual packages: python3-cffi-backend provides the
# python3-cffi-backend-api-* that python3-cryptography (cloud-init → oauthlib) depends on.
PACKAGES = [
    "systemd-sysv", "udev", "dbus", "linux-image-cloud-amd64", "initramfs-tools", "openssh-server",
    "cloud-init", "ifupdown", "isc-dhcp-client", "iproute2", "netbase", "sudo", "procps",
    "python3-cffi-backend",
]  # fmt: skip
# Host programs the build needs, and the Debian package of each.
BUILD_TOOLS = {
    "debootstrap": "debootstrap",
    "unshare": "util-linux",
    "chroot": "coreutils",
    "mkfs.ext4": "e2fsprogs",
    "qemu-img": "qemu-utils",
}
# The initrd must find the root disk: these modules in it, unless the kernel builds them in.
INITRD_MODULES = ["virtio_pci", "virtio_blk", "ext4"]
# `net.ifnames=0`: the NIC is eth0, whatever PCI slot the agent gives it.
CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 fsck.mode=skip loglevel=4 panic=0"
# Units a throwaway VM has no use for, each of which would spend emulated CPU time at boot or later.
MASKED_UNITS = [
    "apt-daily.timer", "apt-daily-upgrade.timer", "apt-daily.service", "apt-daily-upgrade.service",
    "man-db.timer", "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer", "dpkg-db-backup.timer",
    "systemd-networkd-wait-online.service", "getty@tty1.service",
]  # fmt: skip
CLOUD_CONFIG = """\
# DevBench's test image: the agent's seed is a NoCloud ISO, so no other data source is probed.
datasource_list: [NoCloud, None]
# One host key type: RSA key generation is slow under software emulation.
ssh_genkeytypes: [ed25519]
ssh_deletekeys: true
# minbase has no locales package, so update-locale would fail: the guest keeps C.UTF-8.
locale: false
"""
FSTAB = "/dev/vda / ext4 rw,discard,errors=remount-ro 0 0\n"
HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
# Free space in the file system beyond its content; cloud-init's resizefs grows it to the VM's disk.
HEADROOM = 1.25
SLACK_MIB = 160


def missing_tools() -> list[str]:
    """`program (package)` for each build tool this machine lacks."""
    return building.missing_tools(BUILD_TOOLS)


def cached_dir() -> Path | None:
    """The image's directory if this machine has built it, else None."""
    return building.cached_dir(__file__, IMAGE_ID)


def image_dir() -> Path:
    """The directory with debian12.qcow2, debian12.vmlinuz, debian12.initrd and debian12.cmdline,
    built if needed (which takes minutes and needs root)."""
    cached = cached_dir()
    if cached is not None:
        return cached
    if os.geteuid() != 0:
        raise RuntimeError(f"building the {IMAGE_ID} image needs root (debootstrap, chroot); it is not built yet")
    return building.cached_image_dir(__file__, IMAGE_ID, _build)


def mirror() -> str:
    """The Debian archive to install from: $DEVBENCH_DEBIAN_MIRROR, else the one this machine's apt
    uses for bookworm (a local mirror or proxy, where there is one), else deb.debian.org."""
    if os.environ.get("DEVBENCH_DEBIAN_MIRROR"):
        return os.environ["DEVBENCH_DEBIAN_MIRROR"]
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", Path(path).read_text(errors="replace")):
            fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.MULTILINE))
            if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split():
                return fields.get("URIs", "").split()[0] if fields.get("URIs") else DEFAULT_MIRROR
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        with contextlib.suppress(OSError):
            for line in Path(path).read_text(errors="replace").splitlines():
                match = re.match(rf"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", line)
                if match:
                    return match.group(1)
    return DEFAULT_MIRROR


# debootstrap and the chrooted tools run in a clean environment of their own.
BUILD_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


def _run(*argv: str) -> str:
    return building.run(*argv, env=BUILD_ENV)


def _in_root(root: Path, *argv: str) -> str:
    """`argv` chrooted into `root`, in a mount namespace of its own."""
    return _run("unshare", "--mount", "--propagation", "private", "chroot", str(root), *argv)


def _debootstrap(root: Path) -> None:
    # The private mount namespace takes the /proc, /sys and /dev mounts debootstrap makes in the
    # root with it when it ends, so deleting the build directory never reaches the host's.
    _run(
        "unshare", "--mount", "--propagation", "private",
        "debootstrap", "--variant=minbase", "--components=main", f"--include={','.join(PACKAGES)}",
        SUITE, str(root), mirror(),
    )  # fmt: skip


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a symlink (resolv.conf…) is replaced, not followed out of the root
    path.write_text(text)
    path.chmod(mode)


def _empty(directory: Path) -> None:
    """Remove what `directory` holds, keeping the directory."""
    if directory.is_dir() and not directory.is_symlink():
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _configure(root: Path) -> None:
    """What turns the bootstrapped tree into a cloud image: nothing in it belongs to one machine."""
    _write(root / "etc/cloud/cloud.cfg.d/90_devbench.cfg", CLOUD_CONFIG)
    _write(root / "etc/fstab", FSTAB)
    _write(root / "etc/hostname", "localhost\n")
    _write(root / "etc/hosts", HOSTS)
    _write(root / "etc/resolv.conf", "")  # dhclient writes QEMU's DNS server at boot
    _write(root / "etc/apt/sources.list", f"deb {DEFAULT_MIRROR} {SUITE} main\n")
    _write(root / "etc/network/interfaces", "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n")
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # Each VM makes its own machine id and SSH host keys on its first boot.
    _write(root / "etc/machine-id", "", 0o444)
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
        dbus_id.symlink_to("/etc/machine-id")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    shadow = root / "etc/shadow"
    with_password = [line.split(":")[0] for line in shadow.read_text().splitlines()
                     if line.split(":")[1] not in ("*", "!", "!*", "")]  # fmt: skip
    if with_password:
        raise RuntimeError(f"accounts with a password in the image: {', '.join(with_password)}")
    # Caches, logs and documentation: nothing a VM needs, and they would make every copy bigger.
    for directory in ("var/cache/apt", "var/lib/apt/lists", "var/log", "tmp", "var/tmp",
                      "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale"):  # fmt: skip
        _empty(root / directory)
    (root / "var/lib/apt/lists/partial").mkdir()
    for leftover in ("var/cache/debconf/config.dat-old", "var/cache/debconf/templates.dat-old",
                     "var/lib/dpkg/status-old", "var/lib/dpkg/diversions-old", "root/.bash_history"):  # fmt: skip
        (root / leftover).unlink(missing_ok=True)


def _module_names(paths: list[str]) -> set[str]:
    return {building.module_name(path) for path in paths if ".ko" in path}


def _check_initrd(root: Path, initrd: str) -> None:
    """The initrd can mount the root disk: its modules are in it or built into the kernel."""
    (modules_dir,) = (root / "lib/modules").iterdir()
    builtin = _module_names((modules_dir / "modules.builtin").read_text().splitlines())
    listed = _module_names(_in_root(root, "lsinitramfs", initrd).split())
    lacking = [module for module in INITRD_MODULES if module not in builtin and module not in listed]
    if lacking:
        raise RuntimeError(f"the initrd {initrd} lacks {', '.join(lacking)}: the VM could not mount its disk")


def _make_disk(root: Path, raw: Path) -> None:
    """An ext4 file system holding `root`, with room to spare, made without mounting anything."""
    used = int(_run("du", "-s", "-x", "--block-size=1", str(root)).split()[0])
    mib = 1024 * 1024
    size = -(-int(used * HEADROOM + SLACK_MIB * mib) // (64 * mib)) * 64 * mib
    with open(raw, "wb") as handle:
        handle.truncate(size)
    _run("mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(raw))


def _build(work: Path) -> Path:
    root = work / "root"
    _debootstrap(root)
    (vmlinuz,) = (root / "boot").glob("vmlinuz-*")
    (initrd,) = (root / "boot").glob("initrd.img-*")
    _check_initrd(root, f"/boot/{initrd.name}")
    out = work / "image"
    out.mkdir()
    shutil.copyfile(vmlinuz, out / f"{IMAGE_ID}.vmlinuz")
    shutil.copyfile(initrd, out / f"{IMAGE_ID}.initrd")
    (out / f"{IMAGE_ID}.cmdline").write_text(CMDLINE + "\n")
    _configure(root)
    raw = work / "root.img"
    _make_disk(root, raw)
    shutil.rmtree(root)
    _run("qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(out / f"{IMAGE_ID}.qcow2"))
    raw.unlink()
    for path in out.iterdir():
        path.chmod(0o644)  # QEMU runs as libvirt-qemu
    return out


if __name__ == "__main__":
    building.main(image_dir)

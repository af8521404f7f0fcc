"""``~/.ssh/config`` blocks for a user's benches (the original needed a Windows program)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from accounts.models import User

from .models import DevBench


@dataclass(frozen=True)
class SSHConfigEntry:
    bench: DevBench
    alias: str
    hostname: str
    port: str
    user: str
    proxy_jump: str
    vnc: str

    @property
    def text(self) -> str:
        lines = [
            f"# DevBench {self.bench.name} (VNC: {self.hostname}:{self.vnc})" if self.vnc else
            f"# DevBench {self.bench.name}",
            f"Host {self.alias}",
            f"    HostName {self.hostname}",
            f"    Port {self.port}",
            f"    User {self.user}",
        ]
        if self.proxy_jump:
            lines.append(f"    ProxyJump {self.proxy_jump}")
        return "\n".join(lines) + "\n"

    @property
    def command(self) -> str:
        jump = f" -J {self.proxy_jump}" if self.proxy_jump else ""
        return f"ssh{jump} -p {self.port} {self.user}@{self.hostname}"


def vm_username(user: User) -> str:
    """The account name inside a user's VMs."""
    return (settings.DEVBENCH_VM_USERNAME or user.username).lower()


def entries_for(user: User, benches: Iterable[DevBench]) -> list[SSHConfigEntry]:
    """One entry per bench that has an SSH port (hosts must be select_related)."""
    vm_user = vm_username(user)
    return [
        SSHConfigEntry(
            bench=bench,
            alias=f"devbench-{bench.name}",
            hostname=bench.host.connect_name,
            port=bench.ssh_info,
            user=vm_user,
            proxy_jump=bench.host.jump_host,
            vnc=bench.vnc_info,
        )
        for bench in benches
        if bench.ssh_info
    ]


def render(user: User, benches: Iterable[DevBench]) -> str:
    """The whole file: a header and one block per bench."""
    entries = entries_for(user, benches)
    header = f"# DevBench SSH config for {user.username}. Add to ~/.ssh/config, then: ssh devbench-<name>\n\n"
    return header + "\n".join(entry.text for entry in entries)

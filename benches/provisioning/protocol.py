"""The remote provision script's protocol, as pure functions: building the command line and
parsing what the script prints. See docs/host-protocol.md.

``<script> <command> <vm_name> [<snapshot>] [create options]``; every argument is validated, then
shell-quoted.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import shlex
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from .. import naming

COMMANDS = ("create", "status", "delete", "start", "stop", "activate")
SNAPSHOT_COMMANDS = ("snapshot", "restore", "delete-snapshot")
BATCH_LIST_COMMAND = "list"
CAPABILITIES_COMMAND = "capabilities"
USAGE_ERROR_EXIT_CODE = 2  # what a script answers to a command or argument it does not know
# What a host's agent may say it can do (docs/host-protocol.md, "capabilities").
KNOWN_CAPABILITIES = ("list", "images", "plans", "ssh-keys", "snapshots")

BENCH_NAME_RE = naming.NAME_RE
VM_NAME_RE = re.compile(rf"\A[a-zA-Z]{{1,32}}_{naming.PATTERN}\Z")  # <username>_<bench name>
SCRIPT_PATH_RE = re.compile(r"\A[A-Za-z0-9_./~+-]{1,500}\Z")
IMAGE_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
VM_USER_RE = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")
PUBLIC_KEY_LINE_RE = re.compile(r"\A[a-z0-9][a-z0-9@.-]{2,63} [A-Za-z0-9+/]+={0,3}(?: [^\x00-\x1f\x7f]*)?\Z")
MAX_SSH_KEYS = 32  # the agent refuses a 33rd --ssh-key

ACTIVE_STATES = {"running", "active"}
INACTIVE_STATES = {"stopped", "poweroff", "inactive", "saved", "paused", "aborted"}

# The keys a script prints, each at the start of a line. The patterns begin with a literal and
# have no ``^``: ``re`` then jumps between the literal's occurrences instead of trying every
# position, which matters for a create that prints thousands of lines of package output;
# ``_at_line_starts`` keeps the matches that begin a line. A key's value is the rest of its line,
# so that a value with spaces or markup is refused by the checks below instead of skipped.
_CREATED_RE = re.compile(r"VM (\S+) Created and Ready\s*$", re.MULTILINE)
_SSH_PORT_RE = re.compile(r"SSH(?: Port:[ \t]*|_PORT=)(.*?)\s*$", re.MULTILINE)
_VNC_PORT_RE = re.compile(r"VNC(?: Port:[ \t]*|_PORT=)(.*?)\s*$", re.MULTILINE)
_VM_NAME_RE = re.compile(r"VM_NAME=(.*?)\s*$", re.MULTILINE)
_VM_IP_RE = re.compile(r"VM_IP=(.*?)\s*$", re.MULTILINE)
_STATUS_RE = re.compile(r"S(?:tatus:\s*|TATUS=)(\w+)\s*$", re.MULTILINE)
_PROGRESS_RE = re.compile(r"PROGRESS=(\d{1,3})\s*$", re.MULTILINE)
_LIST_LINE_RE = re.compile(r"^VM_NAME=(\S+)\s+STATUS=(\w+)")


class ProtocolError(ValueError):
    """The script's output or an argument does not follow the protocol."""


@dataclass(frozen=True)
class CreateResult:
    vm_name: str | None
    ssh_port: int
    vnc_port: int
    vm_ip: str | None


def vm_name_for(username: str, bench_name: str) -> str:
    """The VM's name on the host: ``<username>_<bench name>``."""
    return f"{username}_{bench_name}"


@dataclass(frozen=True)
class CreateOptions:
    """The v2 create options (docs/host-protocol.md); an empty or zero field is left to the host."""

    image_id: str = ""
    vcpus: int = 0
    memory_mib: int = 0
    disk_gib: int = 0
    user: str = ""
    ssh_keys: tuple[str, ...] = ()

    def arguments(self) -> list[str]:
        """``--flag value`` pairs, each value checked against the protocol's rule."""
        args: list[str] = []
        if self.image_id:
            if not IMAGE_ID_RE.match(self.image_id):
                raise ProtocolError(f"Invalid image id: {self.image_id!r}")
            args += ["--image", self.image_id]
        for flag, value, low, high in (
            ("--vcpus", self.vcpus, 1, 64),
            ("--memory", self.memory_mib, 128, 262144),
            ("--disk", self.disk_gib, 1, 4096),
        ):
            if value:
                if not low <= value <= high:
                    raise ProtocolError(f"{flag} must be {low}–{high}, not {value}")
                args += [flag, str(value)]
        if self.user:
            if not VM_USER_RE.match(self.user):
                raise ProtocolError(f"Invalid VM user name: {self.user!r}")
            args += ["--user", self.user]
        if len(self.ssh_keys) > MAX_SSH_KEYS:
            raise ProtocolError(f"At most {MAX_SSH_KEYS} SSH keys go to a VM, not {len(self.ssh_keys)}")
        for key in self.ssh_keys:
            if not PUBLIC_KEY_LINE_RE.match(key):
                raise ProtocolError("An SSH key is not one OpenSSH public key line")
            args += ["--ssh-key", base64.b64encode(key.encode()).decode()]
        return args


def build_command(
    script_path: str,
    command: str,
    vm_name: str | None = None,
    *,
    snapshot: str = "",
    create_options: CreateOptions | None = None,
) -> str:
    """The shell command line that runs ``command`` for ``vm_name``, every argument quoted.

    Raises ProtocolError for an unknown command or a name outside the allowed alphabet, so
    nothing reaches a shell that could inject a command.
    """
    if not SCRIPT_PATH_RE.match(script_path or ""):
        raise ProtocolError(f"Invalid script path: {script_path!r}")
    if command in (BATCH_LIST_COMMAND, CAPABILITIES_COMMAND):
        return shlex.join([script_path, command])
    if command not in COMMANDS and command not in SNAPSHOT_COMMANDS:
        raise ProtocolError(f"Unknown command: {command!r}")
    if not VM_NAME_RE.match(vm_name or ""):
        raise ProtocolError(f"Invalid VM name: {vm_name!r}")
    args = [script_path, command, vm_name]
    if command in SNAPSHOT_COMMANDS:
        if naming.snapshot_name_problem(snapshot):
            raise ProtocolError(f"Invalid snapshot name: {snapshot!r}")
        args.append(snapshot)
    if command == "create" and create_options is not None:
        args += create_options.arguments()
    return shlex.join(args)


def _at_line_starts(pattern: re.Pattern, output: str) -> Iterator[re.Match]:
    """The matches of ``pattern`` in ``output`` that begin a line, in order."""
    return (match for match in pattern.finditer(output) if match.start() == 0 or output[match.start() - 1] == "\n")


def _last(matches: Iterator[re.Match]) -> re.Match | None:
    last = deque(matches, maxlen=1)
    return last[0] if last else None


def _refused(what: str, value: str) -> ProtocolError:
    shown = value if len(value) <= 64 else value[:64] + "…"
    return ProtocolError(f"The create script printed an invalid {what}: {shown!r}")


def _port(match: re.Match | None, what: str) -> int | None:
    """The port a line gives, 1–65535 in decimal digits; None without the line."""
    if match is None:
        return None
    value = match.group(1)
    if not (value.isascii() and value.isdigit() and 0 < int(value) < 65536):
        raise _refused(what, value)
    return int(value)


def _ip(match: re.Match | None) -> str | None:
    """The address a ``VM_IP=`` line gives, IPv4 or IPv6 (no zone), as Python writes it."""
    if match is None:
        return None
    value = match.group(1)
    if not value:  # "VM_IP=" with nothing: no address given
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is None or "%" in value:
        raise _refused("VM_IP", value)
    return str(address)


def _vm_name(match: re.Match | None) -> str | None:
    if match is None:
        return None
    value = match.group(1)
    if not VM_NAME_RE.match(value):
        raise _refused("VM name", value)
    return value


def parse_create_output(output: str) -> CreateResult:
    """Connection info from a successful create, in the human or the machine format.

    Raises ProtocolError when the SSH or VNC port is missing, or when a value is not what its key
    says (a port outside 1–65535, a VM_IP that is no IP address, a VM name outside the names
    DevBench builds): the error names the key and the value.
    """
    ssh_port = _port(_last(_at_line_starts(_SSH_PORT_RE, output)), "SSH port")
    vnc_port = _port(_last(_at_line_starts(_VNC_PORT_RE, output)), "VNC port")
    if ssh_port is None or vnc_port is None:
        missing = " and ".join(n for n, p in (("SSH port", ssh_port), ("VNC port", vnc_port)) if p is None)
        raise ProtocolError(f"The create script exited 0 but printed no {missing}")
    name_match = next(_at_line_starts(_VM_NAME_RE, output), None) or next(_at_line_starts(_CREATED_RE, output), None)
    return CreateResult(
        vm_name=_vm_name(name_match),
        ssh_port=ssh_port,
        vnc_port=vnc_port,
        vm_ip=_ip(next(_at_line_starts(_VM_IP_RE, output), None)),
    )


def map_state(state: str) -> str:
    """A hypervisor state word mapped to a bench status: active, inactive or unknown."""
    state = state.lower()
    if state in ACTIVE_STATES:
        return "active"
    if state in INACTIVE_STATES:
        return "inactive"
    return "unknown"


def parse_status_output(output: str, exit_code: int | None) -> str:
    """The bench status from a status command: active, inactive or unknown.

    The whole word is compared, so "inactive" is never taken for "active" (the original's bug).
    """
    if exit_code != 0:
        return "unknown"
    match = _last(_at_line_starts(_STATUS_RE, output))
    return map_state(match.group(1)) if match else "unknown"


def parse_list_output(output: str) -> dict[str, str]:
    """``{vm_name: status}`` from the ``list`` extension's lines."""
    result: dict[str, str] = {}
    for line in output.splitlines():
        match = _LIST_LINE_RE.match(line.strip())
        if match:
            result[match.group(1)] = map_state(match.group(2))
    return result


def last_progress(output: str) -> int | None:
    """The last ``PROGRESS=<n>`` percentage in ``output`` (0–100), if any."""
    match = _last(_at_line_starts(_PROGRESS_RE, output))
    return None if match is None else min(100, int(match.group(1)))


_CAPABILITIES_RE = re.compile(r"\ACAPABILITIES=(.*?)\s*\Z")
_BACKEND_RE = re.compile(r"\ABACKEND=([a-z][a-z0-9_-]{0,31})\s*\Z")


def parse_capabilities(output: str) -> tuple[list[str], str]:
    """The known capabilities (sorted) and the backend name a ``capabilities`` command printed;
    words DevBench does not know are left out, and a missing line means none."""
    capabilities: set[str] = set()
    backend = ""
    for line in output.splitlines():
        if match := _CAPABILITIES_RE.match(line):
            capabilities = {word for word in match[1].split() if word in KNOWN_CAPABILITIES}
        elif match := _BACKEND_RE.match(line):
            backend = match[1]
    return sorted(capabilities), backend

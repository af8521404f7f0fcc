"""The remote provision script's protocol, as pure functions: building the command line and
parsing what the script prints. See docs/host-protocol.md.

``<script> <command> <vm_name>``; every argument is validated, then shell-quoted.
"""

from __future__ import annotations

import re
import shlex
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from .. import naming

COMMANDS = ("create", "status", "delete", "start", "stop", "activate")
BATCH_LIST_COMMAND = "list"

BENCH_NAME_RE = naming.NAME_RE
VM_NAME_RE = re.compile(rf"\A[a-zA-Z]{{1,32}}_{naming.PATTERN}\Z")  # <username>_<bench name>
SCRIPT_PATH_RE = re.compile(r"\A[A-Za-z0-9_./~+-]{1,500}\Z")

ACTIVE_STATES = {"running", "active"}
INACTIVE_STATES = {"stopped", "poweroff", "inactive", "saved", "paused", "aborted"}

# The keys a script prints, each at the start of a line. The patterns begin with a literal and
# have no ``^``: ``re`` then jumps between the literal's occurrences instead of trying every
# position, which matters for a create that prints thousands of lines of package output;
# ``_at_line_starts`` keeps the matches that begin a line.
_CREATED_RE = re.compile(r"VM (\S+) Created and Ready\s*$", re.MULTILINE)
_SSH_PORT_RE = re.compile(r"SSH(?: Port:\s*|_PORT=)(\d{1,5})\s*$", re.MULTILINE)
_VNC_PORT_RE = re.compile(r"VNC(?: Port:\s*|_PORT=)(\d{1,5})\s*$", re.MULTILINE)
_VM_NAME_RE = re.compile(r"VM_NAME=(\S+)\s*$", re.MULTILINE)
_VM_IP_RE = re.compile(r"VM_IP=(\S+)\s*$", re.MULTILINE)
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


def build_command(script_path: str, command: str, vm_name: str | None = None) -> str:
    """The shell command line that runs ``command`` for ``vm_name``, every argument quoted.

    Raises ProtocolError for an unknown command or a name outside the allowed alphabet, so
    nothing reaches a shell that could inject a command.
    """
    if not SCRIPT_PATH_RE.match(script_path or ""):
        raise ProtocolError(f"Invalid script path: {script_path!r}")
    if command == BATCH_LIST_COMMAND:
        return shlex.join([script_path, command])
    if command not in COMMANDS:
        raise ProtocolError(f"Unknown command: {command!r}")
    if not VM_NAME_RE.match(vm_name or ""):
        raise ProtocolError(f"Invalid VM name: {vm_name!r}")
    return shlex.join([script_path, command, vm_name])


def _at_line_starts(pattern: re.Pattern, output: str) -> Iterator[re.Match]:
    """The matches of ``pattern`` in ``output`` that begin a line, in order."""
    return (match for match in pattern.finditer(output) if match.start() == 0 or output[match.start() - 1] == "\n")


def _last(matches: Iterator[re.Match]) -> re.Match | None:
    last = deque(matches, maxlen=1)
    return last[0] if last else None


def _port(match: re.Match | None) -> int | None:
    if match is None:
        return None
    value = int(match.group(1))
    return value if 0 < value < 65536 else None


def parse_create_output(output: str) -> CreateResult:
    """Connection info from a successful create, in the human or the machine format.

    Raises ProtocolError when the SSH or VNC port is missing.
    """
    ssh_port = _port(_last(_at_line_starts(_SSH_PORT_RE, output)))
    vnc_port = _port(_last(_at_line_starts(_VNC_PORT_RE, output)))
    if ssh_port is None or vnc_port is None:
        missing = " and ".join(n for n, p in (("SSH port", ssh_port), ("VNC port", vnc_port)) if p is None)
        raise ProtocolError(f"The create script exited 0 but printed no {missing}")
    name_match = next(_at_line_starts(_VM_NAME_RE, output), None) or next(_at_line_starts(_CREATED_RE, output), None)
    ip_match = next(_at_line_starts(_VM_IP_RE, output), None)
    return CreateResult(
        vm_name=name_match.group(1) if name_match else None,
        ssh_port=ssh_port,
        vnc_port=vnc_port,
        vm_ip=ip_match.group(1) if ip_match else None,
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

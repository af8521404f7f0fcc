"""A real OpenSSH sshd on 127.0.0.1 for tests and benchmarks, with the host agent behind it.

Pytest fixtures (enabled by ``pytest_plugins = ["tests.sshd"]`` in tests/conftest.py):

- ``sshd_host`` (session): one running sshd; an :class:`SSHDHost`.
- ``sshd_factory`` (function): ``sshd_factory() -> SSHDHost`` starts an extra, isolated sshd
  that is stopped when the test ends (for tests that take a host down, or need several hosts).

Outside pytest (benchmarks): ``with start_sshd(tmp_dir) as host: ...`` or ``host = start_sshd(...)``
then ``host.stop()``. ``require_sshd()`` skips when /usr/sbin/sshd is missing, or fails when
DEVBENCH_REQUIRE_SSHD=1.

``host.make_agent_script(tmp_dir, step_delay=0.2, output_format="machine", fail_commands=["delete"])``
writes ``<tmp_dir>/devbench-agent.conf`` and an executable wrapper ``<tmp_dir>/devbench-agent`` that
runs hostagent/devbench-agent with that config; the returned path is what DevBench calls as the
host's provision script. Keyword arguments are the agent's config keys in lower case.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
REPO_ROOT = Path(__file__).resolve().parent.parent
AGENT_PATH = REPO_ROOT / "hostagent" / "devbench-agent"
AGENT_CONFIG_KEYS = (
    "BACKEND",
    "STATE_DIR",
    "OUTPUT_FORMAT",
    "STEP_DELAY",
    "FAIL_COMMANDS",
    "HANG_COMMANDS",
    "CREATE_LINES",
    "OMIT_PORTS",
    "BASE_VM",
    "SNAPSHOT",
    "VBOXMANAGE",
    "SSH_PORT_BASE",
    "VNC_PORT_BASE",
    "HOST_IP",
    "STOP_TIMEOUT",
    "DEFAULT_IMAGE",
    "DEFAULT_VCPUS",
    "DEFAULT_MEMORY",
    "DEFAULT_DISK",
    "SIMULATED_IMAGES",
    "LIBVIRT_URI",
    "VIRSH",
    "QEMU_IMG",
    "IMAGES_DIR",
    "DISK_DIR",
    "FORWARD_ADDRESS",
    "VNC_ADDRESS",
    "ACCEL",
    "BOOT_TIMEOUT",
)
START_TIMEOUT = 10.0
_LIVE: set[SSHDHost] = set()


def sshd_available() -> bool:
    return SSHD.is_file() and os.access(SSHD, os.X_OK)


def require_sshd() -> None:
    """Skip the calling test when OpenSSH's sshd is missing; fail instead if DEVBENCH_REQUIRE_SSHD=1."""
    if sshd_available():
        return
    message = f"{SSHD} is not installed (apt-get install openssh-server)"
    if os.environ.get("DEVBENCH_REQUIRE_SSHD") == "1":
        pytest.fail(f"DEVBENCH_REQUIRE_SSHD=1 but {message}", pytrace=False)
    pytest.skip(message)


def agent_python() -> str:
    """The interpreter that runs the agent: $DEVBENCH_AGENT_PYTHON (e.g. a Python 3.9 to check the
    agent's compatibility), else the system /usr/bin/python3 a host would use, else this one."""
    chosen = os.environ.get("DEVBENCH_AGENT_PYTHON")
    if chosen:
        return chosen
    system = Path("/usr/bin/python3")
    return str(system) if os.access(system, os.X_OK) else sys.executable


def _config_value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(item) for item in value)
    text = str(value)
    if "\n" in text:
        raise ValueError(f"config values are single lines, got {text!r}")
    return text


def make_agent_script(tmp_dir, *, script_name: str = "devbench-agent", **config) -> Path:
    """Write <tmp_dir>/<script_name>.conf and an executable wrapper <tmp_dir>/<script_name> around
    hostagent/devbench-agent; return the wrapper's path.

    Keyword arguments are agent config keys in lower case (step_delay=0.1, fail_commands=["create"],
    output_format="machine", omit_ports=True...). Defaults: STEP_DELAY=0 and
    STATE_DIR=<tmp_dir>/<script_name>.state, so VMs of different scripts never mix.
    """
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    settings = {"STATE_DIR": tmp_dir / f"{script_name}.state", "STEP_DELAY": 0}
    for key, value in config.items():
        upper = key.upper()
        if upper not in AGENT_CONFIG_KEYS:
            raise TypeError(f"unknown agent config key {key!r}; known: {', '.join(AGENT_CONFIG_KEYS)}")
        if value is None:
            settings.pop(upper, None)
        else:
            settings[upper] = value
    conf_path = tmp_dir / f"{script_name}.conf"
    conf_path.write_text("".join(f"{key}={_config_value(value)}\n" for key, value in settings.items()))
    script = tmp_dir / script_name
    script.write_text(
        "#!/bin/sh\n"
        f"DEVBENCH_AGENT_CONFIG={shlex.quote(str(conf_path))} "
        f'exec {shlex.quote(agent_python())} {shlex.quote(str(AGENT_PATH))} "$@"\n'
    )
    script.chmod(0o755)
    return script


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    kind, blob = path.with_name(path.name + ".pub").read_text().split()[:2]
    return f"{kind} {blob}"


def _proc_parents() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    return parents


def _descendants(pid: int) -> list[int]:
    parents = _proc_parents()
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def session_processes(port: int) -> list[int]:
    """Processes whose SSH_CONNECTION says they run in a session of the sshd on `port`."""
    marker = f" 127.0.0.1 {port}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        for variable in environ.split(b"\0"):
            if variable.startswith(b"SSH_CONNECTION=") and variable.endswith(marker):
                found.append(int(entry))
                break
    return found


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _terminate(pids: Iterable[int], timeout: float = 3.0) -> None:
    pids = [pid for pid in set(pids) if pid != os.getpid()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(process_alive(pid) for pid in pids):
        time.sleep(0.02)
    for pid in pids:
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@dataclass(eq=False)
class SSHDHost:
    """A running (or stopped) sshd on loopback that accepts one client key for the current user."""

    host: str
    port: int
    username: str
    client_key_path: Path
    host_public_key: str  # "ssh-ed25519 AAAA..."
    known_hosts_path: Path  # "[127.0.0.1]:<port> ssh-ed25519 AAAA..."
    workdir: Path
    config_path: Path
    log_path: Path
    _process: subprocess.Popen | None = field(default=None, repr=False)

    # -- lifecycle

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> SSHDHost:
        """Start sshd (again) on the same port and wait until it answers with an SSH banner."""
        if self.is_running:
            return self
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        _LIVE.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"sshd exited with {self._process.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return self
            if time.monotonic() > deadline:
                self.stop()
                tail = self.log_tail()
                raise RuntimeError(f"sshd on port {self.port} did not answer within {START_TIMEOUT}s: {tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop sshd and every process of its sessions (per-connection sshd, remote commands)."""
        process, self._process = self._process, None
        _LIVE.discard(self)
        if process is None:
            return
        children = _descendants(process.pid) if process.poll() is None else []
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _terminate(children + session_processes(self.port))

    @contextlib.contextmanager
    def down(self):
        """`with host.down():` the host refuses connections inside the block, runs again after it."""
        self.stop()
        try:
            yield self
        finally:
            self.start()

    def __enter__(self) -> SSHDHost:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    # -- clients

    @property
    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_public_key}"

    def make_agent_script(self, tmp_dir, **config) -> Path:
        """See the module-level make_agent_script(): the returned path works as this host's script."""
        return make_agent_script(tmp_dir, **config)

    def ssh_argv(self, *remote_args: str, known_hosts: Path | None = None) -> list[str]:
        """argv for OpenSSH's client with the pinned host key (StrictHostKeyChecking=yes)."""
        remote = " ".join(shlex.quote(str(arg)) for arg in remote_args)
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.port),
            "-i",
            str(self.client_key_path),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts or self.known_hosts_path}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            f"{self.username}@{self.host}",
            "--",
            remote,
        ]

    def run(self, *remote_args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        """Run a remote command through OpenSSH's client; output captured as text."""
        return subprocess.run(
            self.ssh_argv(*remote_args),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
            **kwargs,
        )

    def connect(self, **kwargs):
        """A connected paramiko.SSHClient that accepts only the pinned host key."""
        import paramiko

        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts_path))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        options = {
            "username": self.username,
            "key_filename": str(self.client_key_path),
            "look_for_keys": False,
            "allow_agent": False,
            "timeout": 10,
        }
        options.update(kwargs)
        client.connect(self.host, port=self.port, **options)
        return client


SSHD_CONFIG = """\
ListenAddress {host}:{port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
AllowUsers {username}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
UseDNS no
MaxSessions 100
MaxStartups 200
PerSourceMaxStartups none
PerSourcePenalties no
X11Forwarding no
PrintMotd no
PrintLastLog no
LogLevel VERBOSE
Subsystem sftp internal-sftp
SetEnv HOME={home}
"""


def _write_checked_config(path: Path, text: str) -> None:
    """Write the sshd_config, dropping options this OpenSSH version does not know."""
    for _ in range(10):
        path.write_text(text)
        check = subprocess.run([str(SSHD), "-t", "-f", str(path)], capture_output=True, text=True, check=False)
        if check.returncode == 0:
            return
        unknown = [
            line.split("Bad configuration option:")[-1].strip()
            for line in check.stderr.splitlines()
            if "Bad configuration option:" in line
        ]
        if not unknown:
            raise RuntimeError(f"sshd rejects its test configuration: {check.stderr.strip()}")
        text = "".join(line + "\n" for line in text.splitlines() if line.split(" ", 1)[0] not in unknown)
    raise RuntimeError(f"sshd rejects its test configuration: {check.stderr.strip()}")


def start_sshd(tmp_dir, *, port: int | None = None) -> SSHDHost:
    """Start an sshd on 127.0.0.1 in `tmp_dir` (keys, config, log, pid file there). Use the result
    as a context manager, or call .stop(); an atexit hook stops any host still running."""
    if not sshd_available():
        raise RuntimeError(f"{SSHD} is not installed")
    workdir = Path(tmp_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # sshd started by root insists on its privilege separation directory
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    username = getpass.getuser()
    host_key = workdir / "ssh_host_ed25519_key"
    client_key = workdir / "client_ed25519"
    for path in (host_key, client_key):
        for stale in (path, path.with_name(path.name + ".pub")):
            stale.unlink(missing_ok=True)
    host_public_key = _keygen(host_key, "devbench-test-host")
    client_public_key = _keygen(client_key, "devbench-test-client")
    authorized_keys = workdir / "authorized_keys"
    authorized_keys.write_text(client_public_key + "\n")
    # The sessions' HOME: the test host's account is the one running the tests (root in CI), and
    # bash, started by sshd, runs that account's ~/.bashrc before every command. On a machine whose
    # ~/.bashrc does work (pyenv init here: ~100 processes, ~150 ms of CPU), that cost — not sshd,
    # not DevBench — set the pace of every remote command (docs/PERFORMANCE.md, benchmark 1). A
    # home of its own makes the host behave like a hypervisor host's provisioning account.
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    attempts = 1 if port is not None else 5
    for attempt in range(attempts):
        chosen = port if port is not None else _free_port()
        config_path = workdir / "sshd_config"
        _write_checked_config(
            config_path,
            SSHD_CONFIG.format(
                host="127.0.0.1",
                port=chosen,
                host_key=host_key,
                pid_file=workdir / "sshd.pid",
                authorized_keys=authorized_keys,
                username=username,
                home=home,
            ),
        )
        known_hosts = workdir / "known_hosts"
        host = SSHDHost(
            host="127.0.0.1",
            port=chosen,
            username=username,
            client_key_path=client_key,
            host_public_key=host_public_key,
            known_hosts_path=known_hosts,
            workdir=workdir,
            config_path=config_path,
            log_path=workdir / "sshd.log",
        )
        known_hosts.write_text(host.known_hosts_line + "\n")
        try:
            return host.start()
        except RuntimeError:
            if attempt == attempts - 1:  # another process may have taken the free port meanwhile
                raise
    raise AssertionError("unreachable")


@atexit.register
def _stop_leftovers() -> None:
    for host in list(_LIVE):
        host.stop()


@pytest.fixture(scope="session")
def sshd_host(tmp_path_factory):
    """One real sshd for the whole run (see SSHDHost). Tests that stop it use `with sshd_host.down():`."""
    require_sshd()
    with start_sshd(tmp_path_factory.mktemp("sshd")) as host:
        yield host


@pytest.fixture
def sshd_factory(tmp_path):
    """Start extra isolated sshd hosts for one test: `host = sshd_factory()`; all stopped afterwards."""
    require_sshd()
    hosts: list[SSHDHost] = []

    def start() -> SSHDHost:
        host = start_sshd(tmp_path / f"sshd-{len(hosts)}")
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()

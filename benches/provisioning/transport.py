"""Running a command on a host: over SSH with fabric (host key pinned, connection reused per
host within a worker), or through Invoke's local runner for the built-in ``local`` host.

The command runs behind ``printf 'DEVBENCH_PID=%s' $$; exec ...`` so the transport learns the
remote process id and can end it with a signal on cancel or timeout; closing an SSH channel
without a pty does not stop the remote process.

Over SSH, stdout and stderr reach us as separate messages on one channel, in the order sshd sent
them; invoke reads the two with a thread each, which loses that order. So the output callback is
fed from paramiko's own receiving thread as each message arrives (``ArrivalPipe``), and the
reader threads only drain the channel. The local host's two pipes have no common order: there
each stream is passed on as its reader thread gets it.
"""

from __future__ import annotations

import codecs
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko
from django.conf import settings
from fabric import Config, Connection
from fabric.runners import Remote
from invoke import Context
from invoke.exceptions import CommandTimedOut

from ..models import Host
from . import host_keys
from .command_output import ArrivalPipe, OutputCallback, OutputStreams, wrap_with_pid

logger = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 3
CONNECT_BACKOFF_SECONDS = 1.0
KILL_GRACE_SECONDS = 5.0
WATCH_INTERVAL_SECONDS = 0.25



class TransportError(Exception):
    """The host could not be reached or refused us; the command did not run."""


class HostKeyMismatch(TransportError):
    """The host presented a key other than the pinned one."""


@dataclass
class CommandResult:
    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False
    stdout: str = ""
    stderr: str = ""


class Transport:
    """Runs commands on one host; subclasses say how."""

    def __init__(self, host: Host):
        self.host = host

    def run(
        self,
        command: str,
        *,
        on_output: OutputCallback,
        timeout: float,
        should_cancel: Callable[[], bool] = lambda: False,
    ) -> CommandResult:
        """Run ``command`` (already validated and quoted), streaming its output.

        Ends the process (SIGTERM, then SIGKILL) when ``should_cancel()`` turns true or
        ``timeout`` seconds pass. Raises TransportError when the host cannot be reached.
        """
        streams = OutputStreams(on_output=on_output)
        outcome = {"timed_out": False, "cancelled": False}
        finished = threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + timeout
            while not finished.wait(WATCH_INTERVAL_SECONDS):
                reason = None
                if time.monotonic() >= deadline:
                    reason = "timed_out"
                elif should_cancel():
                    reason = "cancelled"
                if reason:
                    outcome[reason] = True
                    self._terminate(streams, finished)
                    return

        self.connect()
        watcher = threading.Thread(target=watch, name="devbench-job-watch", daemon=True)
        watcher.start()
        try:
            exit_code = self._execute(wrap_with_pid(command), streams, timeout + 2 * KILL_GRACE_SECONDS + 5)
        except CommandTimedOut:
            outcome["timed_out"] = True
            exit_code = None
        finally:
            finished.set()
            watcher.join()
        return CommandResult(
            exit_code=exit_code,
            timed_out=outcome["timed_out"],
            cancelled=outcome["cancelled"],
            stdout="".join(streams.stdout_parts),
            stderr="".join(streams.stderr_parts),
        )

    def _terminate(self, streams: OutputStreams, finished: threading.Event) -> None:
        if streams.pid is None:
            return
        streams.signalled = True
        self._signal(streams.pid, "TERM")
        if not finished.wait(KILL_GRACE_SECONDS):
            self._signal(streams.pid, "KILL")

    def connect(self) -> None:
        """Make sure the host can be reached (retrying with backoff where that is safe)."""

    def close(self) -> None:
        """Release the connection."""

    def remote_host_key(self) -> paramiko.PKey | None:
        """The key the host presented on the open connection; None for the local host."""
        return None

    def _execute(self, command: str, streams: OutputStreams, hard_timeout: float) -> int | None:
        raise NotImplementedError

    def _signal(self, pid: int, name: str) -> None:
        raise NotImplementedError


class LocalTransport(Transport):
    """The built-in ``local`` host: the bundled agent in simulated mode, via Invoke."""

    def _env(self) -> dict[str, str]:
        return {"DEVBENCH_AGENT_CONFIG": str(settings.DEVBENCH_LOCAL_AGENT_CONFIG)}

    def _execute(self, command: str, streams: OutputStreams, hard_timeout: float) -> int | None:
        # The command line was validated and quoted by protocol.build_command.
        result = Context().run(  # noqa: S604
            command,
            env=self._env(),
            out_stream=streams.stdout_writer(),
            err_stream=streams.stderr_writer(),
            hide=True,
            warn=True,
            in_stream=False,
            timeout=hard_timeout,
            shell="/bin/sh",
        )
        return result.exited

    def _signal(self, pid: int, name: str) -> None:
        try:
            os.kill(pid, getattr(signal, f"SIG{name}"))
        except ProcessLookupError:
            pass


class _Remote(Remote):
    """fabric's runner, made cheap for many concurrent jobs in one worker:

    - it waits for the exit status on paramiko's event instead of invoke's polling loop, so idle
      jobs do not wake the worker;
    - it reads up to 32 KiB at a time instead of 1,000 bytes, decoding incrementally so that a
      multi-byte character split between two reads stays whole;
    - given an ``arrival_writer``, it passes the output on in arrival order (``ArrivalPipe``).
    """

    read_chunk_size = 32 * 1024

    def send_start_message(self, command: str) -> None:
        arrivals = getattr(self.streams["out"], "arrivals", None)
        if arrivals is not None:  # before the command runs, so no output misses them
            self.channel.in_buffer = ArrivalPipe("stdout", arrivals)
            self.channel.in_stderr_buffer = ArrivalPipe("stderr", arrivals)
        super().send_start_message(command)

    def wait(self) -> None:
        while not (self.process_is_finished or self.has_dead_threads):
            self.channel.status_event.wait(WATCH_INTERVAL_SECONDS)

    def read_proc_output(self, reader):
        decoder = codecs.getincrementaldecoder(self.encoding)("replace")
        while True:
            data = reader(self.read_chunk_size)
            text = decoder.decode(data, final=not data)
            if text:
                yield text
            if not data:
                return


class SSHTransport(Transport):
    """A host reached over SSH with fabric; the connection stays open for the next job."""

    def __init__(self, host: Host):
        super().__init__(host)
        self._connection: Connection | None = None
        self._connect_lock = threading.Lock()
        self.learned_host_key: str | None = None

    def _new_connection(self) -> tuple[Connection, host_keys.PinnedHostKeyPolicy]:
        host = self.host
        connect_kwargs: dict = {
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": 15,
            "auth_timeout": 15,
        }
        pkey = host_keys.load_private_key(host)
        if pkey is not None:
            connect_kwargs["pkey"] = pkey
        connection = Connection(
            host=host.address,
            user=host.username or None,
            port=host.port,
            config=Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False},
                                     "runners": {"remote": _Remote}}),
            connect_timeout=10,
            connect_kwargs=connect_kwargs,
        )
        client = paramiko.SSHClient()  # no system known_hosts, no AutoAddPolicy
        policy = host_keys.PinnedHostKeyPolicy(host)
        for key in host_keys.pinned_keys(host):
            client.get_host_keys().add(host_keys.known_hosts_name(host), key.get_name(), key)
        client.set_missing_host_key_policy(policy)
        connection.client = client
        return connection, policy

    def connect(self) -> None:
        # One job opens the host's connection; the others wait for it and then share it.
        with self._connect_lock:
            self._connect()

    def _connect(self) -> None:
        if self._connection is not None and self._connection.is_connected:
            transport = self._connection.client.get_transport()
            if transport is not None and transport.is_active():
                return
            self.close()
        last_error: Exception | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            connection, policy = self._new_connection()
            try:
                connection.open()
            except paramiko.BadHostKeyException as exc:
                raise HostKeyMismatch(host_keys.mismatch_message(self.host, exc.key)) from None
            except host_keys.UnexpectedHostKey as exc:
                raise HostKeyMismatch(host_keys.mismatch_message(self.host, exc.key)) from None
            except paramiko.AuthenticationException as exc:
                raise TransportError(f"SSH authentication to {self.host.name} failed: {exc}") from None
            except (OSError, paramiko.SSHException, EOFError) as exc:
                last_error = exc
                connection.close()
                if attempt + 1 < CONNECT_ATTEMPTS:
                    time.sleep(CONNECT_BACKOFF_SECONDS * (2**attempt))
                continue
            self._connection = connection
            self.learned_host_key = policy.learned
            return
        raise TransportError(
            f"Could not connect to host {self.host.name} ({self.host.address}:{self.host.port}) "
            f"after {CONNECT_ATTEMPTS} attempts: {last_error or 'unknown error'}"
        )

    def remote_host_key(self) -> paramiko.PKey | None:
        if self._connection is None or self._connection.client is None:
            return None
        transport = self._connection.client.get_transport()
        return transport.get_remote_server_key() if transport is not None else None

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                logger.debug("closing connection to %s failed", self.host.name, exc_info=True)
            self._connection = None

    def _execute(self, command: str, streams: OutputStreams, hard_timeout: float) -> int | None:
        connection = self._connection
        if connection is None:  # another job's failure closed it after this job's connect()
            raise TransportError(f"The connection to host {self.host.name} closed before the command started")
        try:
            result = connection.run(
                command,
                out_stream=streams.arrival_writer(),
                err_stream=streams.arrival_writer(),
                hide=True,
                warn=True,
                pty=False,
                timeout=hard_timeout,
            )
        except (OSError, paramiko.SSHException, EOFError) as exc:
            self.close()
            raise TransportError(f"The connection to host {self.host.name} dropped: {exc}") from None
        finally:
            streams.end_of_arrivals()
        if result.exited == -1 and not streams.signalled:
            # paramiko reports -1 when the channel closed without an exit status.
            self.close()
            raise TransportError(
                f"The connection to host {self.host.name} dropped while the command ran; "
                "it may have had effects on the host"
            )
        return None if result.exited == -1 else result.exited

    def _signal(self, pid: int, name: str) -> None:
        if self._connection is None:
            return
        try:
            self._connection.run(f"kill -{name} {int(pid)}", hide=True, warn=True, pty=False, timeout=15)
        except Exception:
            logger.warning("could not signal pid %s on %s", pid, self.host.name, exc_info=True)


_pool: dict[int, tuple[tuple, Transport]] = {}
_pool_pid = os.getpid()


def _fingerprint(host: Host) -> tuple:
    return (host.kind, host.address, host.port, host.username, host.identity_file,
            host.private_key_encrypted, host.host_key)


def transport_for(host: Host) -> Transport:
    """The transport for ``host``, reused within this process while the host is unchanged."""
    global _pool_pid
    if os.getpid() != _pool_pid:  # forked (Celery prefork): never share a parent's sockets
        _pool.clear()
        _pool_pid = os.getpid()
    fingerprint = _fingerprint(host)
    cached = _pool.get(host.pk)
    if cached is not None and cached[0] == fingerprint:
        cached[1].host = host
        return cached[1]
    if cached is not None:
        cached[1].close()
    transport: Transport = LocalTransport(host) if host.kind == Host.Kind.LOCAL else SSHTransport(host)
    _pool[host.pk] = (fingerprint, transport)
    return transport


def close_all() -> None:
    for _key, transport in _pool.values():
        transport.close()
    _pool.clear()

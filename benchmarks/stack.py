"""The live stack: Daphne and Celery worker subprocesses against the benchmark database on a free
loopback port, their logs, resource use and optional py-spy profiles."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .env import ROOT, Environment
from .measure import proc_status
from .results import RESULTS_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """Daphne and (optionally) a Celery worker, started against the benchmark database."""

    env: Environment
    worker_pool: str = "prefork"  # what make run and deploy/ run
    worker_concurrency: int = 4
    with_worker: bool = True
    workers: int = 1  # worker processes, each with worker_concurrency // workers slots
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    log_dir: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def start(self) -> Stack:
        self.log_dir = Path(tempfile.mkdtemp(prefix="stack-", dir=self.env.tmp))
        python = sys.executable
        commands = {
            "web": [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                    "devbench_site.asgi:application"],
        }
        if self.with_worker:
            for number in range(self.workers):
                name = "worker" if number == 0 else f"worker{number + 1}"
                commands[name] = [
                    python, "-m", "celery", "-A", "devbench_site", "worker", "--pool", self.worker_pool,
                    "--concurrency", str(max(1, self.worker_concurrency // self.workers)), "-l", "info",
                    "--without-gossip", "--without-mingle", "--without-heartbeat", "-n",
                    f"bench-{self.port}-{number}@%h",
                ]
        for name, command in commands.items():
            with open(self.log_dir / f"{name}.log", "w") as log:
                self.processes[name] = subprocess.Popen(
                    command, cwd=ROOT, env=self.env.subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        try:
            self._wait_http(self.base_url + "/health", 60)
            for name in self.processes:
                if name.startswith("worker"):
                    self._wait_log(name, "ready.", 60)
        except Exception:
            self.stop()
            raise
        return self

    def _wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer within {timeout} s:\n{self.logs()}")

    def _wait_log(self, name: str, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        path = self.log_dir / f"{name}.log"
        while time.monotonic() < deadline:
            self._check_alive()
            if marker in path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready within {timeout} s:\n{self.logs()}")

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.logs()}")

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def usage(self) -> dict[str, dict[str, float]]:
        """Peak RSS (MiB) and CPU seconds of each process so far."""
        report = {}
        for name, process in self.processes.items():
            status = proc_status(process.pid)
            report[name] = {
                "peak_rss_mib": round(status.get("VmHWM", 0) / 1024, 1),
                "cpu_seconds": round(status.get("cpu_seconds", 0.0), 2),
            }
        return report

    @contextlib.contextmanager
    def profiled(self, label: str):
        """With ``BENCH_PROFILE=web,worker`` set, sample those processes with py-spy for the block
        (``--format raw``: one folded stack and its sample count per line) into
        ``benchmarks/results/profiles/``."""
        wanted = [name for name in os.environ.get("BENCH_PROFILE", "").split(",") if name in self.processes]
        spies = []
        out_dir = RESULTS_DIR / "profiles"
        if wanted:
            out_dir.mkdir(parents=True, exist_ok=True)
        for name in wanted:
            path = out_dir / f"{label}-{name}.txt"
            spies.append((path, subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(self.pid(name)), "--format",
                 "raw", "--rate", "200", "--nonblocking", "--threads", "-o", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )))
        try:
            yield
        finally:
            for _path, spy in spies:
                spy.send_signal(signal.SIGINT)
            for _path, spy in spies:
                try:
                    spy.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    spy.kill()

    def logs(self, tail: int = 3000) -> str:
        if self.log_dir is None:
            return ""
        paths = sorted(self.log_dir.glob("*.log"))
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}" for path in paths)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

"""A live DevBench stack for end-to-end tests: Daphne and a real Celery worker as subprocesses,
sharing the test database and the session's Redis/Valkey with the test process.

One stack serves every test of a module (``live_stack``), each test with its own rows and its own
local agent: the stack's processes read the agent's config through a link that each test points
at its own ``local_agent`` config. Per module rather than per session, because the stack's worker
takes any task queued on the broker: outside the modules that use it, no worker may run (tests
queue jobs that they run themselves, or that a worker of their own must take)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database the tests use right now (the test database)."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = params.get("USER") or ""
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{params['NAME']}"


def wait_until(predicate, timeout=30.0, interval=0.1, message="condition"):
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {message}")


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclass
class LiveStack:
    base_url: str
    ws_url: str
    processes: list[subprocess.Popen]
    log_dir: Path

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text()[-4000:]}" for path in sorted(self.log_dir.glob("*.log")))


def stack_env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def live_stack_env() -> dict[str, str]:
    """Extra environment for the module's live stack; a module overrides it to configure its stack."""
    return {}


def start_stack(log_dir: Path, agent_config: Path, extra_env: dict[str, str]) -> LiveStack:
    """Daphne on a free port and a Celery worker on the test database, the built-in local host's
    agent configured by the file ``agent_config``."""
    port = free_port()
    env = stack_env({"DEVBENCH_LOCAL_AGENT_CONFIG": str(agent_config), "DEVBENCH_LOCAL_HOST": "1", **extra_env})
    commands = {
        "daphne": [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                   "devbench_site.asgi:application"],
        "worker": [sys.executable, "-m", "celery", "-A", "devbench_site", "worker", "--pool", "threads",
                   "--concurrency", "4", "-l", "info", "-n", f"test-{port}@%h"],
    }
    processes = []
    for name, command in commands.items():
        with open(log_dir / f"{name}.log", "w") as log:
            processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    stack = LiveStack(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", processes, log_dir)
    try:
        wait_for_http(stack.base_url + "/health")
    except BaseException:
        stop_stack(stack)
        raise
    return stack


def stop_processes(processes: list[subprocess.Popen], timeout: float = 15) -> None:
    """Ask each process to stop (SIGTERM), and kill those still running after ``timeout``."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_stack(stack: LiveStack) -> None:
    stop_processes(stack.processes)


@pytest.fixture(scope="module")
def _module_stack(django_db_setup, tmp_path_factory, live_stack_env) -> Iterator[tuple[LiveStack, Path]]:
    """The module's stack, and the link its agent config is read through."""
    work_dir = tmp_path_factory.mktemp("live-stack")
    agent_link = work_dir / "local-agent.conf"
    logs = work_dir / "logs"
    logs.mkdir()
    stack = start_stack(logs, agent_link, live_stack_env)
    try:
        yield stack, agent_link
    finally:
        stop_stack(stack)


@pytest.fixture
def live_stack(transactional_db, _module_stack, redis_client, local_agent) -> LiveStack:
    """Daphne and a Celery worker on the test database, the built-in local host run by this
    test's ``local_agent`` (the module's stack, see the module docstring)."""
    stack, agent_link = _module_stack
    dead = [process.args[2] for process in stack.processes if process.poll() is not None]
    if dead:
        pytest.fail(f"the module's live stack lost {', '.join(dead)}:\n{stack.logs()}")
    redis_client.delete("celery")  # tasks queued by earlier tests without a worker
    agent_link.unlink(missing_ok=True)
    agent_link.symlink_to(local_agent.config_path)
    return stack

"""A live DevBench stack for end-to-end tests: Daphne and a real Celery worker as subprocesses,
sharing the test database and the session's Redis/Valkey with the test process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
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


@pytest.fixture
def live_stack(transactional_db, tmp_path, redis_client, local_agent):
    """Daphne on a free port and a Celery worker, both on the test database and local host."""
    redis_client.delete("celery")  # tasks queued by earlier tests without a worker
    port = free_port()
    env = stack_env({"DEVBENCH_LOCAL_AGENT_CONFIG": str(local_agent.config_path), "DEVBENCH_LOCAL_HOST": "1"})
    logs = tmp_path / "logs"
    logs.mkdir()
    commands = {
        "daphne": [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                   "devbench_site.asgi:application"],
        "worker": [sys.executable, "-m", "celery", "-A", "devbench_site", "worker", "--pool", "threads",
                   "--concurrency", "4", "-l", "info", "-n", f"test-{port}@%h"],
    }
    processes = []
    for name, command in commands.items():
        with open(logs / f"{name}.log", "w") as log:
            processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    stack = LiveStack(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", processes, logs)
    try:
        wait_for_http(stack.base_url + "/health")
        yield stack
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

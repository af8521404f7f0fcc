"""Daphne alone, without a worker (created benches keep their job queued), on the test database
and Redis: ``running_daphne`` for one test with the settings it needs, ``daphne`` once for the
tests of a module that only open WebSockets and send requests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.live_stack import ROOT, free_port, stack_env, stop_processes, wait_for_http


@contextmanager
def running_daphne(log_dir: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Daphne on a free port with ``env`` on top of the test settings; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "devbench_site.asgi:application"]
    with open(log_dir / f"daphne-{port}.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=stack_env(env or {}), stdout=log, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(base_url + "/health")
        yield base_url
    finally:
        stop_processes([process])


@pytest.fixture(scope="module")
def daphne(django_db_setup, tmp_path_factory) -> Iterator[str]:
    """Daphne alone on the test database, for this module."""
    with running_daphne(tmp_path_factory.mktemp("daphne")) as base_url:
        yield base_url

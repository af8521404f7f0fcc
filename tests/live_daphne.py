"""Daphne alone, without a worker, for the tests of one module that only open WebSockets and
send requests (no job runs): started once per module, on the test database and Redis."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.live_stack import ROOT, free_port, stack_env, wait_for_http


@pytest.fixture(scope="module")
def daphne(django_db_setup, tmp_path_factory):
    """Daphne alone (no worker: nothing here runs a job) on the test database, for this module."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "devbench_site.asgi:application"],
            cwd=ROOT, env=stack_env({}), stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)

"""A pytest plugin (loaded with ``-p`` before Django's settings) that keeps test sessions apart:
without REDIS_URL, each session gets its own embedded Valkey on a private unix socket, and a
SQLite test database gets a private file, so concurrent test runs and a running ``make run``
never share (or stop, or drop) each other's servers and data. Subprocesses the tests start
(Daphne, Celery workers) inherit the environment and use the same ones. It also turns on the
test-only fast password hasher (``DEVBENCH_TEST_FAST_PASSWORD_HASHER``, see settings.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_OWN_DIR: str | None = None
_server = None

# Django's MD5 hasher first, in this process and in the Daphne and worker processes the tests
# start (they inherit the environment): Argon2 is slow by design, and nearly every test makes a
# user. Tests that check the production hasher ask for ``production_password_hashers``.
os.environ.setdefault("DEVBENCH_TEST_FAST_PASSWORD_HASHER", "1")
# The built-in local host simulates VMs in tests, whatever this machine has; the tests of its
# libvirt backend ask for it.
os.environ.setdefault("DEVBENCH_LOCAL_BACKEND", "simulated")

_SESSION_DIR = tempfile.mkdtemp(prefix="devbench-test-")
os.environ.setdefault("DEVBENCH_TEST_DATABASE_NAME", os.path.join(_SESSION_DIR, "test-devbench.sqlite3"))
if not os.environ.get("REDIS_URL"):
    _OWN_DIR = _SESSION_DIR
    os.environ["REDIS_URL"] = f"unix://{_OWN_DIR}/valkey.sock?db=0"
elif os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
    # pytest-xdist's workers share the given Redis server: worker N takes the Nth database after
    # the given one (pytest-django gives each its own test database the same way).
    _worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    _base, _, _db = os.environ["REDIS_URL"].rpartition("/")
    if _db.isdigit() and "//" in _base:
        os.environ["REDIS_URL"] = f"{_base}/{(int(_db) + _worker) % 16}"
    else:
        raise RuntimeError(f"REDIS_URL must end in a database number to run tests in parallel: {_base}/{_db}")


def pytest_configure(config):
    global _server
    if _OWN_DIR is None or _server is not None:
        return
    if getattr(config.option, "numprocesses", None) and "PYTEST_XDIST_WORKER" not in os.environ:
        return  # pytest-xdist's controller runs no test; each worker starts its own server
    from devbench_site import embedded_valkey

    _server = embedded_valkey.start(Path(_OWN_DIR) / "valkey.sock", Path(_OWN_DIR))


def pytest_unconfigure(config):
    global _server
    if _server is not None:
        _server.stop()
        _server = None

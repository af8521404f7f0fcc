"""var/ (SQLite database, secret key, Valkey socket) is private to its owner from the first start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from tests.live_stack import ROOT

FIRST_START = (
    "import django; django.setup()\n"
    "from django.db import connection\n"
    "with connection.cursor() as cursor:\n"
    "    cursor.execute('CREATE TABLE probe (x integer)')\n"
    "    cursor.execute('INSERT INTO probe VALUES (1)')\n"
)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _first_start(var_dir) -> None:
    env = {
        key: value for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "SECRET_KEY", "DEVBENCH_TEST_DATABASE_NAME")
    }
    env.update(DEVBENCH_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="devbench_site.settings")
    subprocess.run([sys.executable, "-c", FIRST_START], cwd=ROOT, env=env, check=True, timeout=60)


def test_first_start_creates_var_dir_database_and_secret_key_private(tmp_path):
    var_dir = tmp_path / "var"
    old_umask = os.umask(0o022)  # the usual umask, which makes new files world-readable
    try:
        _first_start(var_dir)
    finally:
        os.umask(old_umask)
    assert _mode(var_dir) == 0o700
    assert _mode(var_dir / "secret_key") == 0o600
    database = var_dir / "devbench.sqlite3"
    assert _mode(database) == 0o600
    for companion in (var_dir / "devbench.sqlite3-wal", var_dir / "devbench.sqlite3-shm"):
        if companion.exists():
            assert _mode(companion) == 0o600, companion.name


def test_an_open_var_dir_from_an_earlier_start_is_made_private(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir(mode=0o755)
    var_dir.chmod(0o755)
    _first_start(var_dir)
    assert _mode(var_dir) == 0o700

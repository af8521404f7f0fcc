"""Health, deploy checks, security headers and the embedded Valkey with the Channels layer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.db import connection
from django.test import Client

from devbench_site import __version__, embedded_valkey

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_health_ok():
    response = Client().get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["timestamp"].endswith("Z") and "T" in body["timestamp"]


@pytest.mark.django_db(transaction=True)
def test_health_503_when_database_unreachable(tmp_path):
    settings_dict = connection.settings_dict
    saved = dict(settings_dict)
    if connection.vendor == "sqlite":
        settings_dict["NAME"] = str(tmp_path / "missing-dir" / "db.sqlite3")
    else:
        settings_dict["PORT"] = "1"  # nothing listens there
    connection.close()
    try:
        response = Client().get("/health")
    finally:
        connection.close()
        settings_dict.clear()
        settings_dict.update(saved)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["error"] == "database unavailable"


@pytest.mark.django_db
def test_security_headers_on_pages():
    response = Client().get("/login")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_static_assets_are_served_locally():
    login = Client().get("/login").content.decode()
    assert "cdn" not in login.lower()
    assert "/static/vendor/bootstrap/bootstrap.min.css" in login


def test_a_deployment_hashes_passwords_with_argon2():
    """The suite's fast hasher (DEVBENCH_TEST_FAST_PASSWORD_HASHER) is absent where it is unset."""
    env = {key: value for key, value in os.environ.items() if key != "DEVBENCH_TEST_FAST_PASSWORD_HASHER"}
    env["DJANGO_SETTINGS_MODULE"] = "devbench_site.settings"
    script = "import django; django.setup(); from django.conf import settings; print(settings.PASSWORD_HASHERS)"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(["django.contrib.auth.hashers.Argon2PasswordHasher",
                                          "django.contrib.auth.hashers.PBKDF2PasswordHasher"])


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "DEBUG": "0",
        "DEVBENCH_HTTPS": "1",
        "SECRET_KEY": "x7" * 40 + "-production-secret-key-for-the-check",
        "ALLOWED_HOSTS": "devbench.example.com",
        "DEVBENCH_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_embedded_valkey_starts_and_channels_layer_round_trips(tmp_path):
    socket_path = Path("/tmp") / f"devbench-test-{os.getpid()}.sock"  # unix socket paths are short
    server = embedded_valkey.start(socket_path, tmp_path)
    assert server is not None
    try:
        assert embedded_valkey.is_answering(socket_path)
        # A second start finds it running and leaves it alone.
        assert embedded_valkey.start(socket_path, tmp_path) is None

        async def round_trip():
            layer = RedisPubSubChannelLayer(hosts=[{"address": f"unix://{socket_path}"}])
            channel = await layer.new_channel()
            await layer.group_add("bench-1", channel)
            await layer.group_send("bench-1", {"type": "script.output", "data": "hello\n"})
            message = await asyncio.wait_for(layer.receive(channel), timeout=5)
            await layer.flush()
            return message

        assert asyncio.run(round_trip()) == {"type": "script.output", "data": "hello\n"}
    finally:
        server.stop()
    assert not embedded_valkey.is_answering(socket_path)


def _memory_kib(pid: int) -> dict[str, int]:
    """A process's resident (Rss), proportional (Pss) and private (USS) memory, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_unit = line.split()
        fields[name.rstrip(":")] = int(value)
    return {"Rss": fields["Rss"], "Pss": fields["Pss"], "USS": fields["Private_Clean"] + fields["Private_Dirty"]}


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux's /proc/<pid>/smaps_rollup")
def test_prefork_children_share_the_workers_start_up_memory(transactional_db, tmp_path, redis_client):
    """The worker freezes its start-up objects before its prefork pool forks: a child's garbage
    collections then leave them alone, so most of what a child maps stays shared with the parent
    instead of being copied into each child."""
    from tests.live_stack import stack_env, wait_until

    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "devbench_site", "worker", "--pool", "prefork",
             "--concurrency", "2", "-l", "info", "-n", f"gc-{os.getpid()}@%h"],
            cwd=ROOT, env=stack_env({}), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_until(lambda: " ready." in log_path.read_text(), timeout=90, message="the worker to be ready")
        wait_until(lambda: len(_children(worker.pid)) == 2, message="two prefork children")
        time.sleep(3)  # the children's start-up, and the collections it triggers, are over
        for child in _children(worker.pid):
            memory = _memory_kib(child)
            assert memory["USS"] < memory["Rss"] / 4, (child, memory)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()

"""Health, deploy checks, security headers and the embedded Valkey with the Channels layer."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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


def test_the_asgi_application_freezes_its_start_up_objects():
    """Daphne's process moves everything loaded at start-up out of the garbage collector's
    generations, so full collections scan only what requests leave behind, and collects the
    youngest generation less often (benchmark 4)."""
    script = (
        "import gc; import devbench_site.asgi as app; "
        "print(gc.get_freeze_count(), callable(app.application), len(gc.get_objects(generation=2)), "
        "gc.get_threshold()[0])"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    frozen, is_app, oldest, youngest_threshold = result.stdout.split()
    assert is_app == "True"
    assert youngest_threshold == "10000"
    assert int(frozen) > 50_000
    assert int(oldest) < 1_000


def test_a_worker_freezes_its_start_up_objects():
    """A Celery worker does the same, before its pool starts (prefork children inherit it) and
    when it is ready: a full collection of its start-up objects stopped every running job's
    output for 100-250 ms (benchmark 1)."""
    script = (
        "import gc, django; django.setup(); "
        "from celery.signals import worker_init, worker_ready; from devbench_site import celery_app; "
        "before = gc.get_freeze_count(); worker_init.send(sender=None); after_init = gc.get_freeze_count(); "
        "made_later = [object() for _ in range(1000)]; gc.collect(); worker_ready.send(sender=None); "
        "print(before, after_init, gc.get_freeze_count() - after_init, len(gc.get_objects(generation=2)), "
        "gc.get_threshold()[0])"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "devbench_site.settings"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    before, after_init, frozen_when_ready, oldest, youngest_threshold = map(int, result.stdout.split())
    assert before == 0
    assert after_init > 50_000
    assert frozen_when_ready > 0  # what start-up made after worker_init (the list above, at least)
    assert oldest < 1_000
    assert youngest_threshold == 700  # Python's default: a worker's collections stay short

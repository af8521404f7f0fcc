"""The built-in ``local`` host is created once, after migrations, not on each create."""

from __future__ import annotations

import json

import pytest
from django.core.management.sql import emit_post_migrate_signal

from benches.models import DevBench, Host


def test_the_migrated_database_has_the_local_host(db):
    host = Host.objects.get(name="local")
    assert host.kind == Host.Kind.LOCAL and host.enabled


@pytest.mark.django_db(transaction=True)
def test_a_flushed_database_has_the_local_host_again():
    # pytest-django flushes after each transactional test; Django's flush sends post_migrate.
    assert Host.objects.filter(name="local", kind=Host.Kind.LOCAL).exists()


def test_migrating_creates_no_local_host_when_turned_off(db, settings):
    Host.objects.filter(name="local").delete()
    settings.DEVBENCH_LOCAL_HOST = False
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert not Host.objects.filter(name="local").exists()
    settings.DEVBENCH_LOCAL_HOST = True
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert Host.objects.filter(name="local").exists()


def test_creating_a_bench_does_not_recreate_a_deleted_local_host(user_client, settings, tmp_path):
    settings.DEVBENCH_LOCAL_AGENT_CONFIG = tmp_path / "local-agent.conf"
    Host.objects.filter(name="local").delete()
    response = user_client.post("/create-devbench", data=json.dumps({"name": "vm"}), content_type="application/json")
    assert (response.status_code, response.json()) == (
        503, {"error": "No host has free capacity for a new DevBench; ask an admin"},
    )
    assert not Host.objects.exists() and not DevBench.objects.exists()

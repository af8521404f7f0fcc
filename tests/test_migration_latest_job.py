"""Migration 0005 fills each existing bench's latest job with its newest job."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("benches", "0004_devbench_name_unique_ci")]
AFTER = [("benches", "0005_devbench_latest_job")]


def test_existing_benches_get_their_newest_job_and_benches_without_jobs_none(user):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    DevBench, Host, Job = (apps.get_model("benches", name) for name in ("DevBench", "Host", "Job"))
    host = Host.objects.get(name="local")
    with_jobs = DevBench.objects.create(user_id=user.pk, host=host, name="old", actual_name="alice_old")
    without = DevBench.objects.create(user_id=user.pk, host=host, name="bare", actual_name="alice_bare")
    common = {"bench": with_jobs, "original_bench_id": with_jobs.pk, "bench_name": "old", "vm_name": "alice_old",
              "owner_id": user.pk, "host": host}
    Job.objects.create(command="create", **common)
    newest = Job.objects.create(command="stop", **common)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    DevBench = apps.get_model("benches", "DevBench")
    assert DevBench.objects.get(pk=with_jobs.pk).latest_job_id == newest.pk
    assert DevBench.objects.get(pk=without.pk).latest_job_id is None
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

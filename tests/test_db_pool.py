"""PostgreSQL connections come from a pool per process (``DEVBENCH_DB_POOL_SIZE``), and a running
job gives its connection back while its remote command runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from django.conf import settings
from django.db import connection

from benches import services
from benches.models import Job
from devbench_site.db_connections import give_back_connection
from tests.conftest import DB_POOL_OPTIONS, install_db_pool

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def production_pool():
    """This process's connections from the pool the settings configure, as in Daphne and workers."""
    if connection.vendor != "postgresql":
        pytest.skip("the pool is PostgreSQL's (CI runs the suite there)")
    assert DB_POOL_OPTIONS is not None, "DEVBENCH_DB_POOL_SIZE=0 in the environment?"
    install_db_pool(DB_POOL_OPTIONS)
    yield DB_POOL_OPTIONS
    install_db_pool(None)


def _in_a_new_thread(target) -> None:
    """Run ``target`` in a thread of its own, as ASGI runs each request, and end it as Django
    ends a request: the thread's connection is closed (to the pool, with one)."""

    def run():
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_requests_in_new_threads_reuse_one_pooled_connection(production_pool):
    assert production_pool["max_size"] == settings.DEVBENCH_DB_POOL_SIZE
    pids: list[int] = []
    for _ in range(10):
        _in_a_new_thread(lambda: pids.append(_backend_pid()))
    assert len(pids) == 10
    assert len(set(pids)) == 1  # without the pool: 10 server processes, one per request


def test_pool_size_zero_turns_the_pool_off():
    code = ("import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default'].get('OPTIONS', {}).get('pool'))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "devbench_site.settings",
           "DATABASE_URL": "postgres://devbench@127.0.0.1:5432/devbench"}

    def pool_option(size: str) -> str:
        run = subprocess.run([sys.executable, "-c", code], env={**env, "DEVBENCH_DB_POOL_SIZE": size},
                             capture_output=True, text=True, timeout=60, check=True)
        return run.stdout.strip()

    assert pool_option("0") == "None"
    assert pool_option("7") == "{'min_size': 0, 'max_size': 7, 'max_idle': 300, 'timeout': 5.0}"


def test_give_back_connection_keeps_a_transactions_connection():
    from django.db import transaction

    with transaction.atomic():
        pid = _backend_pid()
        give_back_connection()
        assert connection.connection is not None
        assert _backend_pid() == pid
    give_back_connection()
    assert connection.connection is None


@pytest.fixture
def pool_of_two(production_pool):
    """This process's pool shrunk to two connections, lent for at most 1 s."""
    install_db_pool({**production_pool, "max_size": 2, "timeout": 1.0})


def test_more_running_jobs_than_pooled_connections_all_finish(ssh_agent, make_user, pool_of_two):
    _host, control = ssh_agent("hv1")
    control.configure(step_delay=0.25)  # each create runs ~3 s on its host, far beyond the pool's 1 s wait
    users = [make_user(name) for name in ("ann", "bob", "cid")]
    jobs = [Job.objects.get(bench=services.create_bench(user=user, name="box")) for user in users]
    connection.close()  # this thread's back in the pool too

    threads = [threading.Thread(target=_run_job_as_worker, args=(job.pk,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    finished = {job.bench_name + "/" + job.owner.username: (job.state, job.error)
                for job in Job.objects.select_related("owner").filter(pk__in=[job.pk for job in jobs])}
    # Holding their connections while their commands ran, the third job would have waited for one
    # longer than the pool lends (PoolTimeout: the job fails with "database unavailable").
    assert finished == {"box/ann": ("succeeded", ""), "box/bob": ("succeeded", ""), "box/cid": ("succeeded", "")}


def _run_job_as_worker(job_id: int) -> None:
    """The Celery task's body in a worker thread; Celery closes the thread's connection after it."""
    try:
        services.execute_job(job_id)
    finally:
        connection.close()

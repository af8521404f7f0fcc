"""Fixtures for bench tests: the built-in local host running the real agent (simulated backend),
SSH hosts on the real sshd, running queued jobs the way a worker does (the Celery task), and
benches built as rows for the tests that only ask who may do what with one."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.utils import timezone

from benches import services, tasks
from benches.models import DevBench, Host, Job
from benches.provisioning import protocol, transport
from tests.sshd import make_agent_script


class AgentControl:
    """Rewrites the agent's config file that a host's script reads."""

    def __init__(self, tmp_dir: Path, name: str):
        self.tmp_dir = tmp_dir
        self.name = name
        self.script = make_agent_script(tmp_dir, script_name=name)
        self.config_path = tmp_dir / f"{name}.conf"
        self.state_dir = tmp_dir / f"{name}.state"

    def configure(self, **config) -> None:
        make_agent_script(self.tmp_dir, script_name=self.name, **config)


@pytest.fixture
def local_agent(tmp_path, settings) -> AgentControl:
    """The built-in local host, its agent config in a temp dir (no delay unless configured)."""
    control = AgentControl(tmp_path, "local-agent")
    settings.DEVBENCH_LOCAL_HOST = True
    settings.DEVBENCH_LOCAL_AGENT_CONFIG = control.config_path
    services.ensure_local_host()
    return control


@pytest.fixture
def ssh_agent(tmp_path, sshd_host, settings) -> Callable[..., tuple[Host, AgentControl]]:
    """Register an SSH host on the real sshd whose script is an agent wrapper under our control."""
    settings.DEVBENCH_LOCAL_HOST = False

    def make(name: str = "hv1", *, pin: bool = True, **host_fields) -> tuple[Host, AgentControl]:
        control = AgentControl(tmp_path, f"agent-{name}")
        host = services.register_host(
            name=name,
            address=sshd_host.host,
            port=sshd_host.port,
            username=sshd_host.username,
            identity_file=str(sshd_host.client_key_path),
            script_path=str(control.script),
            known_hosts_file=str(sshd_host.known_hosts_path) if pin else "",
            **host_fields,
        )
        return host, control

    return make


def run_queued_jobs() -> list[Job]:
    """Run every queued job, oldest first, through the Celery task function (as a worker would)."""
    ran = []
    while True:
        job = Job.objects.filter(state=Job.State.QUEUED).order_by("created_at", "id").first()
        if job is None:
            return ran
        tasks.run_job(job.pk)
        job.refresh_from_db()
        ran.append(job)


@pytest.fixture
def run_jobs(transactional_db) -> Callable[[], list[Job]]:
    """Run the queued jobs; a test that runs them is transactional, since a job's output is
    stored through the flusher thread's own database connection, which sees only committed rows."""
    return run_queued_jobs


def build_active_bench(user, name: str, *, host: Host | None = None, ssh_port: int = 6000) -> DevBench:
    """An active bench and the succeeded create job that made it, as rows: what a create leaves
    behind, without running one (for tests of routes and permissions, not of the create)."""
    host = host or Host.objects.get(name="local")
    actual_name = protocol.vm_name_for(user.username, name)
    bench = DevBench.objects.create(user=user, host=host, name=name, actual_name=actual_name,
                                    status=DevBench.Status.ACTIVE, ssh_info=str(ssh_port), vnc_info=str(ssh_port + 1))
    now = timezone.now()
    bench.latest_job = Job.objects.create(
        bench=bench, original_bench_id=bench.pk, bench_name=name, vm_name=actual_name, owner=user, requested_by=user,
        host=host, command=Job.Command.CREATE, state=Job.State.SUCCEEDED, exit_code=0, started_at=now, finished_at=now)
    bench.save(update_fields=["latest_job"])
    return bench


def bench_named(user, name: str) -> DevBench:
    return DevBench.objects.get(user=user, name=name)


@pytest.fixture
def fresh_ssh_connections():
    """No SSH connection kept from an earlier test, and none left for the next."""
    transport.close_all()
    yield
    transport.close_all()


def wait_for_status(bench: DevBench, status: str, timeout: float = 30) -> DevBench:
    """``bench`` reloaded once its status is ``status`` (for tests where a live worker runs jobs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bench.refresh_from_db()
        if bench.status == status:
            return bench
        time.sleep(0.1)
    raise AssertionError(f"{bench.name} stayed {bench.status}, not {status}")

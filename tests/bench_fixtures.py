"""Fixtures for bench tests: the built-in local host running the real agent (simulated backend),
SSH hosts on the real sshd, and running queued jobs the way a worker does (the Celery task)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from benches import services, tasks
from benches.models import DevBench, Host, Job
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
def run_jobs() -> Callable[[], list[Job]]:
    return run_queued_jobs


def bench_named(user, name: str) -> DevBench:
    return DevBench.objects.get(user=user, name=name)

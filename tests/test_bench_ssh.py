"""Benches on a real OpenSSH sshd (loopback, temporary keys) running the bundled agent."""

from __future__ import annotations

import io
import subprocess
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from benches import selectors, services
from benches.models import DevBench, Host, Job
from benches.provisioning import transport

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_ssh_connections")]

OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3bh8d7gd9hX4u3iD4y1hQ+3cwbWfm3KOqUNIr+k0fY"


# The built-in local host is there in every test database, with no benches: the sync opens nothing to it.
NOTHING_TO_SYNC = {"checked": 0, "changed": 0, "commands": 0}


def accepted_connections(sshd_host) -> int:
    return sshd_host.log_path.read_text().count("Accepted publickey")


def test_addhost_pins_key_from_known_hosts(sshd_host, tmp_path):
    out = io.StringIO()
    call_command(
        "addhost", "hv1", "--ssh", f"{sshd_host.username}@{sshd_host.host}:{sshd_host.port}",
        "--identity", str(sshd_host.client_key_path), "--script", "/opt/devbench/agent",
        "--known-hosts", str(sshd_host.known_hosts_path), "--capacity", "7", "--public-host", "hv1.example.com",
        "--jump-host", "jump@gw.example.com", stdout=out,
    )
    host = Host.objects.get(name="hv1")
    assert host.host_key == sshd_host.host_public_key
    assert (host.port, host.capacity, host.public_host, host.jump_host) == (
        sshd_host.port, 7, "hv1.example.com", "jump@gw.example.com")
    assert "pinned from --known-hosts" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--ssh", "nobody"], "--ssh must look like USER@HOST or USER@HOST:PORT"),
     (["--ssh", "a@b:99999"], "The SSH port must be between 1 and 65535"),
     (["--ssh", "a@b", "--script", "/x;id"], "The script path may contain only letters, digits and . _ / ~ + -"),
     (["--ssh", "a@b", "--identity", "/nonexistent/key"], "Cannot read the identity file: No such file or directory")],
)
def test_addhost_rejects_bad_input(sshd_host, args, message):
    base = {"--ssh": "a@b", "--identity": str(sshd_host.client_key_path), "--script": "/opt/agent"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [item for pair in base.items() for item in pair]
    with pytest.raises(CommandError) as info:
        call_command("addhost", "hvx", *argv, stdout=io.StringIO())
    assert str(info.value) == message
    assert not Host.objects.filter(name="hvx").exists()


def test_create_over_ssh_reaches_active(ssh_agent, user, run_jobs):
    host, control = ssh_agent("hv1")
    bench = services.create_bench(user=user, name="remote")
    [job] = run_jobs()
    bench.refresh_from_db()
    assert (job.state, job.exit_code, bench.status) == ("succeeded", 0, "active")
    assert bench.host == host
    assert (control.state_dir / "vms" / "alice_remote.json").exists()
    assert "SSH Port: " in selectors.stored_log_text(job)


def test_machine_format_over_ssh(ssh_agent, user, run_jobs):
    _host, control = ssh_agent("hv1")
    control.configure(output_format="machine", host_ip="192.0.2.10")
    bench = services.create_bench(user=user, name="machine")
    run_jobs()
    bench.refresh_from_db()
    assert bench.status == "active" and bench.ssh_info and bench.vnc_info


def test_first_connection_pins_host_key(ssh_agent, user, run_jobs, sshd_host):
    host, _control = ssh_agent("hv1", pin=False)
    assert host.host_key == ""
    services.create_bench(user=user, name="tofu")
    run_jobs()
    host.refresh_from_db()
    assert host.host_key == sshd_host.host_public_key


def test_host_key_mismatch_fails_job_and_runs_nothing(ssh_agent, user, run_jobs):
    host, control = ssh_agent("hv1")
    Host.objects.filter(pk=host.pk).update(host_key=OTHER_KEY)
    bench = services.create_bench(user=user, name="mitm")
    [job] = run_jobs()
    bench.refresh_from_db()
    assert job.state == "failed"
    assert bench.status == "error"
    assert bench.last_error.startswith("Host key verification failed for hv1")
    assert "which is not the pinned key" in selectors.stored_log_text(job)
    assert not (control.state_dir / "vms").exists() or not any((control.state_dir / "vms").iterdir())


def test_unreachable_host_is_a_clear_job_error(ssh_agent, user, run_jobs, sshd_host):
    host, _control = ssh_agent("hv1")
    Host.objects.filter(pk=host.pk).update(port=1)  # nothing listens there
    bench = services.create_bench(user=user, name="nowhere")
    [job] = run_jobs()
    bench.refresh_from_db()
    assert job.state == "failed" and job.exit_code is None
    assert bench.status == "error"
    assert bench.last_error.startswith("Could not connect to host hv1 (127.0.0.1:1) after 3 attempts")


def test_cancel_over_ssh_kills_the_remote_process(ssh_agent, user):
    _host, control = ssh_agent("hv1")
    control.configure(hang_commands=["create"])
    bench = services.create_bench(user=user, name="stuck")
    job = Job.objects.get(bench=bench)
    worker = threading.Thread(target=services.execute_job, args=(job.pk,))
    worker.start()
    pattern = "hostagent/devbench-agent create alice_stuck"
    for _ in range(200):
        if subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0 and job.chunks.exists():
            break
        time.sleep(0.05)
    else:
        pytest.fail("the remote create never started")
    services.cancel_job(job=job, actor=user)
    worker.join(timeout=20)
    assert not worker.is_alive()
    job.refresh_from_db()
    assert job.state == "cancelled"
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 1


def test_timeout_over_ssh(ssh_agent, user, run_jobs):
    _host, control = ssh_agent("hv1", command_timeout=2)
    control.configure(hang_commands=["create"])
    bench = services.create_bench(user=user, name="slow")
    [job] = run_jobs()
    bench.refresh_from_db()
    assert job.state == "timed_out"
    assert bench.last_error == "The create command timed out after 2 seconds"


def test_delete_over_ssh(ssh_agent, user, run_jobs):
    _host, control = ssh_agent("hv1")
    bench = services.create_bench(user=user, name="bye")
    run_jobs()
    services.delete_bench(bench=bench, actor=user)
    run_jobs()
    assert not DevBench.objects.filter(pk=bench.pk).exists()
    assert not (control.state_dir / "vms" / "alice_bye.json").exists()


def test_status_sync_uses_one_connection_per_host(ssh_agent, user, make_user, run_jobs, sshd_host, settings):
    settings.DEVBENCH_DEFAULT_QUOTA = 10
    _host, control = ssh_agent("hv1")
    bob = make_user("bob")
    for index in range(4):
        services.create_bench(user=user, name=f"a{index}")
        services.create_bench(user=bob, name=f"b{index}")
    run_jobs()
    # Stop two VMs behind DevBench's back; the sync must notice.
    for name in ("alice_a1", "bob_b2"):
        subprocess.run([str(control.script), "stop", name], check=True, capture_output=True)
    transport.close_all()
    before = accepted_connections(sshd_host)
    result = services.sync_all_statuses()
    assert result == {"hv1": {"checked": 8, "changed": 2, "commands": 1}, "local": NOTHING_TO_SYNC}
    time.sleep(0.2)
    assert accepted_connections(sshd_host) - before == 1
    statuses = dict(DevBench.objects.values_list("actual_name", "status"))
    assert statuses["alice_a1"] == "inactive" and statuses["bob_b2"] == "inactive"
    assert statuses["alice_a0"] == "active"


def test_status_sync_without_list_support_still_uses_one_connection(ssh_agent, user, run_jobs, sshd_host, tmp_path):
    host, control = ssh_agent("hv1")
    for index in range(3):
        services.create_bench(user=user, name=f"v{index}")
    run_jobs()
    legacy = tmp_path / "legacy-agent"
    legacy.write_text(f'#!/bin/sh\n[ "$1" = list ] && exit 2\nexec {control.script} "$@"\n')
    legacy.chmod(0o755)
    Host.objects.filter(pk=host.pk).update(script_path=str(legacy))
    subprocess.run([str(control.script), "stop", "alice_v0"], check=True, capture_output=True)
    transport.close_all()
    before = accepted_connections(sshd_host)
    result = services.sync_all_statuses()
    assert result == {"hv1": {"checked": 3, "changed": 1, "commands": 4}, "local": NOTHING_TO_SYNC}
    time.sleep(0.2)
    assert accepted_connections(sshd_host) - before == 1


def test_a_connection_closed_before_the_command_starts_is_a_clear_job_error(ssh_agent):
    """Another job's failure may close the host's shared connection between this job's connect()
    and its command: the job fails with the reason, nothing runs, and nothing is left running."""
    host, _control = ssh_agent("hv1")
    ssh = transport.SSHTransport(host)
    with pytest.raises(transport.TransportError) as info:
        ssh._execute("true", transport.OutputStreams(on_output=lambda stream, text: None), hard_timeout=5)
    assert str(info.value) == "The connection to host hv1 closed before the command started"

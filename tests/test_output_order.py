"""A job's log keeps stdout and stderr lines in the order the remote side wrote them, as far as
SSH carries that order (one channel, one message after another)."""

from __future__ import annotations

import pytest

from benches import services
from benches.models import Job, JobChunk
from benches.provisioning import transport

pytestmark = pytest.mark.django_db(transaction=True)

LINES = 60


@pytest.fixture(autouse=True)
def fresh_connections():
    transport.close_all()
    yield
    transport.close_all()


def stored_lines(job: Job) -> list[tuple[str, str]]:
    """The job's stored log as (stream, line) in seq order."""
    lines = []
    for chunk in JobChunk.objects.filter(job=job).order_by("seq"):
        lines += [(chunk.stream, line) for line in chunk.data.splitlines()]
    return lines


def test_alternating_stdout_and_stderr_lines_keep_their_order(ssh_agent, user, run_jobs, tmp_path):
    host, _control = ssh_agent("hv1")
    script = tmp_path / "interleaving-script"
    # Each line is its own write (sh's echo). Within a pair stderr follows stdout at once, so the
    # two arrive back to back, where separate reader threads could swap them; sshd sends what it
    # reads from the stdout pipe before what it reads from stderr, so the pair's order is kept on
    # the wire. The pause after each pair keeps sshd from reading the next stdout line together
    # with this stderr line, which no client could put back in order (docs/host-protocol.md).
    script.write_text(
        "#!/bin/sh\n"
        f"i=1; while [ $i -le {LINES} ]; do echo \"out $i\"; echo \"err $i\" >&2; "
        "sleep 0.05; i=$((i + 1)); done\n"
        "echo 'SSH_PORT=6010'; echo 'VNC_PORT=5010'\n"
    )
    script.chmod(0o755)
    host.script_path = str(script)
    host.save(update_fields=["script_path"])
    services.create_bench(user=user, name="web")
    [job] = run_jobs()
    expected = [line for i in range(1, LINES + 1) for line in (("stdout", f"out {i}"), ("stderr", f"err {i}"))]
    assert stored_lines(job) == [*expected, ("stdout", "SSH_PORT=6010"), ("stdout", "VNC_PORT=5010")]


def test_a_nul_character_in_the_output_is_stored_as_a_replacement_character(ssh_agent, user, run_jobs, tmp_path):
    """PostgreSQL's text columns refuse NUL: the log shows U+FFFD there and the job's output is
    stored, not retried forever."""
    host, _control = ssh_agent("hv1")
    script = tmp_path / "nul-script"
    script.write_text("#!/bin/sh\nprintf 'before\\000after\\n'\necho 'SSH_PORT=6010'; echo 'VNC_PORT=5010'\n")
    script.chmod(0o755)
    host.script_path = str(script)
    host.save(update_fields=["script_path"])
    services.create_bench(user=user, name="web")
    [job] = run_jobs()
    assert stored_lines(job) == [
        ("stdout", "before\ufffdafter"), ("stdout", "SSH_PORT=6010"), ("stdout", "VNC_PORT=5010")]
    assert job.bench.status == "active"

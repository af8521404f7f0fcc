"""Jobs, the record of every remote command: queue one, run it on its host with its output
streamed (``execute_job``, in a worker), apply its outcome to the bench, and fail the jobs whose
worker vanished (``sweep_stale_jobs``)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.selectors import ssh_public_keys_for as owner_public_keys
from devbench_site.db_connections import give_back_connection

from ..models import DevBench, Host, Job, Snapshot
from ..provisioning import messages, protocol
from ..provisioning.publishing import publisher, user_group
from ..provisioning.streaming import JobOutputStream
from ..provisioning.transport import CommandResult, TransportError, transport_for
from ..ssh_config import vm_username
from .hosts import remember_learned_host_key

logger = logging.getLogger(__name__)

Status = DevBench.Status
Command = Job.Command
State = Job.State

SNAPSHOT_COMMANDS = (Command.SNAPSHOT, Command.RESTORE, Command.DELETE_SNAPSHOT)
MUTATING_COMMANDS = (Command.CREATE, Command.DELETE, Command.ACTIVATE, Command.START, Command.STOP, *SNAPSHOT_COMMANDS)


WORKER_LOST_MESSAGE = (
    "The worker running this job stopped before it finished. The command may have had effects on "
    "the host, so it was not run again; check the status or delete the bench."
)


def new_job(*, bench: DevBench, command: str, actor: User | None, argument: str = "") -> Job:
    """A queued job for ``bench`` (``argument``: the snapshot of a snapshot command), recorded as
    the bench's latest."""
    job = Job.objects.create(
        argument=argument,
        bench=bench,
        original_bench_id=bench.pk,
        bench_name=bench.name,
        vm_name=bench.actual_name,
        owner_id=bench.user_id,
        requested_by=actor,
        host_id=bench.host_id,
        command=command,
    )
    DevBench.objects.filter(pk=bench.pk).update(latest_job=job)
    bench.latest_job = job
    return job


def dispatch(job: Job) -> None:
    from ..tasks import run_job

    transaction.on_commit(lambda: run_job.delay(job.pk))


def active_job(bench: DevBench) -> Job | None:
    return bench.jobs.filter(state__in=Job.ACTIVE_STATES, command__in=MUTATING_COMMANDS).order_by("created_at").first()


def finish_without_running(job: Job, state: str, error: str) -> None:
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(state=state, error=error, finished_at=now)
    job.state, job.error, job.finished_at = state, error, now
    if job.owner_id:
        payload = messages.script_complete(job)
        transaction.on_commit(lambda: publish(job.owner_id, [payload]))


def publish(user_id: int | None, payloads: list[dict]) -> None:
    if user_id:
        publisher.send(user_group(user_id), payloads)


def execute_job(job_id: int) -> Job | None:
    """Run a queued job on its host, streaming its output; apply the outcome to the bench.

    A job found ``running`` was started by a worker that died: its command may have had
    effects, so it is marked failed rather than run again.
    """
    try:
        job = Job.objects.select_related("bench__user", "bench__image", "host").get(pk=job_id)
    except Job.DoesNotExist:
        return None
    if job.state == State.RUNNING:
        _fail_lost_job(job)
        return job
    if job.state != State.QUEUED:
        return job
    bench = job.bench
    if bench is None or job.host is None:
        finish_without_running(job, State.CANCELLED, "The DevBench no longer exists")
        return job
    # Claim the job: only one worker may move it from queued to running.
    now = timezone.now()
    if job.command == Command.CREATE and not bench.actual_name:
        bench.actual_name = protocol.vm_name_for(bench.user.username, bench.name)
        DevBench.objects.filter(pk=bench.pk).update(actual_name=bench.actual_name)
    claimed = Job.objects.filter(pk=job.pk, state=State.QUEUED).update(
        state=State.RUNNING, started_at=now, vm_name=bench.actual_name
    )
    if not claimed:
        return job
    job.state, job.started_at, job.vm_name = State.RUNNING, now, bench.actual_name
    result, error = run_remote(job, job.host, bench.actual_name)
    complete_job(job, bench, result, error)
    return job


def command_line_for(job: Job, host: Host, vm_name: str) -> str:
    """The job's command line: a create carries the options the host's agent takes (its image,
    size, the VM's user and keys), a snapshot command its snapshot. ProtocolError when an
    argument breaks the protocol's rules."""
    options = None
    if job.command == Command.CREATE and job.bench is not None:
        options = create_options(job.bench, host)
    return protocol.build_command(
        host.script_path, job.command, vm_name, snapshot=job.argument, create_options=options
    )


def create_options(bench: DevBench, host: Host) -> protocol.CreateOptions:
    """What a create tells the host's agent, as far as its capabilities go (docs/host-protocol.md)."""
    capabilities = set(host.capabilities or [])
    options: dict = {}
    if "images" in capabilities and bench.image is not None:
        options["image_id"] = bench.image.image_id
    if "plans" in capabilities and bench.vcpus:
        options.update(vcpus=bench.vcpus, memory_mib=bench.memory_mib, disk_gib=bench.disk_gib)
    if "ssh-keys" in capabilities:
        options["user"] = vm_username(bench.user)
        options["ssh_keys"] = tuple(owner_public_keys(bench.user)) + ((bench.public_key,) if bench.public_key else ())
    return protocol.CreateOptions(**options)


def run_remote(job: Job, host: Host, vm_name: str) -> tuple[CommandResult | None, str]:
    """Run the job's command; returns the result, or None and the reason it could not run."""
    try:
        command_line = command_line_for(job, host, vm_name)
    except protocol.ProtocolError as exc:
        return None, str(exc)

    transport = transport_for(host)
    timeout = _timeout_for(job, host)
    with JobOutputStream(job) as output:
        give_back_connection()  # the output is stored by the flusher; the command may run for minutes
        try:
            result, error = (
                transport.run(
                    command_line, on_output=output.write, timeout=timeout, should_cancel=output.cancel_requested
                ),
                "",
            )
        except TransportError as exc:  # unreachable, refused, dropped, or a host-key mismatch
            output.write("stderr", f"{exc}\n")
            result, error = None, str(exc)
        finally:
            remember_learned_host_key(host, transport)
    job.last_seq = output.seq
    return result, error


def _outcome_state(result: CommandResult | None) -> str:
    if result is None:
        return State.FAILED
    if result.cancelled:
        return State.CANCELLED
    if result.timed_out:
        return State.TIMED_OUT
    return State.SUCCEEDED if result.exit_code == 0 else State.FAILED


def _timeout_for(job: Job, host: Host) -> int:
    """Seconds a job's command may run: the status timeout, or the host's command timeout."""
    return settings.DEVBENCH_STATUS_TIMEOUT if job.command == Command.STATUS else host.command_timeout


def _failure_reason(job: Job, result: CommandResult | None, error: str, host: Host) -> str:
    if error:
        return error
    assert result is not None
    if result.cancelled:
        return f"The {job.command} command was cancelled"
    if result.timed_out:
        return f"The {job.command} command timed out after {_timeout_for(job, host)} seconds"
    last_line = next((line for line in reversed(result.stderr.strip().splitlines()) if line.strip()), "")
    reason = f"The {job.command} command failed with exit code {result.exit_code}"
    return f"{reason}: {last_line.strip()}" if last_line else reason


def complete_job(job: Job, bench: DevBench, result: CommandResult | None, error: str) -> None:
    state = _outcome_state(result)
    reason = "" if state == State.SUCCEEDED else _failure_reason(job, result, error, job.host)
    now = timezone.now()
    job.state, job.finished_at, job.error = state, now, reason
    job.exit_code = result.exit_code if result is not None else None
    Job.objects.filter(pk=job.pk).update(
        state=state, finished_at=now, error=reason, exit_code=job.exit_code, last_seq=job.last_seq
    )
    outgoing = [messages.script_complete(job)]
    bench_gone = _apply_outcome(job, bench, result, state, reason)
    if bench_gone:
        outgoing.append(messages.status_update(bench, status="deleted", job=job))
    else:
        outgoing.append(messages.status_update(bench, job=job))
    publish(job.owner_id, outgoing)
    if bench_gone:
        _release_owner_if_deleting(bench.user_id)


def _apply_outcome(job: Job, bench: DevBench, result: CommandResult | None, state: str, reason: str) -> bool:
    """Update the bench from a finished job. Returns True when the bench row was deleted."""
    fields = ["status", "last_error", "updated_at"]
    if job.command == Command.CREATE:
        if state == State.SUCCEEDED:
            try:
                info = protocol.parse_create_output(result.stdout)
            except protocol.ProtocolError as exc:
                bench.status, bench.last_error = Status.ERROR, str(exc)
            else:
                bench.status, bench.last_error = Status.ACTIVE, ""
                bench.ssh_info, bench.vnc_info, bench.vm_ip = str(info.ssh_port), str(info.vnc_port), info.vm_ip
                fields += ["ssh_info", "vnc_info", "vm_ip"]
        else:
            bench.status, bench.last_error = Status.ERROR, reason
    elif job.command == Command.DELETE:
        if state == State.SUCCEEDED:
            DevBench.objects.filter(pk=bench.pk).delete()
            return True
        bench.status, bench.last_error = Status.ERROR, f"Delete failed, the VM may still exist: {reason}"
    elif job.command == Command.STATUS:
        bench.status = protocol.parse_status_output(result.stdout, result.exit_code) if result else Status.UNKNOWN
        bench.last_error = reason
        # A status check never overrides a delete that started while it ran.
        bench.updated_at = timezone.now()
        DevBench.objects.filter(pk=bench.pk).exclude(status=Status.DELETING).update(
            status=bench.status, last_error=bench.last_error, updated_at=bench.updated_at
        )
        return False
    elif job.command in SNAPSHOT_COMMANDS:
        _apply_snapshot_outcome(job, bench, result, state, reason)
    else:  # activate, start, stop
        if state == State.SUCCEEDED:
            bench.status = Status.INACTIVE if job.command == Command.STOP else Status.ACTIVE
            bench.last_error = ""
        else:
            bench.status, bench.last_error = Status.UNKNOWN, reason
    _save_bench_fields(bench, fields)
    return False


def _apply_snapshot_outcome(job: Job, bench: DevBench, result: CommandResult | None, state: str, reason: str) -> None:
    """A snapshot taken or deleted is recorded; a restore leaves the VM as the agent says (stopped)."""
    if state != State.SUCCEEDED:
        bench.last_error = reason
        if job.command == Command.RESTORE:  # the VM may have been stopped before the restore failed
            bench.status = Status.UNKNOWN
        return
    bench.last_error = ""
    if job.command == Command.SNAPSHOT:
        Snapshot.objects.get_or_create(
            bench_id=bench.pk, name=job.argument, defaults={"created_by_id": job.requested_by_id}
        )
    elif job.command == Command.DELETE_SNAPSHOT:
        Snapshot.objects.filter(bench_id=bench.pk, name=job.argument).delete()
    else:
        bench.status = protocol.parse_status_output(result.stdout, result.exit_code) if result else Status.UNKNOWN


def _save_bench_fields(bench: DevBench, fields: list[str]) -> None:
    """Store some of a bench's fields; a row deleted meanwhile is left alone, not an error."""
    bench.updated_at = timezone.now()
    DevBench.objects.filter(pk=bench.pk).update(**{name: getattr(bench, name) for name in fields})


def _fail_lost_job(job: Job) -> int:
    """Mark a running job whose worker died as failed (not rerun). Returns 1, or 0 when the job
    had finished meanwhile."""
    now = timezone.now()
    changed = Job.objects.filter(pk=job.pk, state=State.RUNNING).update(
        state=State.FAILED, error=WORKER_LOST_MESSAGE, finished_at=now
    )
    if not changed:
        return 0
    job.state, job.error, job.finished_at = State.FAILED, WORKER_LOST_MESSAGE, now
    bench = job.bench
    outgoing = [messages.script_complete(job)]
    if bench is not None and job.command in MUTATING_COMMANDS:
        bench.status = Status.ERROR if job.command in (Command.CREATE, Command.DELETE) else Status.UNKNOWN
        bench.last_error = WORKER_LOST_MESSAGE
        _save_bench_fields(bench, ["status", "last_error", "updated_at"])
        outgoing.append(messages.status_update(bench, job=job))
    publish(job.owner_id, outgoing)
    logger.warning("job %s (%s %s) failed: its worker stopped", job.pk, job.command, job.vm_name)
    return 1


def sweep_stale_jobs() -> int:
    """Fail jobs whose worker vanished, so no bench stays creating for ever.

    A running job's worker refreshes ``heartbeat_at`` every few seconds; one silent for
    ``DEVBENCH_JOB_HEARTBEAT_TIMEOUT`` seconds died (killed, out of memory, host lost). A job
    queued for longer than ``DEVBENCH_QUEUED_JOB_TTL`` was never picked up. Returns how many
    jobs were failed.
    """
    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=settings.DEVBENCH_JOB_HEARTBEAT_TIMEOUT)
    failed = 0
    silent = Job.objects.select_related("bench").filter(state=State.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    for job in silent:
        failed += _fail_lost_job(job)
    stale_queued = Job.objects.select_related("bench").filter(
        state=State.QUEUED, created_at__lt=now - timezone.timedelta(seconds=settings.DEVBENCH_QUEUED_JOB_TTL)
    )
    for job in stale_queued:
        finish_without_running(job, State.FAILED, "No worker picked up this job in time")
        if job.bench_id and job.command == Command.CREATE:
            DevBench.objects.filter(pk=job.bench_id, actual_name="").update(
                status=Status.ERROR, last_error="No worker picked up the create job in time"
            )
        failed += 1
    return failed


def _release_owner_if_deleting(user_id: int) -> None:
    from accounts.services import purge_user_if_released

    user = User.objects.filter(pk=user_id, deletion_requested_at__isnull=False).first()
    if user is not None:
        purge_user_if_released(user)

"""Bench actions (writes): create, the remote commands, delete, cancel, status sync, hosts.

The seed's routes, the REST API, the admin panel, the consumers and the Celery tasks all call
these functions. Remote commands run as Jobs: queued here, executed by ``execute_job`` in a
worker (or inline for a status check), their output stored and streamed as it arrives.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import paramiko
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from devbench_site.db_connections import give_back_connection
from devbench_site.errors import Conflict, InvalidInput, NotFound, RateLimited, Unavailable
from devbench_site.rate_limits import FixedWindowCounter

from . import selectors
from .models import BENCH_NAME_MAX_LENGTH, DevBench, Host, Job
from .provisioning import host_keys, messages, protocol
from .provisioning.start_slots import job_start_slots
from .provisioning.streaming import JobOutputStream, publisher, user_group
from .provisioning.transport import CommandResult, TransportError, transport_for

logger = logging.getLogger(__name__)

Status = DevBench.Status
Command = Job.Command
State = Job.State

MUTATING_COMMANDS = (Command.CREATE, Command.DELETE, Command.ACTIVATE, Command.START, Command.STOP)
INVALID_NAME_MESSAGE = "Invalid DevBench name. Use only letters, numbers, hyphens and underscores."
DUPLICATE_NAME_MESSAGE = "DevBench with this name already exists"
WORKER_LOST_MESSAGE = (
    "The worker running this job stopped before it finished. The command may have had effects on "
    "the host, so it was not run again; check the status or delete the bench."
)


# --- hosts ------------------------------------------------------------------------------------

def local_agent_script() -> str:
    return str(Path(settings.BASE_DIR) / "hostagent" / "devbench-agent")


def ensure_local_host() -> Host | None:
    """The built-in ``local`` host (the bundled agent in simulated mode), unless turned off."""
    if not settings.DEVBENCH_LOCAL_HOST:
        return None
    config = Path(settings.DEVBENCH_LOCAL_AGENT_CONFIG)
    if not config.exists():
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "BACKEND=simulated\n"
            f"STATE_DIR={Path(settings.VAR_DIR) / 'local-vms'}\n"
            "OUTPUT_FORMAT=human\n"
            f"STEP_DELAY={settings.DEVBENCH_LOCAL_STEP_DELAY}\n"
        )
    host, _created = Host.objects.get_or_create(
        name="local",
        defaults={
            "kind": Host.Kind.LOCAL,
            "script_path": local_agent_script(),
            "public_host": "127.0.0.1",
            "capacity": settings.DEVBENCH_LOCAL_HOST_CAPACITY,
        },
    )
    return host


def register_host(
    *,
    name: str,
    address: str,
    port: int,
    username: str,
    script_path: str,
    identity_file: str = "",
    private_key: str = "",
    known_hosts_file: str = "",
    capacity: int = 10,
    public_host: str = "",
    jump_host: str = "",
    command_timeout: int = 1800,
) -> Host:
    """Register an SSH host. Its key is pinned from ``known_hosts_file`` or on first connection."""
    if Host.objects.filter(name=name).exists():
        raise InvalidInput(f"A host named {name!r} already exists")
    _check_host_settings(
        script_path=script_path, port=port, address=address, username=username, public_host=public_host,
        jump_host=jump_host,
    )
    _require_address(address)
    encrypted = ""
    if private_key:
        encrypted = _encrypted_private_key(private_key)
    elif identity_file:
        _check_identity_file(identity_file)
    pinned = ""
    if known_hosts_file:
        try:
            lines = host_keys.keys_from_known_hosts(known_hosts_file, address, port)
        except OSError as exc:
            raise InvalidInput(f"Cannot read the known_hosts file: {exc.strerror}") from None
        if not lines:
            raise InvalidInput(f"The known_hosts file has no key for {address} port {port}")
        pinned = "\n".join(lines)
    host = Host(
        name=name,
        kind=Host.Kind.SSH,
        address=address,
        port=port,
        username=username,
        identity_file=identity_file if not private_key else "",
        private_key_encrypted=encrypted,
        script_path=script_path,
        public_host=public_host,
        jump_host=jump_host,
        capacity=capacity,
        host_key=pinned,
        command_timeout=command_timeout,
    )
    _clean_host(host)
    host.save(force_insert=True)
    return host


def _check_host_settings(**values) -> None:
    """The rules for a host's settings beyond the model's own field checks (see ``_clean_host``)."""
    if "script_path" in values and not protocol.SCRIPT_PATH_RE.match(values["script_path"] or ""):
        raise InvalidInput(
            "The script path may contain only letters, digits and . _ / ~ + -",
            fields={"script_path": ["Use only letters, digits and . _ / ~ + -"]},
        )
    if "port" in values and not (isinstance(values["port"], int) and 0 < values["port"] < 65536):
        raise InvalidInput("The SSH port must be between 1 and 65535", fields={"port": ["Between 1 and 65535."]})
    for field in ("address", "username", "public_host", "jump_host"):
        # These end up in SSH connections and in users' ~/.ssh/config: one token each.
        if field in values and not _SINGLE_TOKEN_RE.match(values[field] or ""):
            message = f"The {field.replace('_', ' ')} must not contain spaces or control characters"
            raise InvalidInput(message, fields={field: [message]})
    if values.get("host_key"):
        try:
            keys = host_keys.pinned_keys(Host(host_key=values["host_key"]))
        except (ValueError, paramiko.SSHException):
            keys = []
        if not keys:
            message = "The host key must be one 'type base64' line per key, as in known_hosts"
            raise InvalidInput(message, fields={"host_key": [message]}) from None


_SINGLE_TOKEN_RE = re.compile(r"\A[^\s\x00-\x1f\x7f]*\Z")


def _require_address(address: str) -> None:
    if not address:
        raise InvalidInput("An SSH host needs an address", fields={"address": ["This field is required."]})


def _encrypted_private_key(private_key: str) -> str:
    try:
        host_keys.parse_private_key(private_key)
    except ValueError as exc:
        raise InvalidInput(str(exc), fields={"private_key": [str(exc)]}) from None
    return host_keys.encrypt_private_key(private_key)


def _check_identity_file(identity_file: str) -> None:
    try:
        with open(identity_file) as handle:
            host_keys.parse_private_key(handle.read())
    except OSError as exc:
        message = f"Cannot read the identity file: {exc.strerror}"
        raise InvalidInput(message, fields={"identity_file": [message]}) from None
    except ValueError as exc:
        raise InvalidInput(str(exc), fields={"identity_file": [str(exc)]}) from None


def _clean_host(host: Host) -> None:
    """The model's own checks (lengths, ranges, slug name, uniqueness) as an InvalidInput."""
    try:
        host.full_clean()
    except ValidationError as exc:
        fields = exc.message_dict
        first_field, messages = next(iter(fields.items()))
        prefix = "" if first_field == NON_FIELD_ERRORS else f"{first_field.replace('_', ' ')}: "
        raise InvalidInput(prefix + messages[0], fields=fields) from None


def _pick_host() -> Host:
    """The enabled host with the most free capacity, locked for this transaction.

    A host's benches are counted again once it is locked: every create locks its host before
    adding a bench, so creates at once cannot all take a host's last place (the count made before
    the lock can be stale by then). A host found full then is passed over for the next one.
    """
    ensure_local_host()
    for pk in selectors.host_ids_by_free_capacity(with_local=settings.DEVBENCH_LOCAL_HOST):
        try:  # get(), not first(): one row by its key needs no ORDER BY to compile
            host = Host.objects.select_for_update().get(pk=pk, enabled=True)
        except Host.DoesNotExist:
            continue
        if selectors.bench_count_on(host.pk) < host.capacity:
            return host
    raise Unavailable("No host has free capacity for a new DevBench; ask an admin")


# --- benches ----------------------------------------------------------------------------------

def _creation_limit() -> FixedWindowCounter:
    return FixedWindowCounter(
        "bench-creations",
        limit=settings.DEVBENCH_CREATE_LIMIT_PER_HOUR,
        window_seconds=3600,
    )


def quota_for(user: User) -> int:
    return user.bench_quota if user.bench_quota is not None else settings.DEVBENCH_DEFAULT_QUOTA


def validate_bench_name(name: str) -> str:
    if not isinstance(name, str) or not protocol.BENCH_NAME_RE.match(name):
        if isinstance(name, str) and len(name) > BENCH_NAME_MAX_LENGTH:
            message = f"DevBench name must be at most {BENCH_NAME_MAX_LENGTH} characters"
        elif not name:
            message = "DevBench name is required"
        else:
            message = INVALID_NAME_MESSAGE
        raise InvalidInput(message, fields={"name": [message]})
    return name


def create_bench(*, user: User, name: str) -> DevBench:
    """Record a bench (status creating) and queue its create job.

    Checks, in order: the name, duplicates, the user's quota, the hourly creation limit and a
    host with free capacity. Nothing is written when one fails.
    """
    name = validate_bench_name((name or "").strip() if isinstance(name, str) else name)
    owned, same_name = selectors.bench_counts_for(user, name)
    if same_name:
        raise InvalidInput(DUPLICATE_NAME_MESSAGE, fields={"name": [DUPLICATE_NAME_MESSAGE]})
    quota = quota_for(user)
    if owned >= quota:
        raise InvalidInput(f"DevBench quota reached: you have {quota} of {quota}. Delete one first.")
    limit = _creation_limit()
    if limit.exceeded(str(user.pk)):
        raise RateLimited(
            f"You can create at most {settings.DEVBENCH_CREATE_LIMIT_PER_HOUR} DevBenches per hour; try later"
        )
    try:
        with transaction.atomic():
            host = _pick_host()
            bench = DevBench.objects.create(user=user, host=host, name=name, status=Status.CREATING)
            job = _new_job(bench=bench, command=Command.CREATE, actor=user)
    except IntegrityError:
        raise InvalidInput(DUPLICATE_NAME_MESSAGE, fields={"name": [DUPLICATE_NAME_MESSAGE]}) from None
    limit.record(str(user.pk))
    _dispatch(job)
    logger.info("bench %s created by %s on %s (job %s)", bench.pk, user.username, host.name, job.pk)
    return bench


def _new_job(*, bench: DevBench, command: str, actor: User | None) -> Job:
    return Job.objects.create(
        bench=bench,
        original_bench_id=bench.pk,
        bench_name=bench.name,
        vm_name=bench.actual_name,
        owner_id=bench.user_id,
        requested_by=actor,
        host_id=bench.host_id,
        command=command,
    )


def _dispatch(job: Job) -> None:
    from .tasks import run_job

    transaction.on_commit(lambda: run_job.delay(job.pk))


def _active_job(bench: DevBench) -> Job | None:
    return bench.jobs.filter(state__in=Job.ACTIVE_STATES, command__in=MUTATING_COMMANDS).order_by("created_at").first()


def _lock_bench(bench: DevBench) -> DevBench:
    locked = DevBench.objects.select_for_update().filter(pk=bench.pk).first()
    if locked is None:
        raise NotFound("DevBench not found")
    return locked


def request_command(*, bench: DevBench, command: str, actor: User | None) -> Job:
    """Queue activate, start or stop for a bench; refused while another change is under way."""
    if command not in (Command.ACTIVATE, Command.START, Command.STOP):
        raise InvalidInput(f"Unknown command: {command}")
    with transaction.atomic():
        bench = _lock_bench(bench)
        if bench.status == Status.DELETING:
            raise Conflict("DevBench is being deleted")
        if not bench.actual_name:
            raise Conflict("DevBench has not been created on its host yet")
        busy = _active_job(bench)
        if busy is not None:
            raise Conflict(f"DevBench is busy: {busy.command} is {busy.state}")
        job = _new_job(bench=bench, command=command, actor=actor)
        _dispatch(job)
    return job


def delete_bench(*, bench: DevBench, actor: User | None) -> Job | None:
    """Delete a bench: the row stays (status deleting) until the remote delete succeeded.

    A bench whose VM was never started on its host (no actual_name) is removed at once, its
    queued create cancelled. Returns the delete job, or None when the row is already gone.
    """
    with transaction.atomic():
        bench = _lock_bench(bench)
        busy = _active_job(bench)
        if not bench.actual_name:
            if busy is not None:
                _finish_without_running(busy, State.CANCELLED, "Cancelled: the DevBench was deleted before it started")
            bench_id, user_id = bench.pk, bench.user_id
            bench.delete()
            transaction.on_commit(lambda: _announce_deleted(bench_id, user_id))
            return None
        if busy is not None:
            if busy.command == Command.DELETE:
                return busy
            raise Conflict(f"DevBench is busy: {busy.command} is {busy.state}; cancel it first")
        previous = bench.status
        bench.status = Status.DELETING
        bench.last_error = ""
        bench.save(update_fields=["status", "last_error", "updated_at"])
        job = _new_job(bench=bench, command=Command.DELETE, actor=actor)
        _dispatch(job)
    if previous != Status.DELETING:
        _publish(bench.user_id, [messages.status_update(bench, job=job)])
    return job


def _announce_deleted(bench_id: int, user_id: int) -> None:
    _publish(
        user_id,
        [{"type": "status_update", "devbenchId": bench_id, "status": "deleted", "jobId": None, "seq": None,
          "sshInfo": "", "vncInfo": "", "error": ""}],
    )


def cancel_job(*, job: Job, actor: User | None) -> Job:
    """Cancel a queued job at once, or ask the worker to end a running one (within a second)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            raise Conflict(f"Job already {job.state}")
        if job.state == State.QUEUED:
            _finish_without_running(job, State.CANCELLED, f"Cancelled by {actor.username if actor else 'system'}")
            if job.bench_id and job.command == Command.CREATE:
                DevBench.objects.filter(pk=job.bench_id).update(
                    status=Status.ERROR,
                    last_error="Creation was cancelled before it started",
                    updated_at=timezone.now(),
                )
        elif job.cancel_requested_at is None:
            job.cancel_requested_at = timezone.now()
            job.save(update_fields=["cancel_requested_at"])
    return job


def _finish_without_running(job: Job, state: str, error: str) -> None:
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(state=state, error=error, finished_at=now)
    job.state, job.error, job.finished_at = state, error, now
    if job.owner_id:
        payload = messages.script_complete(job)
        transaction.on_commit(lambda: _publish(job.owner_id, [payload]))


def _publish(user_id: int | None, payloads: list[dict]) -> None:
    if user_id:
        publisher.send(user_group(user_id), payloads)


# --- running jobs -----------------------------------------------------------------------------

def execute_job(job_id: int) -> Job | None:
    """Run a queued job on its host, streaming its output; apply the outcome to the bench.

    A job found ``running`` was started by a worker that died: its command may have had
    effects, so it is marked failed rather than run again. Until its command runs, the job holds
    one of the process's start-up slots (provisioning/start_slots.py).
    """
    with job_start_slots().slot():
        return _execute_job(job_id)


def _execute_job(job_id: int) -> Job | None:
    try:  # get(), not first(): one row by its key needs no ORDER BY to compile (~0.8 ms measured apart)
        job = Job.objects.select_related("bench__user", "host").get(pk=job_id)
    except Job.DoesNotExist:
        return None
    if job.state == State.RUNNING:
        _fail_lost_job(job)
        return job
    if job.state != State.QUEUED:
        return job
    bench = job.bench
    if bench is None or job.host is None:
        _finish_without_running(job, State.CANCELLED, "The DevBench no longer exists")
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
    result, error = _run_remote(job, job.host, bench.actual_name)
    _complete_job(job, bench, result, error)
    return job


def _run_remote(job: Job, host: Host, vm_name: str) -> tuple[CommandResult | None, str]:
    """Run the job's command; returns the result, or None and the reason it could not run."""
    try:
        command_line = protocol.build_command(host.script_path, job.command, vm_name)
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
            _remember_learned_host_key(host, transport)
    job.last_seq = output.seq
    return result, error


def _remember_learned_host_key(host: Host, transport) -> None:
    learned = getattr(transport, "learned_host_key", None)
    if learned and not host.host_key:
        Host.objects.filter(pk=host.pk, host_key="").update(host_key=learned)
        host.host_key = learned
        logger.info("pinned host key of %s on first connection", host.name)


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


def _complete_job(job: Job, bench: DevBench, result: CommandResult | None, error: str) -> None:
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
    _publish(job.owner_id, outgoing)
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
    else:  # activate, start, stop
        if state == State.SUCCEEDED:
            bench.status = Status.INACTIVE if job.command == Command.STOP else Status.ACTIVE
            bench.last_error = ""
        else:
            bench.status, bench.last_error = Status.UNKNOWN, reason
    _save_bench_fields(bench, fields)
    return False


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
    _publish(job.owner_id, outgoing)
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
        _finish_without_running(job, State.FAILED, "No worker picked up this job in time")
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


def delete_benches_of(*, user: User, actor: User | None) -> None:
    """Start deleting every bench of a user (when an admin deletes the user)."""
    for bench in DevBench.objects.filter(user=user).exclude(status=Status.DELETING):
        try:
            delete_bench(bench=bench, actor=actor)
        except Conflict:
            # A create or another change is running: cancel it; the delete follows it.
            busy = _active_job(bench)
            if busy is not None:
                cancel_job(job=busy, actor=actor)
            DevBench.objects.filter(pk=bench.pk).update(
                last_error="The owner was deleted; delete this bench once its job has ended"
            )


# --- status ----------------------------------------------------------------------------------

def check_status(*, bench: DevBench, actor: User | None) -> str:
    """Run the status command now (inline), store and return the bench's status.

    While a create or delete is under way the stored status is returned without running.
    """
    if not bench.actual_name or _active_job(bench) is not None:
        return bench.status
    with transaction.atomic():
        job = _new_job(bench=bench, command=Command.STATUS, actor=actor)
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(state=State.RUNNING, started_at=now)
    job.state, job.started_at = State.RUNNING, now
    result, error = _run_remote(job, bench.host, bench.actual_name)
    _complete_job(job, bench, result, error)
    return bench.status


def sync_host_statuses(host: Host) -> dict[str, int]:
    """Check every settled bench of ``host`` over one connection and store changed statuses.

    Uses the agent's ``list`` command (one command for all VMs); a script without it gets one
    ``status`` command per bench over the same connection. Returns counts for the caller.
    """
    benches = list(
        DevBench.objects.filter(host=host)
        .exclude(actual_name="")
        .exclude(status__in=(Status.CREATING, Status.DELETING))
        .exclude(
            pk__in=Job.objects.filter(state__in=Job.ACTIVE_STATES, command__in=MUTATING_COMMANDS)
            .exclude(bench=None)
            .values("bench_id")
        )
    )
    counts = {"checked": 0, "changed": 0, "commands": 0}
    if not benches:
        return counts
    transport = transport_for(host)
    ignore_output = lambda stream, text: None  # noqa: E731 - sync output is not a job log
    try:
        listed = transport.run(
            protocol.build_command(host.script_path, protocol.BATCH_LIST_COMMAND),
            on_output=ignore_output,
            timeout=settings.DEVBENCH_STATUS_TIMEOUT,
        )
        counts["commands"] += 1
        if listed.exit_code == 0:
            known = protocol.parse_list_output(listed.stdout)
            statuses = {bench.pk: known.get(bench.actual_name, Status.UNKNOWN) for bench in benches}
        else:
            statuses = {}
            for bench in benches:
                result = transport.run(
                    protocol.build_command(host.script_path, Command.STATUS, bench.actual_name),
                    on_output=ignore_output,
                    timeout=settings.DEVBENCH_STATUS_TIMEOUT,
                )
                counts["commands"] += 1
                statuses[bench.pk] = protocol.parse_status_output(result.stdout, result.exit_code)
    except TransportError as exc:
        logger.warning("status sync of host %s failed: %s", host.name, exc)
        return counts
    finally:
        _remember_learned_host_key(host, transport)
    changed: list[DevBench] = []
    for bench in benches:
        counts["checked"] += 1
        new_status = statuses[bench.pk]
        if new_status != bench.status:
            bench.status = new_status
            changed.append(bench)
    if changed:
        now = timezone.now()
        for bench in changed:
            bench.updated_at = now
        DevBench.objects.bulk_update(changed, ["status", "updated_at"])
        by_user: dict[int, list[dict]] = {}
        for bench in changed:
            by_user.setdefault(bench.user_id, []).append(messages.status_update(bench))
        for user_id, payloads in by_user.items():
            _publish(user_id, payloads)
    counts["changed"] = len(changed)
    return counts


def sync_all_statuses(hosts: Iterable[Host] | None = None) -> dict[str, dict[str, int]]:
    """One status sync pass over every enabled host."""
    hosts = hosts if hosts is not None else Host.objects.filter(enabled=True)
    return {host.name: sync_host_statuses(host) for host in hosts}


# --- hosts: changes made by an admin (the REST API and the admin panel) -------------------------

HOST_EDITABLE_FIELDS = (
    "address", "port", "username", "identity_file", "script_path", "public_host", "jump_host", "capacity",
    "host_key", "command_timeout",
)


def update_host(*, host: Host, changes: dict, private_key: str = "") -> Host:
    """Change some of a host's settings (``HOST_EDITABLE_FIELDS``); a private key is stored encrypted.

    Clearing ``host_key`` makes the next connection pin the key the host presents.
    """
    unknown = sorted(set(changes) - set(HOST_EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(f"These host settings cannot be changed: {', '.join(unknown)}")
    _check_host_settings(**changes)
    if "address" in changes and host.kind == Host.Kind.SSH:
        _require_address(changes["address"])
    if changes.get("identity_file") and not private_key:
        _check_identity_file(changes["identity_file"])
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=host.pk)
        for field, value in changes.items():
            setattr(host, field, value)
        if changes.get("identity_file") and not private_key:
            host.private_key_encrypted = ""  # the identity file replaces a stored key
        if private_key:
            host.private_key_encrypted = _encrypted_private_key(private_key)
            host.identity_file = ""
        _clean_host(host)
        host.save()
    logger.info("host %s updated: %s", host.name, ", ".join(sorted(changes)) or "private key")
    return host


def set_host_enabled(*, host: Host, enabled: bool) -> Host:
    """Enable or disable a host. A disabled host gets no new benches; its benches keep working."""
    Host.objects.filter(pk=host.pk).update(enabled=enabled, updated_at=timezone.now())
    host.refresh_from_db()
    logger.info("host %s %s", host.name, "enabled" if enabled else "disabled")
    return host


def delete_host(*, host: Host) -> None:
    """Delete a host that has no benches (its jobs stay, as the audit trail)."""
    with transaction.atomic():
        locked = Host.objects.select_for_update().filter(pk=host.pk).first()
        if locked is None:
            raise NotFound("Host not found")
        count = DevBench.objects.filter(host=locked).count()
        if count:
            raise Conflict(
                f"Host {locked.name} still has {count} DevBench{'es' if count != 1 else ''}; delete them first"
            )
        locked.delete()
    logger.info("host %s deleted", host.name)


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of ``check_host_connection``."""

    ok: bool
    latency_ms: float | None = None
    host_key: str | None = None
    fingerprint: str | None = None
    error: str = ""


CONNECTION_CHECK_COMMAND = "true"


def check_host_connection(*, host: Host) -> ConnectionCheck:
    """Run a harmless command (``true``) on the host and report how long it took and which host
    key it presented. An unpinned key is pinned, as on any first connection."""
    transport = transport_for(host)
    started = time.monotonic()
    try:
        result = transport.run(
            CONNECTION_CHECK_COMMAND, on_output=lambda stream, text: None, timeout=settings.DEVBENCH_STATUS_TIMEOUT
        )
    except TransportError as exc:
        return ConnectionCheck(ok=False, error=str(exc))
    finally:
        _remember_learned_host_key(host, transport)
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    key = transport.remote_host_key()
    host_key = host_keys.key_line(key) if key is not None else None
    fingerprint = host_keys.fingerprint(key) if key is not None else None
    if result.exit_code != 0:
        error = "The test command timed out" if result.timed_out else (
            f"The test command exited with code {result.exit_code}")
        return ConnectionCheck(ok=False, latency_ms=latency_ms, host_key=host_key, fingerprint=fingerprint,
                               error=error)
    return ConnectionCheck(ok=True, latency_ms=latency_ms, host_key=host_key, fingerprint=fingerprint)

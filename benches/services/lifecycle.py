"""A bench's life as its owner (or an admin) drives it: create, activate/start/stop, delete,
cancel a job, and delete every bench of a user being deleted."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from devbench_site.errors import Conflict, InvalidInput, NotFound, RateLimited
from devbench_site.rate_limits import FixedWindowCounter

from .. import naming, selectors
from ..models import DevBench, Job, Plan
from ..provisioning import bench_keys, messages
from ..provisioning.host_keys import encrypt_private_key
from .catalog import Resources, check_resource_quota, choose_image, choose_plan, quota_for
from .hosts import pick_host
from .jobs import active_job, dispatch, finish_without_running, new_job, publish

logger = logging.getLogger(__name__)

Status = DevBench.Status
Command = Job.Command
State = Job.State

INVALID_NAME_MESSAGE = naming.INVALID_MESSAGE
DUPLICATE_NAME_MESSAGE = naming.DUPLICATE_MESSAGE


def _creation_limit() -> FixedWindowCounter:
    return FixedWindowCounter(
        "bench-creations",
        limit=settings.DEVBENCH_CREATE_LIMIT_PER_HOUR,
        window_seconds=3600,
    )


def validate_bench_name(name: str) -> str:
    """``name`` when it is a bench name (``benches.naming``), else InvalidInput saying why."""
    message = naming.name_problem(name)
    if message is not None:
        raise InvalidInput(message, fields={"name": [message]})
    return name


def create_bench(*, user: User, name: str, image: object = None, plan: object = None) -> DevBench:
    """Record a bench (status creating) and queue its create job.

    ``image`` and ``plan`` are names (``services.catalog``); none means the defaults. Checks, in
    order: the name, the image and plan, duplicates, the user's holding limits (the bench count,
    vCPUs, memory, disk), the hourly creation limit and a host that has the image and a free
    place. Nothing is written when one fails. The counts are made and the creation slot taken
    under a lock on the user's row, in the transaction that adds the bench, so creates sent at
    once are counted one after another.
    """
    name = validate_bench_name((name or "").strip() if isinstance(name, str) else name)
    chosen_image, chosen_plan = choose_image(image), choose_plan(plan)
    private_key, public_key = bench_keys.new_key_pair()
    try:
        with _creation_slot(user) as take_creation_slot, transaction.atomic():
            user = _lock_user(user)
            owned, same_name = selectors.bench_counts_for(user, name)
            if same_name:
                raise InvalidInput(DUPLICATE_NAME_MESSAGE, fields={"name": [DUPLICATE_NAME_MESSAGE]})
            _check_holding_limits(user=user, owned=owned, plan=chosen_plan)
            take_creation_slot()
            host = pick_host(image=chosen_image, plan=chosen_plan)
            size = asdict(Resources.of_plan(chosen_plan))  # zeros: the host's default size
            bench = DevBench.objects.create(
                user=user, host=host, name=name, status=Status.CREATING, image=chosen_image, plan=chosen_plan,
                private_key_encrypted=encrypt_private_key(private_key), public_key=public_key, **size,
            )  # fmt: skip
            job = new_job(bench=bench, command=Command.CREATE, actor=user)
    except IntegrityError:
        raise InvalidInput(DUPLICATE_NAME_MESSAGE, fields={"name": [DUPLICATE_NAME_MESSAGE]}) from None
    dispatch(job)
    logger.info("bench %s created by %s on %s (job %s)", bench.pk, user.username, host.name, job.pk)
    return bench


def _lock_user(user: User) -> User:
    """The user's row, locked until the transaction ends: one create of a user at a time
    counts what the user holds (SQLite's transactions take the write lock from the start)."""
    locked = User.objects.select_for_update().filter(pk=user.pk).first()
    if locked is None:
        raise NotFound("User not found")
    return locked


def _check_holding_limits(*, user: User, owned: int, plan: Plan | None) -> None:
    """Every limit on what a user holds at once, checked under the user's lock: the bench count,
    then the vCPUs, memory and disk of the user's benches with the new one."""
    quota = quota_for(user)
    if owned >= quota:
        raise InvalidInput(f"DevBench quota reached: you have {quota} of {quota}. Delete one first.")
    check_resource_quota(user, plan)



@contextmanager
def _creation_slot(user: User) -> Iterator[Callable[[], None]]:
    """Yield the function that takes one of the user's hourly creations (``RateLimited`` when
    none is left), counted before the bench is created so that creates at once cannot all
    pass.

    A slot taken for a create that then fails (no host free, a duplicate name found only by
    the database, an error) is given back: the limit bounds the provisioning a user starts,
    and such a create started none; the user should not lose hourly creates to a 503 they did
    not cause. The slot stays once the bench is recorded, even if it is deleted again.
    """
    limit, key = _creation_limit(), str(user.pk)
    taken = False

    def take() -> None:
        nonlocal taken
        if not limit.take(key):
            raise RateLimited(
                f"You can create at most {settings.DEVBENCH_CREATE_LIMIT_PER_HOUR} DevBenches per hour; try later"
            )
        taken = True

    try:
        yield take
    except BaseException:
        if taken:
            limit.give_back(key)
        raise


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
        busy = active_job(bench)
        if busy is not None:
            raise Conflict(f"DevBench is busy: {busy.command} is {busy.state}")
        job = new_job(bench=bench, command=command, actor=actor)
        dispatch(job)
    return job


def delete_bench(*, bench: DevBench, actor: User | None) -> Job | None:
    """Delete a bench: the row stays (status deleting) until the remote delete succeeded.

    A bench whose VM was never started on its host (no actual_name) is removed at once, its
    queued create cancelled. Returns the delete job, or None when the row is already gone.
    """
    with transaction.atomic():
        bench = _lock_bench(bench)
        busy = active_job(bench)
        if not bench.actual_name:
            if busy is not None:
                finish_without_running(busy, State.CANCELLED, "Cancelled: the DevBench was deleted before it started")
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
        job = new_job(bench=bench, command=Command.DELETE, actor=actor)
        dispatch(job)
    if previous != Status.DELETING:
        publish(bench.user_id, [messages.status_update(bench, job=job)])
    return job


def _announce_deleted(bench_id: int, user_id: int) -> None:
    publish(user_id, [messages.bench_deleted(bench_id)])


def cancel_job(*, job: Job, actor: User | None) -> Job:
    """Cancel a queued job at once, or ask the worker to end a running one (within a second)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            raise Conflict(f"Job already {job.state}")
        if job.state == State.QUEUED:
            finish_without_running(job, State.CANCELLED, f"Cancelled by {actor.username if actor else 'system'}")
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


def delete_benches_of(*, user: User, actor: User | None) -> None:
    """Start deleting every bench of a user (when an admin deletes the user)."""
    for bench in DevBench.objects.filter(user=user).exclude(status=Status.DELETING):
        try:
            delete_bench(bench=bench, actor=actor)
        except Conflict:
            # A create or another change is running: cancel it; the delete follows it.
            busy = active_job(bench)
            if busy is not None:
                cancel_job(job=busy, actor=actor)
            DevBench.objects.filter(pk=bench.pk).update(
                last_error="The owner was deleted; delete this bench once its job has ended"
            )

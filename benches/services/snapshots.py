"""Snapshots of a bench's VM: take, restore, delete — each a job on the bench's host, like every
other command, owner only; limited per bench since each keeps disk on the host."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.models import User
from devbench_site.errors import Conflict, InvalidInput, NotFound

from .. import naming
from ..models import DevBench, Job, Snapshot
from .jobs import active_job, dispatch, new_job

Command = Job.Command
Status = DevBench.Status

SNAPSHOTS_CAPABILITY = "snapshots"


def snapshots_available(bench: DevBench) -> bool:
    """Whether the bench's host's agent takes snapshots (its last connection test said so)."""
    return SNAPSHOTS_CAPABILITY in (bench.host.capabilities or [])


def _validated_name(name: object) -> str:
    problem = naming.snapshot_name_problem(name)
    if problem is not None:
        raise InvalidInput(problem, fields={"name": [problem]})
    assert isinstance(name, str)
    return name


def _queue(bench: DevBench, command: str, name: str, actor: User | None, check) -> Job:
    """Queue a snapshot command under the bench's lock, after the checks every one shares."""
    with transaction.atomic():
        bench = DevBench.objects.select_for_update().select_related("host").filter(pk=bench.pk).first()
        if bench is None:
            raise NotFound("DevBench not found")
        if not snapshots_available(bench):
            raise Conflict(
                f"Snapshots are not available on host {bench.host.name}: its agent does not support them"
            )
        if bench.status == Status.DELETING:
            raise Conflict("DevBench is being deleted")
        if not bench.actual_name or bench.status == Status.CREATING:
            raise Conflict("DevBench has not been created on its host yet")
        busy = active_job(bench)
        if busy is not None:
            raise Conflict(f"DevBench is busy: {busy.command} is {busy.state}")
        check(bench)
        job = new_job(bench=bench, command=command, actor=actor, argument=name)
        dispatch(job)
    return job


def take_snapshot(*, bench: DevBench, name: object, actor: User | None) -> Job:
    """Queue a snapshot named ``name`` of the bench's VM (at most DEVBENCH_MAX_SNAPSHOTS_PER_BENCH)."""
    name = _validated_name(name)

    def check(locked: DevBench) -> None:
        names = list(Snapshot.objects.filter(bench=locked).values_list("name", flat=True))
        if name in names:
            raise InvalidInput(f"Snapshot {name} already exists", fields={"name": [f"Snapshot {name} already exists"]})
        limit = settings.DEVBENCH_MAX_SNAPSHOTS_PER_BENCH
        if len(names) >= limit:
            raise InvalidInput(f"Snapshot limit reached: a bench keeps at most {limit}. Delete one first.")

    return _queue(bench, Command.SNAPSHOT, name, actor, check)


def _existing(name: object):
    name = _validated_name(name)

    def check(locked: DevBench) -> None:
        if not Snapshot.objects.filter(bench=locked, name=name).exists():
            raise NotFound(f"Snapshot {name} not found")

    return name, check


def restore_snapshot(*, bench: DevBench, name: object, actor: User | None) -> Job:
    """Queue the restore of a snapshot; the agent stops a running VM first and leaves it stopped."""
    name, check = _existing(name)
    return _queue(bench, Command.RESTORE, name, actor, check)


def delete_snapshot(*, bench: DevBench, name: object, actor: User | None) -> Job:
    """Queue the removal of a snapshot from the bench's host."""
    name, check = _existing(name)
    return _queue(bench, Command.DELETE_SNAPSHOT, name, actor, check)

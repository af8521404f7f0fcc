"""A bench's status as its host sees it: one bench now (``check_status``), or every bench of a
host over one connection (``sync_host_statuses``, the periodic sync)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User

from ..models import DevBench, Host, Job
from ..provisioning import messages, protocol
from ..provisioning.transport import TransportError, transport_for
from .hosts import remember_learned_host_key
from .jobs import MUTATING_COMMANDS, active_job, complete_job, new_job, publish, run_remote

logger = logging.getLogger(__name__)

Status = DevBench.Status
Command = Job.Command
State = Job.State

def check_status(*, bench: DevBench, actor: User | None) -> str:
    """Run the status command now (inline), store and return the bench's status.

    While a create or delete is under way the stored status is returned without running.
    """
    if not bench.actual_name or active_job(bench) is not None:
        return bench.status
    with transaction.atomic():
        job = new_job(bench=bench, command=Command.STATUS, actor=actor)
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(state=State.RUNNING, started_at=now)
    job.state, job.started_at = State.RUNNING, now
    result, error = run_remote(job, bench.host, bench.actual_name)
    complete_job(job, bench, result, error)
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
        remember_learned_host_key(host, transport)
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
            publish(user_id, payloads)
    counts["changed"] = len(changed)
    return counts


def sync_all_statuses(hosts: Iterable[Host] | None = None) -> dict[str, dict[str, int]]:
    """One status sync pass over every enabled host."""
    hosts = hosts if hosts is not None else Host.objects.filter(enabled=True)
    return {host.name: sync_host_statuses(host) for host in hosts}

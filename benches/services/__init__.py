"""Bench actions (writes), one module per job; callers import them from here.

- ``hosts``: registering and changing hosts, placement, connection checks;
- ``local_host``: the built-in ``local`` host, on libvirt when the machine can run VMs, else simulated;
- ``catalog``: the image and plan of a create, the resource quotas;
- ``lifecycle``: create, activate/start/stop, delete, cancel;
- ``snapshots``: take, restore and delete a bench's snapshots;
- ``jobs``: running a job on its host and applying its outcome, the stale-job sweep;
- ``status``: one bench's status now, and the per-host status sync.

The compatible routes, the REST API, the admin panel, the consumers and the Celery tasks all
call these functions. Remote commands run as Jobs: queued here, executed by ``execute_job`` in a
worker (or inline for a status check), their output stored and streamed as it arrives.
"""

from .catalog import Resources, choose_image, choose_plan, quota_for, resource_limits_for, resources_held_by
from .hosts import (
    HOST_EDITABLE_FIELDS,
    ConnectionCheck,
    check_host_connection,
    delete_host,
    register_host,
    set_host_enabled,
    update_host,
)
from .jobs import MUTATING_COMMANDS, WORKER_LOST_MESSAGE, execute_job, sweep_stale_jobs
from .lifecycle import (
    DUPLICATE_NAME_MESSAGE,
    INVALID_NAME_MESSAGE,
    cancel_job,
    create_bench,
    delete_bench,
    delete_benches_of,
    request_command,
    validate_bench_name,
)
from .local_host import choose_local_backend, ensure_local_host, local_agent_script, local_backend
from .snapshots import delete_snapshot, restore_snapshot, snapshots_available, take_snapshot
from .status import check_status, sync_all_statuses, sync_host_statuses

__all__ = [
    "DUPLICATE_NAME_MESSAGE",
    "HOST_EDITABLE_FIELDS",
    "INVALID_NAME_MESSAGE",
    "MUTATING_COMMANDS",
    "WORKER_LOST_MESSAGE",
    "ConnectionCheck",
    "Resources",
    "cancel_job",
    "check_host_connection",
    "check_status",
    "choose_image",
    "choose_local_backend",
    "choose_plan",
    "create_bench",
    "delete_bench",
    "delete_benches_of",
    "delete_host",
    "delete_snapshot",
    "ensure_local_host",
    "execute_job",
    "local_agent_script",
    "local_backend",
    "quota_for",
    "register_host",
    "request_command",
    "resource_limits_for",
    "resources_held_by",
    "restore_snapshot",
    "set_host_enabled",
    "snapshots_available",
    "sweep_stale_jobs",
    "sync_all_statuses",
    "sync_host_statuses",
    "take_snapshot",
    "update_host",
    "validate_bench_name",
]

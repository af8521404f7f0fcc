"""Bench actions (writes), one module per job; callers import them from here.

- ``hosts``: the built-in ``local`` host, registering and changing hosts, placement, connection checks;
- ``lifecycle``: create, activate/start/stop, delete, cancel;
- ``jobs``: running a job on its host and applying its outcome, the stale-job sweep;
- ``status``: one bench's status now, and the per-host status sync.

The compatible routes, the REST API, the admin panel, the consumers and the Celery tasks all
call these functions. Remote commands run as Jobs: queued here, executed by ``execute_job`` in a
worker (or inline for a status check), their output stored and streamed as it arrives.
"""

from .hosts import (
    HOST_EDITABLE_FIELDS,
    ConnectionCheck,
    check_host_connection,
    delete_host,
    ensure_local_host,
    local_agent_script,
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
    quota_for,
    request_command,
    validate_bench_name,
)
from .status import check_status, sync_all_statuses, sync_host_statuses

__all__ = [
    "DUPLICATE_NAME_MESSAGE",
    "HOST_EDITABLE_FIELDS",
    "INVALID_NAME_MESSAGE",
    "MUTATING_COMMANDS",
    "WORKER_LOST_MESSAGE",
    "ConnectionCheck",
    "cancel_job",
    "check_host_connection",
    "check_status",
    "create_bench",
    "delete_bench",
    "delete_benches_of",
    "delete_host",
    "ensure_local_host",
    "execute_job",
    "local_agent_script",
    "quota_for",
    "register_host",
    "request_command",
    "set_host_enabled",
    "sweep_stale_jobs",
    "sync_all_statuses",
    "sync_host_statuses",
    "update_host",
    "validate_bench_name",
]

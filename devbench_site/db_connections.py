"""The current thread's database connection around waits that need none."""

from __future__ import annotations

from django.db import connection


def give_back_connection() -> None:
    """Return this thread's connection to the pool before a long wait that needs none (a remote
    command may run for minutes): other threads use it meanwhile, and the next query borrows one
    again. Without a pool it is kept (closing would only cost a new connection afterwards), and
    inside a transaction it must be. The pool is ``DEVBENCH_DB_POOL_SIZE``'s (settings)."""
    pooled = bool(connection.settings_dict["OPTIONS"].get("pool"))
    if pooled and connection.connection is not None and not connection.in_atomic_block:
        connection.close()

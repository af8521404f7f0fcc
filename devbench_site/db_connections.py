"""The current thread's database connection around waits that need none."""

from __future__ import annotations

from django.db import connection


def pooled() -> bool:
    """Whether this process lends PostgreSQL connections out of a pool (``DEVBENCH_DB_POOL_SIZE``)."""
    return bool(connection.settings_dict["OPTIONS"].get("pool"))


def give_back_connection() -> None:
    """Return this thread's connection to the pool before a long wait that needs none (a remote
    command may run for minutes): other threads use it meanwhile, and the next query borrows one
    again. Without a pool it is kept (closing would only cost a new connection afterwards), and
    inside a transaction it must be."""
    if connection.connection is None or connection.in_atomic_block or not pooled():
        return
    connection.close()

"""The current thread's database connection: around waits that need none, and for reads that
must see one state of the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction


def give_back_connection() -> None:
    """Return this thread's connection to the pool before a long wait that needs none (a remote
    command may run for minutes): other threads use it meanwhile, and the next query borrows one
    again. Without a pool it is kept (closing would only cost a new connection afterwards), and
    inside a transaction it must be. The pool is ``DEVBENCH_DB_POOL_SIZE``'s (settings)."""
    pooled = bool(connection.settings_dict["OPTIONS"].get("pool"))
    if pooled and connection.connection is not None and not connection.in_atomic_block:
        connection.close()


@contextmanager
def one_snapshot() -> Iterator[None]:
    """Reads inside see one state of the database, whatever commits meanwhile: a transaction,
    ``REPEATABLE READ`` on PostgreSQL (whose default gives each statement its own snapshot); a
    SQLite transaction reads one snapshot already. Inside a transaction begun elsewhere, that
    transaction's isolation applies (its level can no longer be set)."""
    with transaction.atomic():
        if connection.vendor == "postgresql" and not _in_outer_transaction():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _in_outer_transaction() -> bool:
    """Whether the atomic block just entered is nested in another (its level is set already)."""
    return len(connection.savepoint_ids) > 0 or not connection.commit_on_exit

"""Django's PostgreSQL backend, with timestamps parsed by psycopg's C loader.

Django reads ``timestamptz`` with a loader of its own: psycopg's pure-Python parser followed by
``replace(tzinfo=...)``, about 4 µs per value, 0.4 ms for the 100 timestamps of a page of 50
benches (docs/PERFORMANCE.md, benchmark 4). Django sets every session's ``TimeZone`` to UTC when
``USE_TZ`` is on and the database has no ``TIME_ZONE`` of its own; in such a session psycopg's
own loader, written in C, returns the same aware datetime (``tzinfo`` ``datetime.timezone.utc``)
in under 1 µs. In any other configuration Django's loader stays.
"""

from __future__ import annotations

import datetime
from functools import lru_cache

from django.db.backends.postgresql import base
from psycopg import adapt, adapters
from psycopg.postgres import types
from psycopg.pq import Format

TIMESTAMPTZ_OID = types["timestamptz"].oid
PSYCOPG_TIMESTAMPTZ_LOADER = adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)  # C with psycopg[binary]


class UtcTimestamptzLoader(adapt.Loader):
    """psycopg's own ``timestamptz`` loader, for sessions whose time zone is UTC.

    The C class cannot be subclassed, so each instance delegates to one: psycopg calls the
    bound C ``load`` directly, with no Python frame per value. ``timezone`` is what Django's
    ``create_cursor`` compares with the connection's before it would register its own loader.
    """

    timezone = datetime.UTC

    def __init__(self, oid: int, context: adapt.AdaptContext | None = None):
        super().__init__(oid, context)
        self.load = PSYCOPG_TIMESTAMPTZ_LOADER(oid, context).load

    def load(self, data):  # replaced on each instance by the C loader's
        raise NotImplementedError


@lru_cache
def adapters_with_utc_loader(template: adapt.AdaptersMap) -> adapt.AdaptersMap:
    """Django's adapters for its connections, with ``UtcTimestamptzLoader`` for ``timestamptz``."""
    context = adapt.AdaptersMap(template)
    context.register_loader(TIMESTAMPTZ_OID, UtcTimestamptzLoader)
    return context


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        if self.timezone is datetime.UTC and "context" in params:  # USE_TZ, no database TIME_ZONE
            params["context"] = adapters_with_utc_loader(params["context"])
        return params

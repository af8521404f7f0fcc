"""DevBench's PostgreSQL backend reads ``timestamptz`` with psycopg's C loader and gets exactly
what Django's own loader gives."""

from __future__ import annotations

import copy
import datetime

import psycopg
import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.utils import timezone
from psycopg.pq import Format

from accounts.models import User

pytestmark = pytest.mark.django_db

VALUES = [
    "2026-11-22 07:24:56.105053+00",
    "1999-12-31 23:59:59+05:30",
    "2000-02-29 12:00:00.5-08",
    "1970-01-01 00:00:00+00",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
]
SELECT_VALUES = "SELECT " + ", ".join(f"'{value}'::timestamptz" for value in VALUES)


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL backend (CI runs the suite there)")


def _read(sql: str, *, django_loader: bool) -> tuple:
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        if django_loader:
            register_tzloader(connection.timezone, cursor)
        cursor.execute(sql)
        return cursor.fetchone()


def test_connections_read_timestamps_with_the_c_loader():
    from devbench_site.postgresql.base import UtcTimestamptzLoader

    oid = psycopg.postgres.types["timestamptz"].oid
    connection.ensure_connection()
    assert connection.connection.adapters.get_loader(oid, Format.TEXT) is UtcTimestamptzLoader
    loads_with = type(UtcTimestamptzLoader(oid, connection.connection).load.__self__)
    assert loads_with is psycopg.adapters.get_loader(oid, Format.TEXT)
    assert loads_with.__module__.startswith("psycopg_binary"), "psycopg[binary] (requirements.txt) is C"


def test_the_same_datetimes_as_djangos_loader():
    ours = _read(SELECT_VALUES, django_loader=False)
    djangos = _read(SELECT_VALUES, django_loader=True)
    assert ours == djangos
    assert [value.tzinfo for value in ours] == [datetime.UTC] * len(VALUES)
    assert [value.tzinfo for value in djangos] == [datetime.UTC] * len(VALUES)
    assert ours[1] == datetime.datetime(1999, 12, 31, 18, 29, 59, tzinfo=datetime.UTC)
    assert ours[2] == datetime.datetime(2000, 2, 29, 20, 0, 0, 500000, tzinfo=datetime.UTC)


@pytest.mark.parametrize("value", ["infinity", "-infinity", "0044-03-15 12:00:00+00 BC"])
def test_values_python_cannot_hold_fail_as_with_djangos_loader(value):
    for django_loader in (False, True):
        with pytest.raises(psycopg.DataError):
            _read(f"SELECT '{value}'::timestamptz", django_loader=django_loader)


def test_models_round_trip_their_datetimes():
    joined = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=datetime.UTC)
    user = User.objects.create_user("timestamps", password="x", date_joined=joined)
    user.refresh_from_db()
    assert user.date_joined == joined
    assert user.date_joined.tzinfo is datetime.UTC
    assert timezone.is_aware(User.objects.values_list("date_joined", flat=True).get(pk=user.pk))


def test_a_database_time_zone_keeps_djangos_loader():
    from devbench_site.postgresql.base import DatabaseWrapper, UtcTimestamptzLoader

    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["TIME_ZONE"] = "Europe/Paris"
    settings_dict["OPTIONS"].pop("pool", None)
    wrapper = DatabaseWrapper(settings_dict, alias="paris")
    context = wrapper.get_connection_params()["context"]
    loader = context.get_loader(psycopg.postgres.types["timestamptz"].oid, Format.TEXT)
    assert loader is not UtcTimestamptzLoader
    assert loader.timezone == wrapper.timezone

"""Shared fixtures: the real Redis/Valkey (embedded when REDIS_URL is unset), users, clients."""

from __future__ import annotations

import gc

import pytest
import redis
from django.conf import settings
from django.test import Client

from accounts import services as account_services

pytest_plugins = [
    "tests.sshd",
    "tests.agent_fixtures",
    "tests.k8s_emulator",
    "tests.bench_fixtures",
    "tests.libvirt_fixtures",
    "tests.live_stack",
    "tests.browser_fixtures",
]

STRONG_PASSWORD = "Sturdy-Passw0rd!"

# The pytest process runs threads of its own (requests at once through the test client, servers
# in threads) whose database connections Django never closes: out of a pool they would never
# come back, and the pool would run dry. This process therefore opens its connections directly;
# the pool runs where it runs in production — in the Daphne and worker processes the live-stack
# and fault tests start — and tests/test_db_pool.py installs it here (``install_db_pool``).
DB_POOL_OPTIONS = settings.DATABASES["default"].get("OPTIONS", {}).pop("pool", None)


def install_db_pool(options: dict | None) -> None:
    """Give this process's connections a pool with ``options`` (None: no pool) from now on."""
    from django.db import connection

    connection.close()
    connection.close_pool()
    if options is None:
        connection.settings_dict["OPTIONS"].pop("pool", None)
    else:
        connection.settings_dict["OPTIONS"]["pool"] = options  # shared by every thread's connection


# Rows that migrate writes and no test changes: a flush keeps them, so the post_migrate signal
# after each transactional test finds them in place instead of writing them all again.
KEPT_BY_FLUSH = frozenset({"django_content_type", "auth_permission"})


def _quick_sql_flush(style, connection, reset_sequences=True, allow_cascade=False) -> list[str]:
    """What the flush after a transactional test runs: every table but ``KEPT_BY_FLUSH`` emptied,
    on PostgreSQL with DELETE (a TRUNCATE makes new files for every table, slow for the few rows
    a test leaves; the foreign keys are deferred, so the order does not matter)."""
    tables = [
        name for name in connection.introspection.django_table_names(only_existing=True, include_views=False)
        if name not in KEPT_BY_FLUSH
    ]
    if connection.vendor != "postgresql" or reset_sequences:
        return connection.ops.sql_flush(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    return [f"DELETE FROM {connection.ops.quote_name(name)};" for name in tables]  # noqa: S608 (table names)


@pytest.fixture(scope="session", autouse=True)
def _quick_flush():
    """Transactional tests reset the database with ``_quick_sql_flush`` (see there)."""
    from django.core.management.commands import flush

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flush, "sql_flush", _quick_sql_flush)
        yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test database, dropped only once no thread of this process holds it.

    The async tests' database calls run in asgiref's one thread for thread-sensitive work, which
    outlives them with its connection open; a finished thread's connection is closed only by the
    garbage collector (Django's connection wrapper refers to itself through ``ops``/``features``)."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)
    gc.collect()


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _clean_cache(redis_client):
    """Each test starts with no cached throttle counters."""
    for key in redis_client.scan_iter("devbench-cache:*"):
        redis_client.delete(key)


@pytest.fixture
def production_password_hashers(settings):
    """The hashers a deployment uses (Argon2 first), without the suite's fast one."""
    settings.PASSWORD_HASHERS = [name for name in settings.PASSWORD_HASHERS if not name.endswith(".MD5PasswordHasher")]


@pytest.fixture
def make_user(db):
    def make(username: str = "alice", *, password: str = STRONG_PASSWORD, is_admin: bool = False, **extra):
        if is_admin:
            return account_services.User.objects.create_superuser(
                username=username, email=f"{username.lower()}@example.com", password=password
            )
        return account_services.create_user(
            username=username, email=f"{username.lower()}@example.com", password=password, **extra
        )

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def admin_user(make_user):
    return make_user("boss", is_admin=True)


@pytest.fixture
def user_client(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client_(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def csrf_client():
    """A client that enforces CSRF like a browser does."""
    return Client(enforce_csrf_checks=True)

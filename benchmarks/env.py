"""The benchmarks' own world: database, Redis and Django in this process, bounded in time and
on loopback. The live stack (Daphne and a Celery worker as subprocesses) is ``stack.py``.

- Database: ``BENCH_DATABASE_URL`` if set; else PostgreSQL on 127.0.0.1:5432 (user postgres,
  database ``devbench_bench_<pid>``, created for the run and dropped after it); else SQLite in a
  temp dir.
- Redis: ``BENCH_REDIS_URL`` if set (its keys are not flushed); else the embedded Valkey
  (``devbench_site.embedded_valkey``) on a private unix socket in the temp dir.

Call :func:`prepare` before importing anything that needs Django.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgres://postgres@127.0.0.1:5432/{name}"


def _pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3):
            return True
    except Exception:
        return False


def _recreate_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=5, autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class Environment:
    tmp: Path
    database_url: str
    redis_url: str
    private_redis: bool
    valkey: object | None = None
    pg_name: str = ""
    secret_key: str = "benchmarks-only-secret-key-not-for-production-0123456789abcdef"  # noqa: S105

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, **self.django_env()}
        env.update(extra)
        return env

    def django_env(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": self.secret_key,
            "DEVBENCH_VAR_DIR": str(self.tmp / "var"),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DEVBENCH_LOCAL_HOST": "0",
            "DEVBENCH_DEFAULT_QUOTA": "30000",
            "DEVBENCH_CREATE_LIMIT_PER_HOUR": "1000000",
            "LOG_LEVEL": "WARNING",
            "DEVBENCH_API_RATE": "1000000/s",
            "PYTHONUNBUFFERED": "1",
        }

    def reset_state(self) -> None:
        """Empty every table and (the private) Redis: each benchmark starts from nothing."""
        from django.core.management import call_command

        from benches.provisioning import transport

        transport.close_all()
        call_command("flush", interactive=False, verbosity=0)
        self.redis_flush()

    def redis_flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        try:
            if self.private_redis:
                client.flushall()
            else:
                client.delete("celery", "unacked", "unacked_index")
        finally:
            client.close()

    def describe(self) -> dict:
        return {
            "database_kind": "postgresql" if self.database_url.startswith("postgres") else "sqlite",
            "redis_kind": "embedded valkey (private unix socket)" if self.valkey is not None else self.redis_url,
            "channel_layer": ("channels_redis.core.RedisChannelLayer" if os.environ.get("BENCH_CHANNEL_LAYER") == "core"
                              else "channels_redis.pubsub.RedisPubSubChannelLayer"),
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if self.valkey is not None:
            with contextlib.suppress(Exception):
                self.valkey.stop()
        if self.pg_name and os.environ.get("BENCH_KEEP_TMP") != "1":
            with contextlib.suppress(Exception):
                import psycopg

                with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=5,
                                     autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        if os.environ.get("BENCH_KEEP_TMP") == "1":
            print(f"kept {self.tmp} (BENCH_KEEP_TMP=1)")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def prepare(*, log=print) -> Environment:
    """Choose and create the database and Redis, set up Django here and migrate."""
    tmp = Path(tempfile.mkdtemp(prefix="devbench-bench-"))
    (tmp / "var").mkdir()
    database_url = os.environ.get("BENCH_DATABASE_URL", "")
    pg_name = ""
    if not database_url:
        if _pg_reachable():
            # One database per run (dropped at the end), so two runs never share or drop each other's.
            pg_name = f"devbench_bench_{os.getpid()}"
            _recreate_pg_database(pg_name)
            database_url = PG_URL.format(name=pg_name)
        else:
            database_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
            log("PostgreSQL not reachable on 127.0.0.1:5432: using SQLite (figures not comparable)")
    redis_url = os.environ.get("BENCH_REDIS_URL", "")
    valkey = None
    if not redis_url:
        from devbench_site import embedded_valkey

        sock = tmp / "valkey.sock"
        valkey = embedded_valkey.start(sock, tmp / "valkey")
        redis_url = f"unix://{sock}?db=0"
    env = Environment(tmp=tmp, database_url=database_url, redis_url=redis_url, private_redis=valkey is not None,
                      valkey=valkey, pg_name=pg_name)
    os.environ.update(env.django_env())
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    return env

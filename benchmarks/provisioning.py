"""2. Provisioning overhead: one create whose remote script exits at once.

DevBench: from sending ``POST /create-devbench`` to the ``script_complete`` frame on the user's
WebSocket (Daphne, the broker, a Celery worker, the SSH run over the worker's pooled connection,
storing and publishing). Beside it, in alternation: a bare ``ssh host script create NAME`` with
OpenSSH's client (a new connection each time, as the original ran it), and the same command on a
paramiko connection that is already open (what DevBench's pooled connection saves is then not
counted as DevBench's gain). Overhead = DevBench's median minus the baseline's median; the very
first create (the worker opens its SSH connection) is reported apart.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import time

from . import wsclient
from .data import api_keys_for, make_users, register_sshd_host
from .env import Environment
from .measure import median, percentile
from .stack import Stack

NAME = "provisioning"
TITLE = "Provisioning overhead (POST to script_complete vs bare ssh)"


async def _timed_creates(stack: Stack, key: str, names: list[str], sshd, script) -> list[dict]:
    ws = await wsclient.open_client(stack.ws_url, key)
    completes: asyncio.Queue = asyncio.Queue()

    def on_message(arrival: float, message: dict) -> None:
        if message.get("type") == "script_complete":
            completes.put_nowait((arrival, message))

    reader = asyncio.create_task(wsclient.read_into(ws, on_message))
    loop = asyncio.get_running_loop()
    samples = []
    warm_client = sshd.connect()

    def warm_exec(name: str) -> float:
        started = time.time()
        channel = warm_client.get_transport().open_session()
        channel.exec_command(shlex.join([str(script), "create", f"warm_{name}"]))
        while channel.recv(65536):
            pass
        if channel.recv_exit_status() != 0:
            raise RuntimeError("warm exec create failed")
        channel.close()
        return time.time() - started

    try:
        for name in names:
            warm = await loop.run_in_executor(None, warm_exec, name)
            bare_start = time.time()
            done = await loop.run_in_executor(None, lambda n=name: sshd.run(str(script), "create", f"bare_{n}"))
            bare = time.time() - bare_start
            if done.returncode != 0:
                raise RuntimeError(f"bare ssh create failed: {done.stderr}")
            started = time.time()
            status, body = await loop.run_in_executor(
                None, wsclient.post_json, stack.base_url + "/create-devbench", {"name": name}, key
            )
            if status != 200:
                raise RuntimeError(f"create-devbench answered {status}: {body}")
            arrival, message = await asyncio.wait_for(completes.get(), timeout=60)
            if message.get("exitCode") != 0:
                raise RuntimeError(f"create failed: {message}")
            samples.append({"name": name, "devbench_ms": (arrival - started) * 1000, "bare_ssh_ms": bare * 1000,
                            "warm_exec_ms": warm * 1000})
    finally:
        warm_client.close()
        await ws.close()
        await reader
    return samples


def run(environment: Environment, *, quick: bool = False, pairs: int | None = None) -> dict:
    from tests.sshd import make_agent_script, start_sshd

    pairs = pairs or (5 if quick else 30)
    environment.reset_state()
    tmp = environment.tmp / NAME
    sshd = start_sshd(tmp / "sshd")
    stack = None
    try:
        script = make_agent_script(tmp, script_name="agent", step_delay=0, output_format="human")
        register_sshd_host("provhost", sshd, script)
        [user] = make_users("prov", 1)
        key = api_keys_for([user])[user.pk]
        stack = Stack(environment).start()
        names = [f"p{index}" for index in range(pairs + 1)]
        with stack.profiled(NAME):
            samples = asyncio.run(_timed_creates(stack, key, names, sshd, script))
        usage = stack.usage()
    finally:
        if stack is not None:
            stack.stop()
        sshd.stop()
    bare_version = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip()
    first, measured = samples[0], samples[1:]
    dev = [s["devbench_ms"] for s in measured]
    bare = [s["bare_ssh_ms"] for s in measured]
    warm = [s["warm_exec_ms"] for s in measured]
    diffs = [s["devbench_ms"] - s["warm_exec_ms"] for s in measured]
    overhead_bare = median(dev) - median(bare)
    overhead = median(dev) - median(warm)
    rows = [
        ("create: POST to script_complete, median ms", round(median(dev), 1), "", None),
        ("bare `ssh host script create`, median ms", round(median(bare), 1), "", None),
        ("overhead over bare ssh (new connection) ms", round(overhead_bare, 1), "<= 150", overhead_bare <= 150),
        ("same command on an open connection, median ms", round(median(warm), 1), "", None),
        ("overhead over the open connection ms", round(overhead, 1), "<= 150 (stricter)", overhead <= 150),
        ("  median of pairwise differences ms", round(median(diffs), 1), "", None),
        ("DevBench p90 ms", round(percentile(dev, 90), 1), "", None),
        ("first create (worker opens its SSH connection) ms", round(first["devbench_ms"], 1), "", None),
    ]
    return {
        "name": NAME,
        "title": TITLE,
        "config": {"pairs": len(measured), "ssh_client": bare_version, "worker_pool": "prefork",
                   "worker_concurrency": 4},
        "samples": samples,
        "overhead_ms": overhead,
        "overhead_over_bare_ssh_ms": overhead_bare,
        "processes": usage,
        "rows": rows,
    }

"""``make run``: start everything DevBench needs in the foreground, stop it all on Ctrl-C.

Order: the embedded Valkey (when REDIS_URL is unset), migrations, the bootstrap admin, then
Daphne (HTTP + WebSocket), a Celery worker and Celery beat as child processes. SIGINT or SIGTERM
stops the children (SIGTERM, then SIGKILL after a grace period) and the Valkey server; if any
child dies, the rest are stopped too and the exit code is non-zero.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

GRACE_SECONDS = 10


def _children_commands(host: str, port: str) -> dict[str, list[str]]:
    python = sys.executable
    concurrency = os.environ.get("DEVBENCH_WORKER_CONCURRENCY", "4")
    return {
        "web": [python, "-m", "daphne", "-b", host, "-p", port, "devbench_site.asgi:application"],
        "worker": [python, "-m", "celery", "-A", "devbench_site", "worker", "-l", "info", "--pool", "prefork",
                   "--concurrency", concurrency, "-n", "devbench@%h"],
        "beat": [python, "-m", "celery", "-A", "devbench_site", "beat", "-l", "info"],
    }


def _stop(children: dict[str, subprocess.Popen]) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    """Run DevBench until interrupted; return the exit code."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devbench_site.settings")
    import django
    from django.conf import settings

    django.setup()
    from django.core.management import call_command

    from devbench_site import embedded_valkey

    valkey = None
    if settings.EMBEDDED_VALKEY:
        valkey = embedded_valkey.start(settings.EMBEDDED_VALKEY_SOCKET, settings.VAR_DIR / "valkey")
        print(f"Embedded Valkey on unix socket {settings.EMBEDDED_VALKEY_SOCKET}", flush=True)

    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    children: dict[str, subprocess.Popen] = {}
    exit_code = 0
    try:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensureadmin")
        host = os.environ.get("HOST", "127.0.0.1")
        port = os.environ.get("PORT", "9090")
        for name, command in _children_commands(host, port).items():
            # Own session: Ctrl-C reaches only this process, which stops the children in order.
            children[name] = subprocess.Popen(command, start_new_session=True)
        print(f"DevBench is running on http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", flush=True)
                    exit_code = proc.returncode or 1
                    stopping = True
                    break
            time.sleep(0.2)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop(children)
        if valkey is not None:
            valkey.stop()
        print("DevBench stopped.", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

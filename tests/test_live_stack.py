"""End to end over real sockets: Daphne, a Celery worker, Redis, a WebSocket client, and the
``make run`` runner starting and stopping everything."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from websockets.sync.client import connect as ws_connect

from accounts.services import create_api_key
from benches.models import DevBench, Job
from tests.live_stack import ROOT, free_port, wait_for_http, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def post_json(url: str, body: dict, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_create_streams_to_a_real_websocket_client_through_daphne(live_stack, user, local_agent):
    local_agent.configure(step_delay=0.02)
    _key, raw = create_api_key(user=user)
    with ws_connect(live_stack.ws_url + "/", additional_headers={"Authorization": f"Bearer {raw}"}) as ws:
        ws.send(json.dumps({"type": "register", "userId": user.pk}))
        started = time.monotonic()
        status, body = post_json(live_stack.base_url + "/create-devbench", {"name": "e2e"}, raw)
        assert status == 200, body
        messages = []
        completed_at = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            messages.append(message)
            if message["type"] == "script_complete":
                completed_at = time.monotonic()
            if message["type"] == "status_update":
                break
    assert completed_at is not None, live_stack.logs()
    bench = DevBench.objects.get(pk=body["devbenchId"])
    job = Job.objects.get(bench=bench)
    outputs = [m for m in messages if m["type"] == "script_output"]
    assert [m["type"] for m in messages] == ["script_output"] * len(outputs) + ["script_complete", "status_update"]
    assert [m["seq"] for m in outputs] == list(range(1, len(outputs) + 1))
    assert messages[-1]["status"] == "active" and bench.status == "active"
    script_seconds = (job.finished_at - job.started_at).total_seconds()
    overhead_ms = ((completed_at - started) - script_seconds) * 1000
    print(f"\nPOST to script_complete minus the job's own run time: {overhead_ms:.0f} ms")


def test_dashboard_replays_over_the_compatible_websocket_path_with_a_session(live_stack, user, local_agent):
    # Sign in with the form like a browser, then open the WebSocket with the session cookie.
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(live_stack.base_url + "/login").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": "alice", "password": "Sturdy-Passw0rd!", "csrfmiddlewaretoken": token})
    response = opener.open(live_stack.base_url + "/login", data=form.encode())
    assert response.url.endswith("/dashboard")
    cookies = "; ".join(f"{c.name}={c.value}" for c in jar)
    headers = {"Cookie": cookies, "Origin": live_stack.base_url}
    with ws_connect(live_stack.ws_url + "/", additional_headers=headers) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}


@pytest.mark.django_db(transaction=False)
def test_make_run_starts_everything_and_ctrl_c_stops_it(tmp_path):
    """The runner on embedded defaults: Valkey, SQLite, Daphne, a worker and beat; SIGINT ends all."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL")}
    env.update({"DEVBENCH_VAR_DIR": str(tmp_path / "var"), "PORT": str(port), "PYTHONUNBUFFERED": "1",
                "DEVBENCH_WORKER_CONCURRENCY": "1"})
    env.pop("DEVBENCH_TEST_DATABASE_NAME", None)
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        runner = subprocess.Popen([sys.executable, "-m", "devbench_site.runner"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout=60)
        output = log_path.read_text()
        password = re.search(r"Created admin account 'admin' with password: (\S+)", output).group(1)
        # Sign in as the printed admin and add a user through the admin JSON route.
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"http://127.0.0.1:{port}/login").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"username": "admin", "password": password, "csrfmiddlewaretoken": token})
        landing = opener.open(f"http://127.0.0.1:{port}/login", data=form.encode())
        assert landing.url.endswith("/admin/")
        csrf = next(c.value for c in jar if c.name == "csrftoken")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/admin/add-user", method="POST",
            data=json.dumps({"username": "john", "email": "john@example.com", "password": "Correct-Horse-9"}).encode(),
            headers={"Content-Type": "application/json", "X-CSRFToken": csrf, "Referer": f"http://127.0.0.1:{port}/"},
        )
        assert json.loads(opener.open(request).read()) == {"success": True}
        children = subprocess.run(["pgrep", "-P", str(runner.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 4, output  # Valkey, Daphne, the worker and beat
    finally:
        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=40)
    assert runner.returncode == 0, log_path.read_text()
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in children), timeout=5,
               message="the runner's children to end")
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}"), f"child {pid} still running"
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "var")], capture_output=True, text=True).stdout
    assert leftover.strip() == "", "stray processes: " + leftover
    assert "DevBench stopped." in log_path.read_text()

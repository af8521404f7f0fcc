"""Races, bad input on every route, and the security rules that hold across the whole app."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import close_old_connections
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts import services as account_services
from accounts.models import APIKey, User
from benches import services
from benches.models import DevBench, Host, Job
from tests.bench_fixtures import build_active_bench

ROOT = Path(__file__).resolve().parent.parent
# Transactional only where a test needs commits: threads with their own connections, and jobs
# run through ``run_jobs`` (which asks for ``transactional_db`` itself).
pytestmark = pytest.mark.django_db


def state_counts() -> tuple[int, int, int, int, int]:
    return (User.objects.count(), DevBench.objects.count(), Job.objects.count(), APIKey.objects.count(),
            Host.objects.count())


# --- races --------------------------------------------------------------------------------------

def creates_at_once(users: list, name: str) -> list[int]:
    """Each user POSTs ``/create-devbench`` with ``name`` at the same moment; the status codes."""
    barrier = threading.Barrier(len(users))
    results: list[int] = []

    def attempt(user):
        close_old_connections()
        client = Client()
        client.force_login(user)
        barrier.wait()
        response = client.post("/create-devbench", data=json.dumps({"name": name}), content_type="application/json")
        results.append(response.status_code)
        close_old_connections()

    threads = [threading.Thread(target=attempt, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results)


@pytest.mark.django_db(transaction=True)  # each thread's own connection sees the rows
def test_ten_concurrent_creates_of_one_name_make_exactly_one_bench(user, local_agent):
    assert creates_at_once([user] * 10, "same") == [200] + [400] * 9
    assert DevBench.objects.filter(user=user, name="same").count() == 1
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # each thread's own connection sees the rows
def test_concurrent_creates_never_fill_a_host_beyond_its_capacity(make_user, local_agent):
    Host.objects.filter(name="local").update(capacity=3)
    users = [make_user(f"racer{letter}") for letter in "abcdefgh"]
    assert creates_at_once(users, "box") == [200] * 3 + [503] * 5
    assert DevBench.objects.filter(host__name="local").count() == 3
    assert Job.objects.count() == 3


@pytest.mark.django_db(transaction=True)  # each thread's own connection sees the rows
def test_delete_and_activate_at_once_have_one_winner(user, local_agent, run_jobs):
    bench = services.create_bench(user=user, name="contested")
    run_jobs()
    barrier = threading.Barrier(2)
    results: dict[str, int] = {}

    def attempt(path: str):
        close_old_connections()
        client = Client()
        client.force_login(user)
        barrier.wait()
        results[path] = client.post(path.format(bench.pk)).status_code
        close_old_connections()

    paths = ["/delete-devbench/{}", "/activate-devbench/{}"]
    threads = [threading.Thread(target=attempt, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == [200, 409]
    queued = list(Job.objects.filter(state="queued").values_list("command", flat=True))
    assert len(queued) == 1
    bench.refresh_from_db()
    assert bench.status == ("deleting" if queued == ["delete"] else "active")


def test_double_submitted_create_form_makes_one_bench(user_client, user, local_agent):
    first = user_client.post("/create-devbench", {"name": "twice"})
    second = user_client.post("/create-devbench", {"name": "twice"})
    assert (first.status_code, second.status_code) == (200, 400)
    assert second.json()["error"] == "DevBench with this name already exists"
    assert DevBench.objects.filter(user=user).count() == 1


# --- bad input everywhere -----------------------------------------------------------------------

BAD_BODIES = [
    ("oversized JSON", "application/json", b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'),
    ("oversized form", "application/x-www-form-urlencoded", b"name=" + b"x" * (2 * 1024 * 1024)),
    ("malformed JSON", "application/json", b'{"name": '),
    ("JSON list", "application/json", b"[1, 2]"),
    ("JSON nested", "application/json", b'{"name": {"a": 1}, "username": [1], "newPassword": null}'),
    ("XML", "application/xml", b"<name>x</name>"),
    ("plain text", "text/plain", b"name=x"),
    ("NUL in name", "application/json", b'{"name": "a\\u0000b", "username": "a\\u0000b"}'),
    ("unicode name", "application/json", '{"name": "bénch", "username": "jösé"}'.encode()),
    ("invalid UTF-8", "application/json", b'{"name": "\xff\xfe"}'),
]


@pytest.fixture
def targets(user, admin_user, local_agent):
    bench = build_active_bench(user, "target")
    other = account_services.create_user(username="other", email="o@example.com", password="Sturdy-Passw0rd!")
    return {"bench": bench.pk, "user": other.pk, "job": Job.objects.get(bench=bench).pk}


POST_ROUTES = [
    ("user", "/create-devbench"), ("user", "/delete-devbench/{bench}"), ("user", "/activate-devbench/{bench}"),
    ("user", "/start-devbench/{bench}"), ("user", "/stop-devbench/{bench}"), ("user", "/cancel-job/{job}"),
    ("user", "/account/api-keys/create"), ("admin", "/admin/add-user"), ("admin", "/admin/delete-user/{user}"),
    ("admin", "/admin/reset-password/{user}"), ("anon", "/login"),
]


@pytest.mark.parametrize(("who", "path"), POST_ROUTES)
def test_bad_bodies_get_a_clear_4xx_and_change_nothing(user, admin_user, targets, who, path):
    client = Client(raise_request_exception=False)
    if who != "anon":
        client.force_login(user if who == "user" else admin_user)
    takes_fields = path in ("/create-devbench", "/admin/add-user", "/login", "/admin/reset-password/{user}")
    for label, content_type, body in BAD_BODIES:
        before = state_counts()
        response = client.generic("POST", path.format(**targets), data=body, content_type=content_type,
                                  HTTP_ACCEPT="application/json")
        # Routes that take no fields (delete, activate...) may accept any body as an empty one:
        # they answer as they would without it. Nothing may ever answer 5xx.
        assert response.status_code < 500, (label, response.content[:200])
        if takes_fields:
            ok_login_page = path == "/login" and response.status_code == 200
            assert 400 <= response.status_code < 500 or ok_login_page, (label, response.status_code)
            if response.get("Content-Type", "").startswith("application/json"):
                assert response.json()["error"], label
            assert state_counts() == before, label
        if label.startswith("oversized"):
            assert response.status_code in (400, 413) or not takes_fields, label


@pytest.mark.parametrize(
    "path",
    ["/delete-devbench/-1", "/delete-devbench/99999999999999999999999", "/check-status/0",
     "/check-status/abc", "/cancel-job/18446744073709551616", "/admin/delete-user/%00"],
)
def test_negative_huge_and_odd_ids_are_404(user_client, path, local_agent):
    method = user_client.get if path.startswith("/check-status") else user_client.post
    response = method(path, HTTP_ACCEPT="application/json")
    assert response.status_code in (403, 404)  # 403 only for the admin route as a non-admin
    assert response.json()["error"]


# --- CSRF on every cookie-authenticated unsafe route --------------------------------------------

def _routes(patterns=None, prefix=""):
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = getattr(entry.pattern, "_route", None)
        if route is None:
            continue  # regex routes (admin internals) are covered by the admin's own CSRF checks
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + route)
        elif isinstance(entry, URLPattern):
            yield prefix + route


def _concrete(route: str, ids: dict) -> str | None:
    path = route
    for token, value in (("<id:object_id>", ids["bench"]), ("<id:user_id>", ids["user"]), ("<id:key_id>", ids["key"]),
                         ("<id:bench_id>", ids["bench"]), ("<id:job_id>", ids["job"]), ("<int:pk>", ids["bench"]),
                         ("<str:user>", "alice"), ("<str:username>", "alice"), ("<id:pk>", ids["bench"])):
        path = path.replace(token, str(value))
    return None if "<" in path else "/" + path


def test_every_unsafe_route_refuses_a_cookie_request_without_csrf_token(user, admin_user, targets):
    key, _raw = account_services.create_api_key(user=user)
    ids = {**targets, "key": key.pk}
    checked = []
    for route in sorted(set(_routes())):
        if route.startswith("admin/") and route.count("/") > 1 and not route.startswith("admin/add-user") \
                and "delete-user" not in route and "reset-password" not in route:
            continue
        path = _concrete(route, ids)
        if path is None:
            continue
        for who in (user, admin_user):
            client = Client(enforce_csrf_checks=True, raise_request_exception=False)
            client.force_login(who)
            before = state_counts()
            for method in ("post", "put", "patch", "delete"):
                response = getattr(client, method)(path, data="{}", content_type="application/json")
                assert response.status_code in (403, 404, 405), (method, path, response.status_code)
            assert state_counts() == before, path
        checked.append(path)
    assert "/create-devbench" in checked and "/admin/add-user" in checked and "/logout" in checked


# --- production security settings ---------------------------------------------------------------

PRODUCTION_PROBE = """
import json
from django.test import Client
response = Client().get("/login", secure=True)
print(json.dumps({name: response.get(name) for name in (
    "Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy",
    "X-Frame-Options", "Cross-Origin-Opener-Policy")}))
print(json.dumps({"redirect": Client().get("/login").status_code}))
print(json.dumps({"cookie_secure": str(Client().get("/login", secure=True).cookies["csrftoken"]["secure"])}))
"""


def test_production_settings_send_secure_headers(tmp_path):
    env = {**os.environ, "DEBUG": "0", "DEVBENCH_HTTPS": "1", "SECRET_KEY": "p" * 60 + "-secret",
           "ALLOWED_HOSTS": "testserver", "DEVBENCH_VAR_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", PRODUCTION_PROBE], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.strip().splitlines() if line.startswith("{")]
    headers, redirect, cookie = lines
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert redirect == {"redirect": 301}  # plain HTTP is sent to HTTPS
    assert cookie == {"cookie_secure": "True"}


def test_host_registration_is_admin_only(user_client, admin_client_):
    assert user_client.get("/admin/benches/host/add/").status_code == 403
    response = user_client.post("/admin/benches/host/add/", {"name": "evil", "address": "10.0.0.1"})
    assert response.status_code == 403
    assert not Host.objects.filter(name="evil").exists()
    assert admin_client_.get("/admin/benches/host/add/").status_code == 200


# --- secrets never logged -----------------------------------------------------------------------

def test_secrets_never_reach_the_logs(caplog, capfd, admin_client_, admin_user, sshd_host, tmp_path, settings,
                                      run_jobs):
    caplog.set_level(logging.DEBUG)
    settings.DEVBENCH_LOCAL_HOST = False
    password = "Very-Secret-Pass-42"
    new_password = "Another-Secret-Pass-43"
    admin_client_.post("/admin/add-user", data=json.dumps(
        {"username": "sam", "email": "sam@example.com", "password": password}), content_type="application/json")
    sam = User.objects.get(username="sam")
    Client().post("/login", {"username": "sam", "password": password})
    Client().post("/login", {"username": "sam", "password": password + "-wrong"})
    _key, raw_key = account_services.create_api_key(user=sam, name="cli")
    Client().get("/api/user-info", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    Client().get("/api/user-info", HTTP_AUTHORIZATION=f"Bearer {raw_key}x")
    private_key = sshd_host.client_key_path.read_text()
    from tests.bench_fixtures import AgentControl

    control = AgentControl(tmp_path, "agent-secret")
    services.register_host(name="secretive", address=sshd_host.host, port=sshd_host.port,
                           username=sshd_host.username, private_key=private_key, script_path=str(control.script),
                           known_hosts_file=str(sshd_host.known_hosts_path))
    services.create_bench(user=sam, name="quiet")
    [job] = run_jobs()
    assert job.state == "succeeded"
    admin_client_.post(f"/admin/reset-password/{sam.pk}", data=json.dumps({"newPassword": new_password}),
                       content_type="application/json")
    captured = capfd.readouterr()
    everything = caplog.text + captured.out + captured.err
    key_body = "".join(line for line in private_key.splitlines() if "PRIVATE KEY" not in line)
    for secret in (password, new_password, raw_key, key_body[:40], key_body[-40:]):
        assert secret not in everything
    assert Host.objects.get(name="secretive").private_key_encrypted
    assert key_body[:40] not in Host.objects.get(name="secretive").private_key_encrypted

"""API keys (Bearer, CSRF exemption, revocation), the failed-login limit and the admin bootstrap."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from accounts import services
from accounts.models import APIKey, User
from tests.conftest import STRONG_PASSWORD

pytestmark = pytest.mark.django_db


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_valid_key_authenticates_and_records_last_use(user):
    key, raw = services.create_api_key(user=user, name="cli")
    response = Client().get("/api/user-info", **bearer(raw))
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert key.key_hash != raw and raw not in key.key_hash


@pytest.mark.parametrize("raw", ["dbk_wrong", "", "x" * 500])
def test_wrong_key_is_401(user, raw):
    response = Client().get("/api/user-info", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid or revoked API key"}


def test_revoked_key_is_401(user):
    key, raw = services.create_api_key(user=user)
    services.revoke_api_key(user=user, key_id=key.pk)
    assert Client().get("/api/user-info", **bearer(raw)).status_code == 401


def test_inactive_user_key_is_401(user):
    _key, raw = services.create_api_key(user=user)
    user.is_active = False
    user.save()
    assert Client().get("/api/user-info", **bearer(raw)).status_code == 401


def test_bearer_requests_skip_csrf_but_cookie_requests_do_not(admin_user):
    _key, raw = services.create_api_key(user=admin_user)
    body = json.dumps({"username": "john", "email": "john@example.com", "password": "Correct-Horse-9"})
    csrf_client = Client(enforce_csrf_checks=True)
    response = csrf_client.post("/admin/add-user", data=body, content_type="application/json", **bearer(raw))
    assert response.status_code == 200
    assert User.objects.filter(username="john").exists()

    session_client = Client(enforce_csrf_checks=True)
    session_client.force_login(admin_user)
    body = body.replace("john", "jane")
    response = session_client.post("/admin/add-user", data=body, content_type="application/json")
    assert response.status_code == 403
    assert not User.objects.filter(username="jane").exists()


def test_api_keys_page_creates_shows_once_and_revokes(user_client, user):
    response = user_client.post("/account/api-keys/create", {"name": "laptop"})
    assert response.status_code == 200
    raw = response.context["new_key"]
    assert raw.startswith("dbk_")
    assert raw in response.content.decode()
    page = user_client.get("/account/api-keys").content.decode()
    assert "laptop" in page and raw not in page
    key = APIKey.objects.get(user=user)
    assert user_client.post(f"/account/api-keys/{key.pk}/revoke").status_code == 302
    assert Client().get("/api/user-info", **bearer(raw)).status_code == 401


def test_cannot_revoke_someone_elses_key(user_client, make_user):
    bob = make_user("bob")
    key, raw = services.create_api_key(user=bob)
    response = user_client.post(f"/account/api-keys/{key.pk}/revoke")
    assert response.status_code == 404
    assert Client().get("/api/user-info", **bearer(raw)).status_code == 200


def test_createapikey_command_prints_a_working_key(user):
    out = io.StringIO()
    call_command("createapikey", "alice", "--name", "ci", stdout=out)
    raw = out.getvalue().strip()
    assert APIKey.objects.get(user=user).name == "ci"
    assert Client().get("/api/user-info", **bearer(raw)).json()["userId"] == user.pk


def test_five_failed_logins_per_username_then_429(user):
    for attempt in range(5):
        response = Client(REMOTE_ADDR=f"10.0.0.{attempt}").post("/login", {"username": "alice", "password": "nope"})
        assert response.status_code == 200
    response = Client(REMOTE_ADDR="10.0.0.99").post("/login", {"username": "alice", "password": STRONG_PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts" in response.content


def test_five_failed_logins_per_address_then_429(make_user):
    make_user("carol")
    client = Client(REMOTE_ADDR="10.1.1.1")
    for name in ("aa", "bb", "cc", "dd", "ee"):
        assert client.post("/login", {"username": name, "password": "nope"}).status_code == 200
    response = client.post("/login", {"username": "carol", "password": STRONG_PASSWORD})
    assert response.status_code == 429
    # Another address may still sign in as carol.
    assert Client(REMOTE_ADDR="10.2.2.2").post(
        "/login", {"username": "carol", "password": STRONG_PASSWORD}
    ).status_code == 302


def test_lockout_answers_json_clients_in_json(user):
    client = Client()
    for _ in range(5):
        client.post("/login", data=json.dumps({"username": "alice", "password": "x"}), content_type="application/json")
    response = client.post(
        "/login", data=json.dumps({"username": "alice", "password": "x"}), content_type="application/json"
    )
    assert response.status_code == 429
    assert response.json() == {"error": "Too many failed sign-in attempts. Wait a minute and try again."}


def test_ensureadmin_generates_password_once():
    out = io.StringIO()
    with override_settings(DEVBENCH_ADMIN_USERNAME="chief", DEVBENCH_ADMIN_PASSWORD=""):
        call_command("ensureadmin", stdout=out)
        text = out.getvalue()
        password = text.split("with password: ")[1].split()[0]
        chief = User.objects.get(username="chief")
        assert chief.is_staff and chief.is_superuser
        assert chief.check_password(password)
        assert len(password) >= 20
        again = io.StringIO()
        call_command("ensureadmin", stdout=again)
        assert again.getvalue() == ""


def test_ensureadmin_uses_configured_password():
    with override_settings(DEVBENCH_ADMIN_USERNAME="chief", DEVBENCH_ADMIN_PASSWORD="Configured-Pass-1"):
        out = io.StringIO()
        call_command("ensureadmin", stdout=out)
    assert out.getvalue() == ""
    assert User.objects.get(username="chief").check_password("Configured-Pass-1")


def test_no_fixed_default_admin_password_works():
    call_command("ensureadmin", stdout=io.StringIO())
    response = Client().post("/login", {"username": "admin", "password": "admin123"})
    assert response.status_code == 200

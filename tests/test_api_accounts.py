"""The JSON API's accounts part: /api/v1/me/, your API keys, and users (admins only)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services as account_services
from accounts.models import APIKey, User
from benches import services as bench_services
from tests.api_helpers import bearer_client, post_json
from tests.conftest import STRONG_PASSWORD

pytestmark = pytest.mark.django_db

USER_KEYS = {"id", "username", "email", "isAdmin", "isActive", "benchQuota", "benchCount", "dateJoined", "lastLogin",
             "deletionRequestedAt"}


@pytest.fixture
def api(user):
    return bearer_client(user)


@pytest.fixture
def admin_api(admin_user):
    return bearer_client(admin_user)


def test_me(api, user):
    body = api.get("/api/v1/me/").json()
    assert body | {"dateJoined": None} == {
        "id": user.pk, "username": "alice", "email": "alice@example.com", "isAdmin": False, "benchQuota": None,
        "dateJoined": None, "lastLogin": None,
    }


def test_api_key_is_shown_once_works_and_revokes(api, user):
    response = post_json(api, "/api/v1/api-keys/", {"name": "laptop"})
    assert response.status_code == 201
    created = response.json()
    assert created["key"].startswith("dbk_") and created["prefix"] == created["key"][:12]
    assert created["active"] is True and created["name"] == "laptop"
    # Listed without the key itself.
    listed = api.get("/api/v1/api-keys/").json()
    assert listed["count"] == 2  # the test client's own and the new one
    assert all("key" not in item for item in listed["results"])
    assert created["key"] not in api.get("/api/v1/api-keys/").content.decode()
    laptop = Client(headers={"Authorization": f"Bearer {created['key']}"})
    assert laptop.get("/api/v1/me/").json()["username"] == "alice"

    revoked = api.post(f"/api/v1/api-keys/{created['id']}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False and revoked.json()["revokedAt"]
    assert laptop.get("/api/v1/me/").status_code == 401
    # Revoking again is harmless.
    assert api.post(f"/api/v1/api-keys/{created['id']}/revoke/").status_code == 200


def test_api_key_name_too_long_is_400(api):
    response = post_json(api, "/api/v1/api-keys/", {"name": "x" * 101})
    assert response.status_code == 400
    assert response.json() == {"error": "Key name must be at most 100 characters", "fields": {"name": ["Too long."]}}


def test_another_users_key_is_404(api, make_user):
    key, _raw = account_services.create_api_key(user=make_user("bob"))
    response = api.post(f"/api/v1/api-keys/{key.pk}/revoke/")
    assert (response.status_code, response.json()) == (404, {"error": "API key not found"})
    key.refresh_from_db()
    assert key.revoked_at is None


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/users/"), ("post", "/api/v1/users/"), ("get", "/api/v1/users/1/"),
     ("delete", "/api/v1/users/1/"), ("post", "/api/v1/users/1/reset-password/"), ("get", "/api/v1/hosts/"),
     ("post", "/api/v1/hosts/"), ("post", "/api/v1/hosts/1/test-connection/"), ("get", "/api/v1/session-hosts/")],
)
def test_admin_endpoints_are_403_for_users(api, method, path):
    response = getattr(api, method)(path)
    assert (response.status_code, response.json()) == (403, {"error": "Admin access required"})


def test_admin_creates_lists_and_reads_users_without_n_plus_one(admin_api, make_user, local_agent,
                                                                django_assert_max_num_queries):
    response = post_json(admin_api, "/api/v1/users/",
                         {"username": "john", "email": "john@example.com", "password": "Correct-Horse-9",
                          "benchQuota": 3})
    assert response.status_code == 201
    john = response.json()
    assert set(john) == USER_KEYS
    assert (john["username"], john["isAdmin"], john["benchQuota"], john["benchCount"]) == ("john", False, 3, 0)
    assert Client().login(username="john", password="Correct-Horse-9")
    for name in ("carol", "dave", "erin", "frank"):
        bench_services.create_bench(user=make_user(name), name="vm")
    admin_api.get("/api/v1/me/")  # the key's last use is recorded (once a minute)
    with django_assert_max_num_queries(3):  # the key, the count, the page
        listed = admin_api.get("/api/v1/users/").json()
    assert [(u["username"], u["benchCount"]) for u in listed["results"]] == [
        ("boss", 0), ("carol", 1), ("dave", 1), ("erin", 1), ("frank", 1), ("john", 0)]
    assert admin_api.get(f"/api/v1/users/{john['id']}/").json()["email"] == "john@example.com"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [({"username": "j0hn", "email": "j@example.com", "password": STRONG_PASSWORD}, "username",
      "Username must contain letters only"),
     ({"username": "john", "email": "nope", "password": STRONG_PASSWORD}, "email",
      "A valid email address is required"),
     ({"username": "john", "email": "j@example.com", "password": "123"}, "password", None),
     ({"username": "Alice", "email": "j@example.com", "password": STRONG_PASSWORD}, "username",
      "Username already exists")],
)
def test_user_creation_refusals_are_the_services(admin_api, user, body, field, message):
    response = post_json(admin_api, "/api/v1/users/", body)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    if message:
        assert response.json()["error"] == message
    assert not User.objects.filter(username="john").exists()


def test_reset_password(admin_api, user):
    response = post_json(admin_api, f"/api/v1/users/{user.pk}/reset-password/", {"newPassword": "Another-Pass-77"})
    assert response.status_code == 204
    assert Client().login(username="alice", password="Another-Pass-77")
    weak = post_json(admin_api, f"/api/v1/users/{user.pk}/reset-password/", {"newPassword": "123"})
    assert weak.status_code == 400
    assert list(weak.json()["fields"]) == ["newPassword"]  # the original's field name, as sent


def test_admins_cannot_be_deleted_or_reset(admin_api, make_user):
    other_admin = make_user("chief", is_admin=True)
    response = admin_api.delete(f"/api/v1/users/{other_admin.pk}/")
    assert (response.status_code, response.json()) == (403, {"error": "Cannot delete an admin user"})
    response = post_json(admin_api, f"/api/v1/users/{other_admin.pk}/reset-password/", {"newPassword": "x"})
    assert (response.status_code, response.json()) == (403, {"error": "Cannot reset the password of an admin user"})
    assert admin_api.delete("/api/v1/users/999999/").json() == {"error": "User not found"}


def test_delete_user_without_benches_is_204(admin_api, make_user):
    bob = make_user("bob")
    account_services.create_api_key(user=bob)
    assert admin_api.delete(f"/api/v1/users/{bob.pk}/").status_code == 204
    assert not User.objects.filter(pk=bob.pk).exists()


@pytest.mark.django_db(transaction=True)  # jobs run with the output flusher's own connection
def test_delete_user_with_benches_is_202_until_they_are_removed(admin_api, make_user, local_agent, run_jobs):
    carol = make_user("carol")
    bench_services.create_bench(user=carol, name="one")
    run_jobs()
    response = admin_api.delete(f"/api/v1/users/{carol.pk}/")
    assert response.status_code == 202
    assert response.json()["isActive"] is False and response.json()["deletionRequestedAt"]
    assert not APIKey.objects.filter(user=carol, revoked_at__isnull=True).exists()
    run_jobs()
    assert not User.objects.filter(pk=carol.pk).exists()

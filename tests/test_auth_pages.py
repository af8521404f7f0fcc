"""Sign-in, sign-out and every redirect rule of the compatible pages."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.conftest import STRONG_PASSWORD

pytestmark = pytest.mark.django_db


def test_login_page_renders_form():
    response = Client().get("/login")
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="password"' in response.content


def test_user_login_with_form_redirects_to_dashboard(user):
    response = Client().post("/login", {"username": "alice", "password": STRONG_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard"


def test_admin_login_redirects_to_admin(admin_user):
    response = Client().post("/login", {"username": "boss", "password": STRONG_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/admin"


def test_login_accepts_json_body_and_any_username_case(user):
    response = Client().post(
        "/login", data=json.dumps({"username": "ALICE", "password": STRONG_PASSWORD}), content_type="application/json"
    )
    assert response.status_code == 302
    assert response["Location"] == "/dashboard"


def test_failed_login_rerenders_form_with_error(user):
    response = Client().post("/login", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert b"Invalid username or password" in response.content
    assert "_auth_user_id" not in response.client.session


def test_login_with_malformed_json_is_a_clear_400():
    response = Client().post("/login", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert b"Malformed JSON body" in response.content


def test_login_rotates_session_key(user):
    client = Client()
    client.get("/login")
    session = client.session
    session["marker"] = "before"
    session.save()
    before = session.session_key
    client.cookies["sessionid"] = before
    client.post("/login", {"username": "alice", "password": STRONG_PASSWORD})
    assert client.cookies["sessionid"].value != before


def test_login_follows_safe_next_but_not_offsite(user):
    response = Client().post("/login?next=/help", {"username": "alice", "password": STRONG_PASSWORD})
    assert response["Location"] == "/help"
    response = Client().post("/login?next=https://evil.example/", {"username": "alice", "password": STRONG_PASSWORD})
    assert response["Location"] == "/dashboard"


def test_login_requires_csrf_token(user, csrf_client):
    response = csrf_client.post("/login", {"username": "alice", "password": STRONG_PASSWORD})
    assert response.status_code == 403
    page = csrf_client.get("/login")
    token = page.cookies["csrftoken"].value
    response = csrf_client.post(
        "/login", {"username": "alice", "password": STRONG_PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


def test_session_cookie_is_httponly_and_lax(user):
    response = Client().post("/login", {"username": "alice", "password": STRONG_PASSWORD})
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


@pytest.mark.parametrize("method", ["get", "post"])
def test_logout_redirects_to_login_and_ends_session(user_client, method):
    response = getattr(user_client, method)("/logout")
    assert response.status_code == 302
    assert response["Location"] == "/login"
    assert user_client.get("/dashboard")["Location"] == "/login"


@pytest.mark.parametrize("path", ["/dashboard", "/help", "/api/user-info", "/account/api-keys"])
def test_anonymous_is_sent_to_login(path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == "/login"


def test_dashboard_for_user_and_redirect_for_admin(user_client, admin_client_):
    assert user_client.get("/dashboard").status_code == 200
    response = admin_client_.get("/dashboard")
    assert response.status_code == 302
    assert response["Location"] == "/admin"


def test_help_page_for_any_signed_in_user(user_client, admin_client_):
    assert user_client.get("/help").status_code == 200
    assert admin_client_.get("/help").status_code == 200


def test_user_info_json(user_client, user):
    response = user_client.get("/api/user-info")
    assert response.status_code == 200
    assert response.json() == {"userId": user.pk, "username": "alice", "isAdmin": False}


def test_admin_panel_redirects_anonymous_to_login():
    response = Client().get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/login"
    response = Client().get("/admin/accounts/user/")
    assert response["Location"] == "/login?next=%2Fadmin%2Faccounts%2Fuser%2F"


def test_admin_panel_is_403_for_signed_in_non_admin(user_client):
    for path in ("/admin/", "/admin/accounts/user/", "/admin/login/"):
        response = user_client.get(path)
        assert response.status_code == 403, path
        assert b'name="password"' not in response.content


def test_admin_panel_lists_and_searches_users(admin_client_, make_user):
    make_user("carol")
    response = admin_client_.get("/admin/accounts/user/?q=carol")
    assert response.status_code == 200
    assert b"carol@example.com" in response.content


def test_root_sends_people_where_they_belong(user_client):
    assert Client().get("/")["Location"] == "/login"
    assert user_client.get("/")["Location"] == "/dashboard"


def test_unknown_path_is_json_404_for_programs():
    response = Client().get("/no/such/page", HTTP_ACCEPT="application/json")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}

"""The original's admin JSON routes: validation, messages, admin-only, CSRF."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.models import User
from tests.conftest import STRONG_PASSWORD

pytestmark = pytest.mark.django_db

NEW_USER = {"username": "john", "email": "john@example.com", "password": "Correct-Horse-9"}


def post_json(client: Client, path: str, body) -> object:
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_add_user_with_json(admin_client_, production_password_hashers):
    response = post_json(admin_client_, "/admin/add-user", NEW_USER)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    john = User.objects.get(username="john")
    assert john.email == "john@example.com"
    assert john.check_password("Correct-Horse-9")
    assert john.password.startswith("argon2")
    assert not john.is_staff


def test_add_user_with_form_body(admin_client_):
    response = admin_client_.post("/admin/add-user", NEW_USER)
    assert response.json() == {"success": True}
    assert User.objects.filter(username="john").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**NEW_USER, "username": ""}, "Username is required"),
        ({**NEW_USER, "username": "john1"}, "Username must contain letters only"),
        ({**NEW_USER, "username": "jo hn"}, "Username must contain letters only"),
        ({**NEW_USER, "username": "jöhn"}, "Username must contain letters only"),
        ({**NEW_USER, "email": "not-an-email"}, "A valid email address is required"),
        ({**NEW_USER, "password": ""}, "Password is required"),
        ({**NEW_USER, "password": "password123"}, "This password is too common."),
        ({**NEW_USER, "username": ["x"]}, "Field 'username' must be a string"),
    ],
)
def test_add_user_rejects_bad_input_and_changes_nothing(admin_client_, body, message):
    before = User.objects.count()
    response = post_json(admin_client_, "/admin/add-user", body)
    assert response.status_code == 400
    assert response.json()["error"] == message
    assert User.objects.count() == before


def test_add_user_duplicate_name_regardless_of_case(admin_client_, make_user):
    make_user("john")
    response = post_json(admin_client_, "/admin/add-user", {**NEW_USER, "username": "JOHN"})
    assert response.status_code == 400
    assert response.json()["error"] == "Username already exists"
    assert User.objects.filter(username__iexact="john").count() == 1


def test_add_user_malformed_json(admin_client_):
    response = admin_client_.post("/admin/add-user", data="{oops", content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": "Malformed JSON body"}


def test_admin_routes_refuse_non_admins_and_anonymous(user_client, user):
    for path in ("/admin/add-user", f"/admin/delete-user/{user.pk}", f"/admin/reset-password/{user.pk}"):
        response = post_json(user_client, path, NEW_USER)
        assert response.status_code == 403, path
        assert response.json() == {"error": "Admin access required"}
        assert Client().post(path)["Location"] == "/login"
    assert not User.objects.filter(username="john").exists()


def test_admin_routes_need_csrf_with_a_session(admin_user, csrf_client):
    csrf_client.force_login(admin_user)
    response = post_json(csrf_client, "/admin/add-user", NEW_USER)
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    assert not User.objects.filter(username="john").exists()


def test_admin_routes_are_get_405(admin_client_):
    assert admin_client_.get("/admin/add-user").status_code == 405


def test_delete_user(admin_client_, make_user):
    victim = make_user("carol")
    response = admin_client_.post(f"/admin/delete-user/{victim.pk}")
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert not User.objects.filter(pk=victim.pk).exists()


def test_delete_user_refuses_admins(admin_client_, admin_user, make_user):
    other_admin = make_user("root", is_admin=True)
    for target in (admin_user, other_admin):
        response = admin_client_.post(f"/admin/delete-user/{target.pk}")
        assert response.status_code == 403
        assert response.json() == {"error": "Cannot delete an admin user"}
        assert User.objects.filter(pk=target.pk, is_active=True).exists()


@pytest.mark.parametrize("user_id", ["999999", "99999999999999999999999", "-1", "abc"])
def test_delete_unknown_user_is_404(admin_client_, user_id):
    response = admin_client_.post(f"/admin/delete-user/{user_id}", HTTP_ACCEPT="application/json")
    assert response.status_code == 404


def test_reset_password(admin_client_, make_user):
    carol = make_user("carol")
    response = post_json(admin_client_, f"/admin/reset-password/{carol.pk}", {"newPassword": "Brand-New-Pass-7"})
    assert response.status_code == 200
    assert response.json() == {"success": True}
    response = Client().post("/login", {"username": "carol", "password": "Brand-New-Pass-7"})
    assert response["Location"] == "/dashboard"


def test_reset_password_rejects_missing_and_weak(admin_client_, make_user):
    carol = make_user("carol")
    for body, message in (({}, "Password is required"), ({"newPassword": "12345678"}, None)):
        response = post_json(admin_client_, f"/admin/reset-password/{carol.pk}", body)
        assert response.status_code == 400
        if message:
            assert response.json() == {"error": message, "fields": {"password": ["This field is required."]}}
    carol.refresh_from_db()
    assert carol.check_password(STRONG_PASSWORD)


def test_reset_password_refuses_admins(admin_client_, admin_user):
    response = post_json(admin_client_, f"/admin/reset-password/{admin_user.pk}", {"newPassword": "Brand-New-Pass-7"})
    assert response.status_code == 403
    assert response.json() == {"error": "Cannot reset the password of an admin user"}
    admin_user.refresh_from_db()
    assert admin_user.check_password(STRONG_PASSWORD)


def test_admin_panel_delete_goes_through_service(admin_client_, admin_user, make_user):
    carol = make_user("carol")
    response = admin_client_.post(
        "/admin/accounts/user/", {"action": "delete_selected", "_selected_action": [carol.pk], "post": "yes"}
    )
    assert response.status_code == 302
    assert not User.objects.filter(pk=carol.pk).exists()
    # An admin cannot be deleted from the panel either.
    assert admin_client_.get(f"/admin/accounts/user/{admin_user.pk}/delete/").status_code == 403


def test_admin_panel_reset_password_action_shows_new_password_once(admin_client_, make_user):
    carol = make_user("carol")
    response = admin_client_.post(
        "/admin/accounts/user/", {"action": "reset_passwords", "_selected_action": [carol.pk]}, follow=True
    )
    text = response.content.decode()
    assert "New password for carol: " in text
    new_password = text.split("New password for carol: ")[1].split(" ")[0]
    carol.refresh_from_db()
    assert carol.check_password(new_password)


def test_admin_panel_add_user_enforces_username_rules(admin_client_):
    response = admin_client_.post(
        "/admin/accounts/user/add/",
        {"username": "bad1", "email": "x@example.com", "password1": "Correct-Horse-9", "password2": "Correct-Horse-9",
         "usable_password": "true"},
    )
    assert response.status_code == 200
    assert "Username must contain letters only" in response.content.decode()
    assert not User.objects.filter(username="bad1").exists()

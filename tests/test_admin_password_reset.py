"""A password reset is what an admin does to a compromised account: every path (the original's JSON
route, the API, the admin panel's action and its password form) revokes the user's API keys
and refuses another admin's password; an admin may still change their own."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts import services
from accounts.models import APIKey

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Brand-New-Pass-7"


def keys_work(user) -> list[bool]:
    return [key.revoked_at is None for key in APIKey.objects.filter(user=user).order_by("pk")]


@pytest.fixture
def carol_with_keys(make_user):
    carol = make_user("carol")
    raw_keys = [services.create_api_key(user=carol, name=name)[1] for name in ("ci", "laptop")]
    return carol, raw_keys


def test_compatible_route_reset_revokes_the_users_keys(admin_client_, carol_with_keys):
    carol, raw_keys = carol_with_keys
    response = admin_client_.post(f"/admin/reset-password/{carol.pk}", data=json.dumps({"newPassword": NEW_PASSWORD}),
                                  content_type="application/json")
    assert response.json() == {"success": True}
    assert keys_work(carol) == [False, False]
    for raw in raw_keys:
        assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_api_reset_revokes_the_users_keys(admin_user, carol_with_keys):
    carol, _raw = carol_with_keys
    _key, admin_raw = services.create_api_key(user=admin_user)
    response = Client().post(f"/api/v1/users/{carol.pk}/reset-password/", data={"newPassword": NEW_PASSWORD},
                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {admin_raw}")
    assert response.status_code in (200, 204)
    assert keys_work(carol) == [False, False]


def test_refused_reset_keeps_the_keys(admin_client_, carol_with_keys):
    carol, _raw = carol_with_keys
    response = admin_client_.post(f"/admin/reset-password/{carol.pk}", data=json.dumps({"newPassword": "123"}),
                                  content_type="application/json")
    assert response.status_code == 400
    assert keys_work(carol) == [True, True]


def test_admin_panel_action_says_the_keys_are_revoked(admin_client_, carol_with_keys):
    carol, _raw = carol_with_keys
    response = admin_client_.post(
        "/admin/accounts/user/", {"action": "reset_passwords", "_selected_action": [carol.pk]}, follow=True
    )
    assert "Their API keys are revoked and their open connections closed." in response.content.decode()
    assert keys_work(carol) == [False, False]


def test_admin_panel_password_form_resets_through_the_service(admin_client_, carol_with_keys):
    carol, _raw = carol_with_keys
    page = admin_client_.get(f"/admin/accounts/user/{carol.pk}/password/")
    assert page.status_code == 200
    assert 'name="usable_password"' not in page.content.decode()
    response = admin_client_.post(f"/admin/accounts/user/{carol.pk}/password/",
                                  {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/accounts/user/{carol.pk}/change/"
    confirmation = "Password changed. Their API keys are revoked and their open connections closed."
    assert confirmation in response.content.decode()
    carol.refresh_from_db()
    assert carol.check_password(NEW_PASSWORD)
    assert keys_work(carol) == [False, False]


def test_admin_panel_password_form_rejects_a_weak_password_and_changes_nothing(admin_client_, carol_with_keys):
    carol, _raw = carol_with_keys
    weak = {"password1": "123", "password2": "123"}
    response = admin_client_.post(f"/admin/accounts/user/{carol.pk}/password/", weak)
    assert response.status_code == 200
    assert "This password is too short" in response.content.decode()
    carol.refresh_from_db()
    assert not carol.check_password("123")
    assert keys_work(carol) == [True, True]


def test_admin_panel_password_form_refuses_another_admin(admin_client_, make_user):
    other = make_user("chief", is_admin=True)
    assert admin_client_.get(f"/admin/accounts/user/{other.pk}/password/").status_code == 403
    response = admin_client_.post(f"/admin/accounts/user/{other.pk}/password/",
                                  {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 403
    assert "Cannot reset the password of an admin user" in response.content.decode()
    other.refresh_from_db()
    assert not other.check_password(NEW_PASSWORD)


def test_admin_may_change_their_own_password_in_the_panel(admin_client_, admin_user):
    response = admin_client_.post(f"/admin/accounts/user/{admin_user.pk}/password/",
                                  {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    admin_user.refresh_from_db()
    assert admin_user.check_password(NEW_PASSWORD)
    assert admin_client_.get("/admin/").status_code == 200  # still signed in

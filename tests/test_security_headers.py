"""What the responses tell browsers: signed-in responses are never stored, the CSP connects only
to this origin, and a cross-site link cannot sign a user out through the original's ``GET /logout``."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.services import create_api_key

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, str]:
    parts = (part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    return {part[0]: part[1] if len(part) > 1 else "" for part in parts if part[0]}


@pytest.mark.parametrize("path", ["/dashboard", "/help", "/account/api-keys", "/api/user-info", "/api/v1/me/"])
def test_signed_in_responses_are_not_stored(user_client, path):
    response = user_client.get(path)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_api_key_responses_are_not_stored(user):
    _key, raw = create_api_key(user=user)
    response = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_static_files_stay_cacheable_for_signed_in_users(user_client):
    static = user_client.get("/static/css/devbench.css")
    assert static.status_code == 200
    assert "no-store" not in static.get("Cache-Control", "")


def test_csp_connects_only_to_this_origin(user_client):
    for response in (Client().get("/login"), user_client.get("/dashboard")):
        assert directives(response)["connect-src"] == "'self'"
        assert "ws:" not in response["Content-Security-Policy"]
        assert "wss:" not in response["Content-Security-Policy"]


def signed_in(client: Client) -> bool:
    return client.get("/api/user-info").status_code == 200


@pytest.mark.parametrize("fetch_site", ["cross-site", "same-site"])
def test_get_logout_from_another_site_does_not_sign_out(user_client, fetch_site):
    response = user_client.get("/logout", HTTP_SEC_FETCH_SITE=fetch_site)
    assert response.status_code == 302
    assert response["Location"] == "/login"
    assert signed_in(user_client)


@pytest.mark.parametrize("fetch_site", ["same-origin", "none", None])
def test_get_logout_from_this_site_by_hand_or_without_the_header_signs_out(user_client, fetch_site):
    headers = {} if fetch_site is None else {"HTTP_SEC_FETCH_SITE": fetch_site}
    response = user_client.get("/logout", **headers)
    assert response.status_code == 302
    assert response["Location"] == "/login"
    assert not signed_in(user_client)


def test_post_logout_signs_out_whatever_the_fetch_site(user_client):
    response = user_client.post("/logout", HTTP_SEC_FETCH_SITE="cross-site")
    assert response["Location"] == "/login"
    assert not signed_in(user_client)

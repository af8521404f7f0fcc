"""An open WebSocket ends with the credential it was opened with: signing out closes that
session's sockets, revoking a key closes that key's, a password reset, a deactivation or a
deletion closes all of the user's; a cookie socket also closes when its session expires. The
close code is 4401 and nothing is sent after it. Live through Daphne as a client sees it, and
through Channels' communicator."""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from accounts import services
from accounts.models import APIKey, User
from devbench_site.asgi import application
from tests import live_daphne
from tests.conftest import STRONG_PASSWORD

CLOSED = 4401
NEW_PASSWORD = "Brand-New-Pass-7"
daphne = live_daphne.daphne  # Daphne alone, once for this module


# --- live, through Daphne -----------------------------------------------------------------------

class Browser:
    """A cookie jar signed in with the form, as a browser is."""

    def __init__(self, base_url: str, username: str, password: str = STRONG_PASSWORD):
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        page = self.opener.open(base_url + "/login").read().decode()
        self.post("/login", {"username": username, "password": password}, page)

    def csrf_token(self, page: str) -> str:
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    def post(self, path: str, fields: dict, page: str | None = None):
        page = page if page is not None else self.opener.open(self.base_url + "/dashboard").read().decode()
        body = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self.csrf_token(page)}).encode()
        return self.opener.open(urllib.request.Request(self.base_url + path, data=body,
                                                       headers={"Origin": self.base_url}))

    def socket(self):
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.jar)
        return ws_connect("ws" + self.base_url.removeprefix("http") + "/ws/", open_timeout=10,
                          additional_headers={"Cookie": cookies, "Origin": self.base_url})


def key_socket(base_url: str, raw_key: str):
    return ws_connect("ws" + base_url.removeprefix("http") + "/ws/", open_timeout=10,
                      additional_headers={"Authorization": f"Bearer {raw_key}"})


def assert_alive(ws) -> None:
    ws.send(json.dumps({"type": "ping"}))
    assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}


def assert_closed_with_nothing_more(ws) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        message = ws.recv(timeout=10)
        pytest.fail(f"received {message!r} after the credential ended")
    assert closed.value.rcvd.code == CLOSED


def api_post(base_url: str, path: str, raw_key: str, body: dict | None = None) -> int:
    request = urllib.request.Request(base_url + path, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


@pytest.mark.django_db(transaction=True)
def test_live_logout_closes_that_sessions_socket_only(daphne, user):
    browser, other_browser = Browser(daphne, "alice"), Browser(daphne, "alice")
    _key, raw = services.create_api_key(user=user)
    with browser.socket() as ws, other_browser.socket() as other_ws, key_socket(daphne, raw) as key_ws:
        assert_alive(ws)
        assert browser.post("/logout", {}).url.endswith("/login")
        assert_closed_with_nothing_more(ws)
        assert_alive(other_ws)
        assert_alive(key_ws)


@pytest.mark.django_db(transaction=True)
def test_live_logout_closes_every_socket_of_the_session_while_others_stream_on(daphne, user):
    browser, other_browser = Browser(daphne, "alice"), Browser(daphne, "alice")
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=8) as pool:
        opened = list(pool.map(lambda b: stack.enter_context(b.socket()), [browser] * 4 + [other_browser] * 4))
        mine, others = opened[:4], opened[4:]
        list(pool.map(assert_alive, opened))
        assert browser.post("/logout", {}).url.endswith("/login")
        list(pool.map(assert_closed_with_nothing_more, mine))
        list(pool.map(assert_alive, others))


@pytest.mark.django_db(transaction=True)
def test_live_key_revocation_closes_that_keys_socket_only(daphne, user):
    key, raw = services.create_api_key(user=user, name="ci")
    _other, other_raw = services.create_api_key(user=user, name="laptop")
    browser = Browser(daphne, "alice")
    with key_socket(daphne, raw) as ws, key_socket(daphne, other_raw) as other_ws, browser.socket() as cookie_ws:
        assert_alive(ws)
        assert api_post(daphne, f"/api/v1/api-keys/{key.pk}/revoke/", other_raw) == 200
        assert_closed_with_nothing_more(ws)
        assert_alive(other_ws)
        assert_alive(cookie_ws)


@pytest.mark.django_db(transaction=True)
def test_live_admin_password_reset_closes_all_the_users_sockets_and_revokes_keys(daphne, user, make_user):
    make_user("boss", is_admin=True)
    _key, raw = services.create_api_key(user=user)
    admin = Browser(daphne, "boss")
    browser = Browser(daphne, "alice")
    with browser.socket() as cookie_ws, key_socket(daphne, raw) as key_ws:
        assert_alive(cookie_ws)
        request = urllib.request.Request(
            daphne + f"/admin/reset-password/{user.pk}", data=json.dumps({"newPassword": NEW_PASSWORD}).encode(),
            headers={"Content-Type": "application/json", "Origin": daphne,
                     "X-CSRFToken": admin.csrf_token(admin.opener.open(daphne + "/admin/").read().decode())},
        )
        assert json.loads(admin.opener.open(request).read()) == {"success": True}
        assert_closed_with_nothing_more(cookie_ws)
        assert_closed_with_nothing_more(key_ws)
    assert not APIKey.objects.filter(user=user, revoked_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_live_deactivation_in_the_admin_panel_closes_the_users_sockets(daphne, user, make_user):
    make_user("boss", is_admin=True)
    admin = Browser(daphne, "boss")
    browser = Browser(daphne, "alice")
    with browser.socket() as ws:
        assert_alive(ws)
        page = admin.opener.open(daphne + f"/admin/accounts/user/{user.pk}/change/").read().decode()
        fields = {"username": "alice", "email": "alice@example.com", "first_name": "", "last_name": "",
                  "bench_quota": "", "is_active": "", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
        fields.pop("is_active")  # an unchecked box is not sent
        admin.post(f"/admin/accounts/user/{user.pk}/change/", fields, page)
        assert_closed_with_nothing_more(ws)
    assert not User.objects.get(pk=user.pk).is_active


# --- through Channels' communicator -------------------------------------------------------------


def signed_in_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cookie_headers(client: Client) -> list[tuple[bytes, bytes]]:
    cookie = client.cookies["sessionid"].value
    return [(b"cookie", f"sessionid={cookie}".encode()), (b"host", b"testserver"), (b"origin", b"http://testserver")]


async def open_socket(headers=None, path="/ws/") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    return communicator


async def assert_closed(communicator: WebsocketCommunicator, timeout: float = 5) -> None:
    assert await communicator.receive_output(timeout=timeout) == {"type": "websocket.close", "code": CLOSED}
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_nothing(timeout=0.3)


async def assert_open(communicator: WebsocketCommunicator) -> None:
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_admin_panel_password_form_closes_sockets_and_revokes_keys(user, make_user):
    boss = await database_sync_to_async(make_user)("boss", is_admin=True)
    _key, raw = await database_sync_to_async(services.create_api_key)(user=user)
    cookie_ws = await open_socket(cookie_headers(await database_sync_to_async(signed_in_client)(user)))
    key_ws = await open_socket(path=f"/ws/?token={raw}")
    admin = await database_sync_to_async(signed_in_client)(boss)
    response = await database_sync_to_async(admin.post)(
        f"/admin/accounts/user/{user.pk}/password/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert response.status_code == 302
    await assert_closed(cookie_ws)
    await assert_closed(key_ws)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_deleting_a_user_closes_their_sockets(user, make_user):
    boss = await database_sync_to_async(make_user)("boss", is_admin=True)
    communicator = await open_socket(cookie_headers(await database_sync_to_async(signed_in_client)(user)))
    await database_sync_to_async(services.delete_user)(admin=boss, user=user)
    await assert_closed(communicator)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_revoking_a_key_in_the_admin_panel_closes_its_socket(user, make_user):
    boss = await database_sync_to_async(make_user)("boss", is_admin=True)
    key, raw = await database_sync_to_async(services.create_api_key)(user=user)
    communicator = await open_socket(path=f"/ws/?token={raw}")
    admin = await database_sync_to_async(signed_in_client)(boss)
    response = await database_sync_to_async(admin.post)(
        f"/admin/accounts/apikey/{key.pk}/change/", {"revoked_at_0": "2026-01-01", "revoked_at_1": "00:00:00"}
    )
    assert response.status_code == 302
    await assert_closed(communicator)


def _expire_session_in(client: Client, seconds: float) -> None:
    key = client.cookies["sessionid"].value
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() + timedelta(seconds=seconds))


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_cookie_socket_closes_when_its_session_expires(user):
    client = await database_sync_to_async(signed_in_client)(user)
    await database_sync_to_async(_expire_session_in)(client, 1.5)
    communicator = await open_socket(cookie_headers(client))
    assert await communicator.receive_nothing(timeout=0.5)
    await assert_closed(communicator, timeout=5)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_cookie_socket_stays_open_when_its_session_was_extended(user):
    client = await database_sync_to_async(signed_in_client)(user)
    await database_sync_to_async(_expire_session_in)(client, 1)
    communicator = await open_socket(cookie_headers(client))
    await database_sync_to_async(_expire_session_in)(client, 3600)
    await asyncio.sleep(1.5)
    await assert_open(communicator)
    await communicator.disconnect()

"""A cookie-authenticated WebSocket must come from a page of this site's own origin: scheme,
host and port, or an origin in ``CSRF_TRUSTED_ORIGINS``. Checked against a live Daphne as a
browser connects, and through Channels' communicator for the cases a browser cannot fake."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from devbench_site.asgi import application
from tests import live_daphne

CLOSE_FORBIDDEN_ORIGIN = 4403
daphne = live_daphne.daphne  # Daphne alone, once for this module


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def open_with_cookie(base_url: str, cookie: str, origin: str):
    ws_url = "ws" + base_url.removeprefix("http") + "/ws/"
    return ws_connect(ws_url, additional_headers={"Cookie": f"sessionid={cookie}", "Origin": origin}, open_timeout=10)


@pytest.mark.django_db(transaction=True)
def test_live_page_on_another_port_of_the_same_host_is_refused(daphne, user):
    cookie = session_cookie(user)
    other_port = urlsplit(daphne).port + 1
    with open_with_cookie(daphne, cookie, f"http://127.0.0.1:{other_port}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == CLOSE_FORBIDDEN_ORIGIN
    with open_with_cookie(daphne, cookie, daphne) as ws:
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}


@pytest.mark.django_db(transaction=True)
def test_live_other_scheme_and_other_host_are_refused(daphne, user):
    cookie = session_cookie(user)
    port = urlsplit(daphne).port
    for origin in (f"https://127.0.0.1:{port}", f"http://localhost:{port}", "null"):
        with open_with_cookie(daphne, cookie, origin) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == CLOSE_FORBIDDEN_ORIGIN, origin


async def handshake_close_code(headers) -> int | None:
    """The close code the server answers a handshake with, or None when it stays open."""
    communicator = WebsocketCommunicator(application, "/ws/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    if await communicator.receive_nothing(timeout=0.3):
        await communicator.disconnect()
        return None
    return (await communicator.receive_output(timeout=1))["code"]


def headers_for(cookie: str, *, host: str, origin: str | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"cookie", f"sessionid={cookie}".encode()), (b"host", host.encode())]
    return headers if origin is None else [*headers, (b"origin", origin.encode())]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("host", "origin", "code"),
    [
        ("testserver", "http://testserver", None),
        ("testserver", "http://testserver:80", None),
        ("testserver:8000", "http://testserver:8000", None),
        ("testserver:8000", "http://testserver:9392", CLOSE_FORBIDDEN_ORIGIN),
        ("testserver", "http://testserver:9392", CLOSE_FORBIDDEN_ORIGIN),
        ("testserver", "https://testserver", CLOSE_FORBIDDEN_ORIGIN),
        ("testserver", "http://evil.example", CLOSE_FORBIDDEN_ORIGIN),
        ("evil.example", "http://evil.example", CLOSE_FORBIDDEN_ORIGIN),  # not an allowed host
        ("testserver", None, CLOSE_FORBIDDEN_ORIGIN),
        ("testserver", "http://testserver:notaport", CLOSE_FORBIDDEN_ORIGIN),
    ],
)
async def test_session_origin_must_be_the_sites_own(user, host, origin, code):
    cookie = await database_sync_to_async(session_cookie)(user)
    assert await handshake_close_code(headers_for(cookie, host=host, origin=origin)) == code


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_csrf_trusted_origins_are_allowed_with_their_port_and_scheme(user, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://devbench.example.com", "https://*.apps.example.com:8443"]
    cookie = await database_sync_to_async(session_cookie)(user)
    for origin, code in [
        ("https://devbench.example.com", None),
        ("https://devbench.example.com:443", None),
        ("http://devbench.example.com", CLOSE_FORBIDDEN_ORIGIN),
        ("https://devbench.example.com:8443", CLOSE_FORBIDDEN_ORIGIN),
        ("https://team.apps.example.com:8443", None),
        ("https://team.apps.example.com", CLOSE_FORBIDDEN_ORIGIN),
        ("https://apps.example.com.evil:8443", CLOSE_FORBIDDEN_ORIGIN),
    ]:
        assert await handshake_close_code(headers_for(cookie, host="testserver", origin=origin)) == code, origin


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_behind_an_https_proxy_the_https_origin_is_the_sites_own(user, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cookie = await database_sync_to_async(session_cookie)(user)
    proxied = [*headers_for(cookie, host="testserver", origin="https://testserver"), (b"x-forwarded-proto", b"https")]
    assert await handshake_close_code(proxied) is None
    assert await handshake_close_code(headers_for(cookie, host="testserver", origin="https://testserver")) == 4403

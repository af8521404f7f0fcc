"""WebSocket and HTTP clients for the benchmarks (asyncio ``websockets``; API-key auth)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect


async def open_client(url: str, key: str, *, timeout: float = 60) -> ClientConnection:
    return await connect(
        url,
        additional_headers={"Authorization": f"Bearer {key}"},
        open_timeout=timeout,
        ping_interval=None,
        max_size=None,
        max_queue=None,
    )


async def open_clients(url: str, keys: list[str], *, batch: int = 50) -> list[ClientConnection]:
    """Connect one client per key, ``batch`` handshakes at a time."""
    clients: list[ClientConnection] = []
    for start in range(0, len(keys), batch):
        clients += await asyncio.gather(*(open_client(url, key) for key in keys[start:start + batch]))
    return clients


async def read_into(ws: ClientConnection, on_message: Callable[[float, dict], None]) -> None:
    """Call ``on_message(arrival_unix_time, message)`` for every frame until the socket closes."""
    try:
        async for raw in ws:
            on_message(time.time(), json.loads(raw))
    except Exception:  # closed by us at the end, or by the server
        return


async def close_all(clients: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


def post_json(url: str, body: dict, key: str, timeout: float = 60) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")

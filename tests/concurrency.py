"""Many requests at once against a live server, to check that a limit holds when its requests
race: ``in_parallel`` releases N threads together, ``http`` sends one request over a real socket
(against ``tests.live_daphne.running_daphne``, started with the settings the limit needs)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


def in_parallel(count: int, send: Callable[[int], T], *, timeout: float = 120.0) -> list[T]:
    """Call ``send(0)`` … ``send(count - 1)``, each in its own thread, all released at once by a
    barrier (so they race for real); their results in the order of the index."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T:
        barrier.wait(timeout)
        return send(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count), timeout=timeout))


@dataclass
class Response:
    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)

    def json(self):
        return json.loads(self.text)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 302 is the answer under test, not a page to follow


_OPENER = urllib.request.build_opener(_NoRedirect)


def http(method: str, url: str, *, json_body: dict | None = None, form: dict | None = None,
         headers: dict[str, str] | None = None, timeout: float = 60.0) -> Response:
    """One request over a real socket; an error status is returned, not raised; no redirects."""
    headers = dict(headers or {})
    data = None
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif form is not None:
        data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return _response(answer.status, answer.read(), answer.headers)
    except urllib.error.HTTPError as error:
        return _response(error.code, error.read(), error.headers)


def _response(status: int, body: bytes, headers) -> Response:
    cookies = {}
    for header in headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        cookies[name.strip()] = rest.partition(";")[0]
    return Response(status, body.decode(), dict(headers), cookies)



"""Bad bodies get a clear 4xx and change nothing: deeply nested JSON (400), bodies over the limit
(413), and JSON numbers where a bench name belongs (400), on the compatible routes and the API."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client

from accounts.models import User
from accounts.services import create_api_key
from benches.models import DevBench, Job
from tests.api_helpers import bearer_client

DEEP_ARRAY = "[" * 5000 + "]" * 5000  # ~10 KB, far deeper than the decoder recurses
DEEP_OBJECT = '{"name": ' + '{"a": ' * 5000 + "1" + "}" * 5001
SMALL_LIMIT = 2048


def server_errors(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


# --- deeply nested JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT])
def test_deeply_nested_json_login_is_400_for_anonymous(db, caplog, body):
    response = Client().post("/login", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "Malformed JSON body: nested too deeply" in response.content.decode()
    assert not server_errors(caplog)


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT])
def test_deeply_nested_json_create_devbench_is_400(user_client, local_agent, caplog, body):
    response = user_client.post("/create-devbench", data=body, content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"error": "Malformed JSON body: nested too deeply"})
    assert not DevBench.objects.exists() and not Job.objects.exists()
    assert not server_errors(caplog)


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT])
def test_deeply_nested_json_api_create_is_400(user, local_agent, caplog, body):
    response = bearer_client(user).post("/api/v1/benches/", data=body, content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"error": "JSON parse error - nested too deeply"})
    assert not DevBench.objects.exists()
    assert not server_errors(caplog)


def test_deeply_nested_json_admin_route_is_400(admin_client_):
    response = admin_client_.post("/admin/add-user", data=DEEP_ARRAY, content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"error": "Malformed JSON body: nested too deeply"})
    assert not User.objects.filter(is_staff=False).exists()


# --- bodies over the limit -------------------------------------------------------------------------


@pytest.fixture
def small_body_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = SMALL_LIMIT
    return SMALL_LIMIT


def too_big_json() -> str:
    return json.dumps({"name": "x", "padding": "p" * (SMALL_LIMIT + 1)})


def browser_client(user=None) -> Client:
    """A client checking CSRF as a browser's requests are checked (the check reads the body)."""
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def test_api_body_over_the_limit_is_413_json(user, local_agent, small_body_limit):
    response = bearer_client(user).post("/api/v1/benches/", data=too_big_json(), content_type="application/json")
    assert (response.status_code, response.json()) == (413, {"error": "Request body is too large"})
    assert not DevBench.objects.exists()


def test_compatible_json_route_body_over_the_limit_is_413_json(user, local_agent, small_body_limit):
    response = browser_client(user).post("/create-devbench", data=too_big_json(), content_type="application/json")
    assert (response.status_code, response.json()) == (413, {"error": "Request body is too large"})
    assert not DevBench.objects.exists()


def test_admin_form_body_over_the_limit_is_413_json(admin_user, small_body_limit):
    response = browser_client(admin_user).post(
        "/admin/add-user", {"username": "sam", "email": "sam@example.com", "password": "p" * (SMALL_LIMIT + 1)},
    )
    assert (response.status_code, response.json()) == (413, {"error": "Request body is too large"})
    assert not User.objects.filter(username="sam").exists()


def test_browser_form_post_over_the_limit_is_a_413_page(user, small_body_limit):
    response = browser_client().post(
        "/login", {"username": "alice", "password": "p" * (SMALL_LIMIT + 1)},
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")
    assert "Request body is too large" in response.content.decode()


def test_body_under_the_limit_is_served(user_client, local_agent, small_body_limit):
    response = user_client.post("/create-devbench", data=json.dumps({"name": "fits"}), content_type="application/json")
    assert response.status_code == 200
    assert DevBench.objects.filter(name="fits").exists()


# --- JSON numbers as names -------------------------------------------------------------------------

NUMBER_NAMES = ['{"name": 123}', '{"name": 1e400}', '{"name": NaN}', '{"name": -0.5}']


@pytest.mark.parametrize("body", NUMBER_NAMES)
def test_number_name_is_400_on_create_devbench(user_client, local_agent, body):
    response = user_client.post("/create-devbench", data=body, content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"error": "Field 'name' must be a string"})
    assert not DevBench.objects.exists()


@pytest.mark.parametrize("body", NUMBER_NAMES)
def test_number_name_is_400_on_the_api(user, local_agent, body):
    response = bearer_client(user).post("/api/v1/benches/", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"].startswith(("name: Not a valid string.", "JSON parse error"))
    assert not DevBench.objects.exists()


# --- against Daphne, many at once -----------------------------------------------------------------


def _post(url: str, body: bytes, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_bad_bodies_at_once_get_their_4xx_from_daphne(live_stack, user):
    _key, raw = create_api_key(user=user)
    too_big = json.dumps({"name": "x", "padding": "p" * (1024 * 1024 + 1)}).encode()  # the default limit
    cases = [
        ("/create-devbench", DEEP_ARRAY.encode(), 400, {"error": "Malformed JSON body: nested too deeply"}),
        ("/api/v1/benches/", DEEP_ARRAY.encode(), 400, {"error": "JSON parse error - nested too deeply"}),
        ("/create-devbench", too_big, 413, {"error": "Request body is too large"}),
        ("/api/v1/benches/", too_big, 413, {"error": "Request body is too large"}),
        ("/create-devbench", b'{"name": 1e400}', 400, {"error": "Field 'name' must be a string"}),
    ] * 3
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        answers = list(pool.map(lambda case: _post(live_stack.base_url + case[0], case[1], raw), cases))
    assert answers == [(status, body) for _path, _body, status, body in cases], live_stack.logs()
    assert not DevBench.objects.exists()
    assert "Traceback" not in live_stack.logs()

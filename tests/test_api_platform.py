"""What every API endpoint shares: authentication (Bearer key, session with CSRF), the one error
shape, throttling, the browsable API and the OpenAPI document and docs under the CSP."""

from __future__ import annotations

import re
import threading

import jsonschema
import pytest
import yaml
from django.core.management import call_command
from django.test import Client

from benches import services
from benches.models import DevBench, Job, JobChunk
from benches.provisioning import messages
from tests.api_helpers import bearer_client, post_json

pytestmark = pytest.mark.django_db

SCRIPT_TAG = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", re.S)


def test_anonymous_is_401_with_bearer_challenge():
    response = Client().get("/api/v1/benches/")
    assert response.status_code == 401
    assert response.json() == {"error": "not authenticated"}
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_wrong_key_is_401():
    response = Client().get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer dbk_wrong")
    assert (response.status_code, response.json()) == (401, {"error": "invalid or revoked API key"})
    assert response["WWW-Authenticate"] == 'Bearer realm="api", error="invalid_token"'


def test_session_needs_csrf_on_unsafe_requests_and_bearer_does_not(user, local_agent):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/api/v1/benches/").status_code == 200
    refused = post_json(browser, "/api/v1/benches/", {"name": "nocsrf"})
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("CSRF Failed")
    assert not DevBench.objects.exists()
    browser.get("/api/v1/benches/", HTTP_ACCEPT="text/html")  # the browsable API sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    accepted = post_json(browser, "/api/v1/benches/", {"name": "withcsrf"}, HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201
    keyed = post_json(bearer_client(user, enforce_csrf_checks=True), "/api/v1/benches/", {"name": "keyed"})
    assert keyed.status_code == 201


def test_throttle_is_per_user_configurable_and_429(user, make_user, settings):
    settings.DEVBENCH_API_RATE = "3/min"
    alice, bob = bearer_client(user), bearer_client(make_user("bob"))
    assert [alice.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 200]
    throttled = alice.get("/api/v1/me/")
    assert throttled.status_code == 429
    assert re.fullmatch(r"Request was throttled\. Expected available in \d+ seconds?\.", throttled.json()["error"])
    assert 1 <= int(throttled["Retry-After"]) <= 60
    # Another key of the same user shares the budget; another user has their own.
    assert bearer_client(user).get("/api/v1/me/").status_code == 429
    assert bob.get("/api/v1/me/").status_code == 200


@pytest.mark.django_db(transaction=True)  # the threads' own database connections see the key
def test_throttle_counts_concurrent_requests_exactly(user, settings, redis_client):
    """Twenty requests at once against a budget of ten: exactly ten pass (one atomic count in
    Redis per request; DRF's read-then-write history let requests at once pass on one count)."""
    settings.DEVBENCH_API_RATE = "10/min"
    api = bearer_client(user)
    barrier, statuses = threading.Barrier(20), []

    def call():
        barrier.wait()
        statuses.append(api.get("/api/v1/me/").status_code)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 10 + [429] * 10
    [key] = list(redis_client.scan_iter("devbench-cache:*throttle_user_*"))
    assert 50 <= redis_client.ttl(key) <= 60  # the window: started by the first request, not renewed


def test_method_not_allowed_and_unknown_paths_are_json(user):
    api = bearer_client(user)
    response = api.delete("/api/v1/me/")
    assert (response.status_code, response.json()) == (405, {"error": 'Method "DELETE" not allowed.'})
    missing = api.get("/api/v1/nothing-here/")
    assert (missing.status_code, missing.json()) == (404, {"error": "Not found"})


def test_api_root_links_every_collection(user):
    body = bearer_client(user).get("/api/v1/").json()
    assert body["benches"] == "http://testserver/api/v1/benches/"
    assert set(body) == {"me", "benches", "images", "plans", "api-keys", "ssh-keys", "users", "hosts", "session-hosts",
                         "schema", "docs"}


def _scripts(html: str) -> list[tuple[str, str]]:
    return [(match["attrs"], match["body"].strip()) for match in SCRIPT_TAG.finditer(html)]


def test_browsable_api_loads_only_local_scripts(user_client, user, local_agent):
    services.create_bench(user=user, name="browse")
    response = user_client.get("/api/v1/benches/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    html = response.content.decode()
    assert "browse" in html
    for attrs, body in _scripts(html):
        if 'type="application/json"' in attrs:
            continue  # data, not code: the CSP does not apply
        assert re.search(r'src="/static/', attrs) and not body, attrs
    assert "//cdn" not in html


def test_docs_page_uses_local_assets_and_no_inline_script():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    html = response.content.decode()
    sources = []
    for attrs, body in _scripts(html):
        assert not body, "inline script"
        sources.append(re.search(r'src="([^"]+)"', attrs)[1])
    assert sources[:2] == [
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-standalone-preset.js",
    ]
    assert sources[2] == "/api/docs/?script="
    for href in re.findall(r'(?:href|src)="([^"]+)"', html):
        assert href.startswith("/"), href
    for source in sources[:2]:
        asset = Client().get(source)
        assert asset.status_code == 200
        assert b"".join(asset.streaming_content if asset.streaming else [asset.content])
    init = Client().get("/api/docs/?script=")
    assert init.status_code == 200
    assert init["Content-Type"].startswith("application/javascript")
    assert 'url: "/api/schema/"' in init.content.decode()


def test_schema_is_valid_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert yaml.safe_load(target.read_text())["openapi"].startswith("3.")


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _operations(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_every_operation_has_schemas_and_examples(schema):
    for path, method, operation in _operations(schema):
        label = f"{method.upper()} {path}"
        assert operation.get("summary"), label
        body = operation.get("requestBody")
        if body:
            for media_type, media in body["content"].items():
                assert "schema" in media, (label, media_type)
                assert "example" in media or "examples" in media, (label, media_type)
        successes = [code for code in operation["responses"] if code.startswith(("2", "3"))]
        assert successes, label
        for code in successes:
            for media_type, media in operation["responses"][code].get("content", {}).items():
                assert "schema" in media, (label, code, media_type)
                assert "example" in media or "examples" in media, (label, code, media_type)
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")) and "application/json" in response.get("content", {}) and (
                    path != "/health"):  # the original's health check answers 503 in its own shape
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_schema_covers_the_api_the_compatible_routes_and_the_session_host_endpoints(schema):
    paths = set(schema["paths"])
    assert {
        "/api/v1/me/", "/api/v1/benches/", "/api/v1/benches/{id}/", "/api/v1/benches/{id}/activate/",
        "/api/v1/benches/{id}/start/", "/api/v1/benches/{id}/stop/", "/api/v1/benches/{id}/refresh-status/",
        "/api/v1/benches/{id}/jobs/", "/api/v1/jobs/{id}/", "/api/v1/jobs/{id}/log/", "/api/v1/jobs/{id}/cancel/",
        "/api/v1/api-keys/", "/api/v1/api-keys/{id}/revoke/", "/api/v1/users/", "/api/v1/users/{id}/",
        "/api/v1/users/{id}/reset-password/", "/api/v1/hosts/", "/api/v1/hosts/{id}/",
        "/api/v1/hosts/{id}/disable/", "/api/v1/hosts/{id}/test-connection/", "/api/v1/session-hosts/",
        "/api/v1/pods/session-host", "/api/v1/pods/session-host/{user}/status",
        "/create-devbench", "/delete-devbench/{id}", "/activate-devbench/{id}", "/check-status/{id}",
        "/api/user-info", "/admin/add-user", "/admin/delete-user/{id}", "/admin/reset-password/{id}", "/health",
    } <= paths
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": schema["components"]["securitySchemes"]["bearerAuth"][
            "description"]}


def _json_schema(openapi_schema: dict, components: dict) -> dict:
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable`` becomes a null type, refs are inlined."""
    if "$ref" in openapi_schema:
        return _json_schema(components[openapi_schema["$ref"].rsplit("/", 1)[1]], components)
    converted = {}
    for key, value in openapi_schema.items():
        if key == "properties":
            converted[key] = {name: _json_schema(prop, components) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            converted[key] = _json_schema(value, components)
        elif key != "nullable":
            converted[key] = value
    if openapi_schema.get("nullable"):
        converted["type"] = [converted["type"], "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
    return {**converted, "additionalProperties": converted.get("additionalProperties", False)} if (
        converted.get("type") == "object") else converted


@pytest.mark.django_db(transaction=True)
def test_websocket_message_schemas_match_what_the_server_sends(schema, user, local_agent, run_jobs):
    components = schema["components"]["schemas"]
    bench = services.create_bench(user=user, name="ws")
    run_jobs()
    bench.refresh_from_db()
    job = Job.objects.get(bench=bench)
    chunk = JobChunk.objects.filter(job=job).first()
    stderr = JobChunk(job=job, seq=99, stream="stderr", data="boom\n")
    for name, message in [
        ("WsScriptOutput", messages.script_output(job, chunk)),
        ("WsScriptOutput", messages.script_output(job, stderr)),
        ("WsScriptComplete", messages.script_complete(job)),
        ("WsStatusUpdate", messages.status_update(bench, job=job)),
        ("WsStatusUpdate", messages.status_update(bench)),
        ("WsStatusUpdate", {**messages.status_update(bench, job=job), "status": "deleted"}),
    ]:
        jsonschema.validate(message, _json_schema(components[name], components))
    for name, message in [("WsRegister", {"type": "register", "userId": 1}),
                          ("WsReplay", {"type": "replay", "jobId": 1, "after": 0}),
                          ("WsPing", {"type": "ping"}), ("WsPong", {"type": "pong"}),
                          ("WsError", {"type": "error", "error": "Malformed JSON"})]:
        jsonschema.validate(message, _json_schema(components[name], components))


@pytest.mark.browser
@pytest.mark.slow
def test_docs_and_browsable_api_work_in_chromium_under_the_csp(ui, user):
    from playwright.sync_api import expect

    page = ui.new_page()
    page.goto("/api/docs/")
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    assert page.locator(".opblock").count() >= 40
    # Signed in, "Try it out" works with the session and its CSRF token.
    ui.sign_in(page, "alice", "Sturdy-Passw0rd!", lands_on="/dashboard")
    page.goto("/api/docs/#/benches/benches_create")
    operation = page.locator("#operations-benches-benches_create")
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("textarea.body-param__text").fill('{"name": "from-docs"}')
    operation.get_by_role("button", name="Execute").click()
    expect(operation.locator(".live-responses-table tbody .response-col_status")).to_have_text("201")
    page.goto("/api/v1/benches/")
    expect(page.locator(".response-info")).to_contain_text("from-docs")


@pytest.mark.django_db(transaction=True)
def test_every_browsable_page_renders(admin_user, local_agent, run_jobs):
    browser = Client()
    browser.force_login(admin_user)
    bench = services.create_bench(user=admin_user, name="browse")
    run_jobs()
    job = Job.objects.get()
    post_json(bearer_client(admin_user), "/api/v1/api-keys/", {"name": "x"})
    for path in ("/api/v1/", "/api/v1/me/", "/api/v1/benches/", f"/api/v1/benches/{bench.pk}/",
                 f"/api/v1/benches/{bench.pk}/jobs/", f"/api/v1/jobs/{job.pk}/", f"/api/v1/jobs/{job.pk}/log/",
                 "/api/v1/api-keys/", "/api/v1/users/", f"/api/v1/users/{admin_user.pk}/", "/api/v1/hosts/",
                 f"/api/v1/hosts/{bench.host_id}/", "/api/v1/session-hosts/"):
        response = browser.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        assert response["Content-Type"].startswith("text/html"), path

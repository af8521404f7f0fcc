"""The compatible routes and the WebSocket messages in the OpenAPI document.

The compatible routes are plain Django views with their own exact JSON (docs/api.md), so they are
described here by hand and merged in by a postprocessing hook, tagged ``compatible``. Their behaviour is
not touched. The WebSocket is not HTTP; its messages are listed as component schemas (``Ws…``)
so clients can generate types; docs/websocket.md explains the protocol.
"""

from __future__ import annotations

from benches.models import DevBench, Job
from benches.provisioning import protocol

from .schema import ERROR_REF

ID_PATTERN = "^[0-9]{1,18}$"


COMPATIBLE_TAG_DESCRIPTION = (
    "The compatible routes: the original DevBench Manager's routes, kept exactly as they were "
    "(paths, methods, status codes, JSON), so that its clients keep working. See docs/api.md."
)

def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _regex(pattern) -> str:
    """A Python ``\\A...\\Z`` pattern in ECMA syntax."""
    return pattern.pattern.replace("\\A", "^").replace("\\Z", "$")


def _json(schema: dict, description: str, example: dict | None = None) -> dict:
    media = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {"application/json": media}}


def _error(description: str, example: str) -> dict:
    return _json(ERROR_REF, description, {"error": example})


def _redirect(description: str) -> dict:
    return {
        "description": description,
        "headers": {"Location": {"schema": {"type": "string"}, "description": "Where to go."}},
    }


def _html(description: str) -> dict:
    return {
        "description": description,
        "content": {"text/html": {"schema": {"type": "string"}, "example": "<!DOCTYPE html>\n<html lang=\"en\">…"}},
    }


def _body(schema_name: str, example: dict) -> dict:
    """A JSON or form body, as the compatible routes accept both."""
    return {
        "required": True,
        "content": {
            "application/json": {"schema": _ref(schema_name), "example": example},
            "application/x-www-form-urlencoded": {"schema": _ref(schema_name), "example": example},
        },
    }


def _id_parameter(name: str, what: str) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id.",
        "schema": {"type": "string", "pattern": ID_PATTERN},
        "example": "42",
    }


SIGNED_OUT = _redirect("Not signed in: redirect to `/login`.")
BAD_KEY = _error("An invalid or revoked API key.", "invalid or revoked API key")
CSRF = _error("A cookie-authenticated request without its CSRF token.",
              "CSRF verification failed: send the csrftoken with the request")
BENCH_404 = _error("No such DevBench, or another user's.", "DevBench not found")
BUSY_409 = _error("Another change is under way.", "DevBench is busy: create is running")
SECURITY = [{"bearerAuth": []}, {"cookieAuth": []}]
SUCCESS = _json(_ref("CompatibleSuccess"), "Done.", {"success": True})


def _operation(operation_id: str, summary: str, description: str, responses: dict, **extra) -> dict:
    return {
        "operationId": operation_id,
        "tags": ["compatible"],
        "summary": summary,
        "description": description,
        "security": extra.pop("security", SECURITY),
        "responses": responses,
        **extra,
    }


def _bench_action(command: str, description: str) -> dict:
    return {
        "post": _operation(
            f"compatible_{command}_devbench",
            f"{command.capitalize()} a DevBench (compatible route)",
            description + " Same service as `POST /api/v1/benches/{id}/" + command + "/`.",
            {"200": SUCCESS, "302": SIGNED_OUT, "401": BAD_KEY, "403": CSRF, "404": BENCH_404, "409": BUSY_409},
            parameters=[_id_parameter("id", "DevBench")],
        )
    }


def compatible_paths() -> dict:
    statuses = [choice for choice, _label in DevBench.Status.choices]
    return {
        "/health": {
            "get": _operation(
                "compatible_health", "Health check", "`ok` once the database answered a query.",
                {
                    "200": _json(_ref("CompatibleHealth"), "Healthy.",
                                 {"status": "ok", "timestamp": "2025-11-23T12:00:00.000Z", "version": "1.0.0"}),
                    "503": _json(_ref("CompatibleHealth"), "The database does not answer.",
                                 {"status": "error", "timestamp": "2025-11-23T12:00:00.000Z", "version": "1.0.0",
                                  "error": "database unavailable"}),
                },
                security=[],
            )
        },
        "/login": {
            "post": _operation(
                "compatible_login", "Sign in",
                "Form fields `username`, `password`, optional `next`. Success redirects (302) to `next`, "
                "`/dashboard` or `/admin` and sets the session cookie; a failure re-renders the page (200). "
                "Five failures a minute per username or address give 429.",
                {
                    "200": _html("Wrong username or password: the sign-in page with the error."),
                    "302": _redirect("Signed in."),
                    "400": _html("A malformed body."),
                    "401": BAD_KEY,
                    "403": CSRF,
                    "429": {
                        "description": "Too many failed sign-ins (JSON for JSON clients).",
                        "content": {
                            "application/json": {
                                "schema": ERROR_REF,
                                "example": {"error": "Too many failed sign-in attempts. Wait a minute and try again."},
                            },
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                },
                security=[],
                requestBody={
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": _ref("CompatibleLogin"),
                            "example": {"username": "admin", "password": "admin123"},
                        }
                    },
                },
            )
        },
        "/logout": {
            "get": _operation(
                "compatible_logout", "Sign out", "Ends the session and redirects to `/login`.",
                {"302": _redirect("Signed out."), "401": BAD_KEY},
                security=[],
            )
        },
        "/dashboard": {
            "get": _operation(
                "compatible_dashboard", "The user's dashboard (HTML)", "Admins are redirected to `/admin`.",
                {"200": _html("The dashboard."), "302": _redirect("Not signed in, or an admin."), "401": BAD_KEY},
            )
        },
        "/help": {
            "get": _operation(
                "compatible_help", "Help and SSH configuration (HTML)", "With the user's ready-made SSH config.",
                {"200": _html("The help page."), "302": SIGNED_OUT, "401": BAD_KEY},
            )
        },
        "/create-devbench": {
            "post": _operation(
                "compatible_create_devbench", "Create a DevBench (compatible route)",
                "Records the bench (status `creating`) and queues its create job; output and status "
                "follow on the WebSocket. Same service as `POST /api/v1/benches/`.",
                {
                    "200": _json(_ref("CompatibleCreated"), "Created.", {"success": True, "devbenchId": 123}),
                    "302": SIGNED_OUT,
                    "400": _error("Invalid or duplicate name, or the quota is reached.",
                                  "DevBench with this name already exists"),
                    "401": BAD_KEY,
                    "403": CSRF,
                    "429": _error("Too many benches created this hour.",
                                  "You can create at most 10 DevBenches per hour; try later"),
                    "503": _error("No host has free capacity.",
                                  "No host has free capacity for a new DevBench; ask an admin"),
                },
                requestBody=_body("CompatibleBenchName", {"name": "test-vm"}),
            )
        },
        "/delete-devbench/{id}": {
            "post": _operation(
                "compatible_delete_devbench", "Delete a DevBench (compatible route)",
                "Queues the remote delete; the bench stays (status `deleting`) until it succeeded. A bench "
                "never started on its host is removed at once. Same service as `DELETE /api/v1/benches/{id}/`.",
                {"200": SUCCESS, "302": SIGNED_OUT, "401": BAD_KEY, "403": CSRF, "404": BENCH_404, "409": BUSY_409},
                parameters=[_id_parameter("id", "DevBench")],
            )
        },
        "/activate-devbench/{id}": _bench_action("activate", "Queues the activate command."),
        "/start-devbench/{id}": _bench_action("start", "Queues the start command."),
        "/stop-devbench/{id}": _bench_action("stop", "Queues the stop command."),
        "/check-status/{id}": {
            "get": _operation(
                "compatible_check_status", "Check a DevBench's status (compatible route)",
                "Runs the status command now and stores the result; while a create or delete runs, the "
                "stored status. Same service as `POST /api/v1/benches/{id}/refresh-status/`.",
                {
                    "200": _json({"type": "object", "properties": {"status": {"type": "string", "enum": statuses}},
                                  "required": ["status"]}, "The status.", {"status": "active"}),
                    "302": SIGNED_OUT,
                    "401": BAD_KEY,
                    "404": BENCH_404,
                },
                parameters=[_id_parameter("id", "DevBench")],
            )
        },
        "/cancel-job/{id}": {
            "post": _operation(
                "compatible_cancel_job", "Cancel a job (in the compatible routes' style)",
                "A queued job is cancelled at once; a running one is asked to stop (its `state` is then still "
                "`running`). Same service as `POST /api/v1/jobs/{id}/cancel/`.",
                {
                    "200": _json(_ref("CompatibleCancelled"), "Cancelled or asked to stop.",
                                 {"success": True, "state": "cancelled"}),
                    "302": SIGNED_OUT,
                    "401": BAD_KEY,
                    "403": CSRF,
                    "404": _error("No such job, or another user's.", "Job not found"),
                    "409": _error("The job has already finished.", "Job already succeeded"),
                },
                parameters=[_id_parameter("id", "job")],
            )
        },
        "/api/user-info": {
            "get": _operation(
                "compatible_user_info", "Who am I (compatible route)",
                "For the WebSocket's `register` message. `GET /api/v1/me/` says more.",
                {
                    "200": _json(_ref("CompatibleUserInfo"), "The signed-in user.",
                                 {"userId": 1, "username": "admin", "isAdmin": True}),
                    "302": SIGNED_OUT,
                    "401": BAD_KEY,
                },
            )
        },
        "/admin/add-user": {
            "post": _operation(
                "compatible_add_user", "Add a user (compatible admin route)",
                "Admins only. Same service as `POST /api/v1/users/`.",
                {
                    "200": SUCCESS,
                    "302": SIGNED_OUT,
                    "400": _error("A refused username, email or password.", "Username already exists"),
                    "401": BAD_KEY,
                    "403": _error("Not an admin, or no CSRF token.", "Admin access required"),
                },
                requestBody=_body("CompatibleAddUser",
                                  {"username": "john", "email": "john@example.com", "password": "password123"}),
            )
        },
        "/admin/delete-user/{id}": {
            "post": _operation(
                "compatible_delete_user", "Delete a user and their DevBenches (compatible admin route)",
                "Admins only; admin users cannot be deleted. Same service as `DELETE /api/v1/users/{id}/`.",
                {
                    "200": SUCCESS,
                    "302": SIGNED_OUT,
                    "401": BAD_KEY,
                    "403": _error("Not an admin, no CSRF token, or the target is an admin.",
                                  "Cannot delete an admin user"),
                    "404": _error("No such user.", "User not found"),
                },
                parameters=[_id_parameter("id", "user")],
            )
        },
        "/admin/reset-password/{id}": {
            "post": _operation(
                "compatible_reset_password", "Reset a user's password (compatible admin route)",
                "Admins only; admin passwords cannot be reset. Same service as "
                "`POST /api/v1/users/{id}/reset-password/`.",
                {
                    "200": SUCCESS,
                    "302": SIGNED_OUT,
                    "400": _error("The new password is refused by the password rules.",
                                  "This password is too short. It must contain at least 8 characters."),
                    "401": BAD_KEY,
                    "403": _error("Not an admin, no CSRF token, or the target is an admin.",
                                  "Cannot reset the password of an admin user"),
                    "404": _error("No such user.", "User not found"),
                },
                parameters=[_id_parameter("id", "user")],
                requestBody=_body("CompatibleResetPassword", {"newPassword": "newpassword123"}),
            )
        },
    }


def _object(properties: dict, required: list[str] | None = None, description: str = "") -> dict:
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if description:
        schema["description"] = description
    return schema


def compatible_components() -> dict:
    string = {"type": "string"}
    return {
        "CompatibleSuccess": _object({"success": {"type": "boolean", "enum": [True]}}, ["success"]),
        "CompatibleCreated": _object(
            {"success": {"type": "boolean", "enum": [True]}, "devbenchId": {"type": "integer"}},
            ["success", "devbenchId"]),
        "CompatibleCancelled": _object(
            {"success": {"type": "boolean", "enum": [True]},
             "state": {"type": "string", "enum": [choice for choice, _ in Job.State.choices]}},
            ["success", "state"]),
        "CompatibleHealth": _object({"status": {"type": "string", "enum": ["ok", "error"]}, "timestamp": string,
                               "version": string, "error": string}, ["status", "timestamp", "version"]),
        "CompatibleUserInfo": _object(
            {"userId": {"type": "integer"}, "username": string, "isAdmin": {"type": "boolean"}},
            ["userId", "username", "isAdmin"]),
        "CompatibleBenchName": _object(
            {"name": {"type": "string", "pattern": _regex(protocol.BENCH_NAME_RE),
                      "description": "Letters, digits, `-` and `_`; at most 48; unique per user."}},
            ["name"]),
        "CompatibleLogin": _object({"username": string, "password": string, "next": string}, ["username", "password"]),
        "CompatibleAddUser": _object({"username": {"type": "string", "description": "Letters only.",
                                             "pattern": "^[a-zA-Z]+$", "maxLength": 32},
                                "email": {"type": "string", "format": "email"},
                                "password": {"type": "string", "minLength": 8}},
                               ["username", "email", "password"]),
        "CompatibleResetPassword": _object({"newPassword": {"type": "string", "minLength": 8}}, ["newPassword"]),
    }


def websocket_components() -> dict:
    """The WebSocket's messages (``benches.consumers``, ``benches.provisioning.messages``)."""
    integer, string = {"type": "integer"}, {"type": "string"}
    nullable_int = {"type": "integer", "nullable": True}
    return {
        "WsRegister": _object({"type": {"type": "string", "enum": ["register"]}, "userId": integer},
                              ["type", "userId"], "Client → server: the original's register (own user id only)."),
        "WsReplay": _object(
            {"type": {"type": "string", "enum": ["replay"]}, "jobId": integer, "devbenchId": integer,
             "after": {"type": "integer", "minimum": 0, "default": 0}},
            ["type"], "Client → server: send a job's stored output after `after`, then the live output."),
        "WsPing": _object({"type": {"type": "string", "enum": ["ping"]}}, ["type"], "Client → server."),
        "WsScriptOutput": _object(
            {"type": {"type": "string", "enum": ["script_output"]}, "devbenchId": nullable_int, "jobId": integer,
             "seq": integer, "stream": {"type": "string", "enum": ["stdout", "stderr"]},
             "data": {"type": "string", "description": "stderr text carries the `ERROR: ` prefix."}},
            ["type", "devbenchId", "jobId", "seq", "stream", "data"], "Server → client: a stored chunk of output."),
        "WsScriptComplete": _object(
            {"type": {"type": "string", "enum": ["script_complete"]}, "devbenchId": nullable_int, "jobId": integer,
             "seq": integer, "exitCode": nullable_int,
             "state": {"type": "string", "enum": [choice for choice, _ in Job.State.choices]},
             "command": {"type": "string", "enum": [choice for choice, _ in Job.Command.choices]}},
            ["type", "devbenchId", "jobId", "seq", "exitCode", "state", "command"],
            "Server → client: a job ended; `seq` is its last chunk's."),
        "WsStatusUpdate": _object(
            {"type": {"type": "string", "enum": ["status_update"]}, "devbenchId": integer,
             "status": {"type": "string", "enum": [*(choice for choice, _ in DevBench.Status.choices), "deleted"]},
             "jobId": nullable_int, "seq": nullable_int, "sshInfo": string, "vncInfo": string, "error": string},
            ["type", "devbenchId", "status", "jobId", "seq", "sshInfo", "vncInfo", "error"],
            "Server → client: a bench's status changed (`deleted` once its row is gone)."),
        "WsPong": _object({"type": {"type": "string", "enum": ["pong"]}}, ["type"], "Server → client."),
        "WsError": _object({"type": {"type": "string", "enum": ["error"]}, "error": string}, ["type", "error"],
                           "Server → client: a refused client message; the connection stays open."),
    }


def add_compatible_routes(result, generator, request, public):
    """Postprocessing hook: the compatible routes, their schemas and the WebSocket messages."""
    components = result.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(compatible_components())
    schemas.update(websocket_components())
    components.setdefault("securitySchemes", {}).setdefault(
        "cookieAuth", {"type": "apiKey", "in": "cookie", "name": "sessionid"}
    )
    result.setdefault("paths", {}).update(compatible_paths())
    tags = result.setdefault("tags", [])
    if not any(tag.get("name") == "compatible" for tag in tags):
        tags.append({"name": "compatible", "description": COMPATIBLE_TAG_DESCRIPTION})
    return result

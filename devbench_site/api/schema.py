"""The OpenAPI description (drf-spectacular): the error responses every operation can give,
the Bearer API-key security scheme, and a postprocessing hook that adds what DRF does not
describe by itself (the compatible routes and the WebSocket messages, see ``compatible_schema``).

This module is imported by ``devbench_site.api.urls`` so that its extensions are registered
before a schema is generated.
"""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework.permissions import AllowAny

from .permissions import IsAdmin

ERROR_SCHEMA_NAME = "Error"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
ERROR_SCHEMA = {
    "type": "object",
    "description": 'Every error: the original\'s `{"error": "..."}`, with field errors listed under `fields`.',
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for people."},
        "fields": {
            "type": "object",
            "description": "Messages per request field (only when a field was at fault).",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["error"],
    "example": {"error": "name: This field is required.", "fields": {"name": ["This field is required."]}},
}

ERROR_DESCRIPTIONS = {
    "400": "The request was malformed or a value was refused (`fields` says which).",
    "401": "No credentials, or an invalid or revoked API key (`WWW-Authenticate: Bearer`).",
    "403": "Not allowed: an admin-only endpoint, or a session request without its CSRF token.",
    "404": "No such object, or it belongs to another user; or the page number is out of range.",
    "409": "The object is busy or in a state that does not allow the action now.",
    "415": "The request body's media type is not JSON, a form or multipart.",
    "429": "Too many requests (`Retry-After` says when to try again), or too many benches created this hour.",
    "503": "A service DevBench depends on is unavailable (no host with free capacity, no Kubernetes).",
}
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def documented_error(code: int | str, description: str | None = None) -> OpenApiResponse:
    """An error response for ``extend_schema(responses=...)``."""
    return OpenApiResponse(response=ERROR_REF, description=description or ERROR_DESCRIPTIONS[str(code)])


def _error_object(code: str) -> dict:
    return {"description": ERROR_DESCRIPTIONS[code], "content": {"application/json": {"schema": ERROR_REF}}}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema plus the error responses each operation can actually give."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            responses.setdefault(code, _error_object(code))
        return responses

    def _error_codes(self) -> list[str]:
        permissions = [type(permission) for permission in self.view.get_permissions()]
        public = all(issubclass(permission, AllowAny) for permission in permissions)
        codes = []
        has_body = self.method in ("POST", "PUT", "PATCH") and self._get_request_body() is not None
        has_query = bool(self.get_override_parameters())  # the filters; a bad page number is a 404
        if has_body or has_query:
            codes.append("400")
        if not public:
            codes.append("401")
            if self.method in UNSAFE_METHODS or any(issubclass(p, IsAdmin) for p in permissions):
                codes.append("403")
        if "{" in self.path or self._is_list_view():
            codes.append("404")
        if has_body:
            codes.append("415")
        if self.view.get_throttles():
            codes.append("429")
        return codes


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.APIKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`dbk_…`) from /account/api-keys or `POST /api/v1/api-keys/`. "
            "Requests with a key need no CSRF token.",
        }


def add_error_component(result, generator, request, public):
    """Postprocessing hook: the Error schema every error response refers to, and the JSON request
    example repeated for the form media types DRF also parses (the browsable API's forms)."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            content = (operation.get("requestBody") or {}).get("content", {})
            examples = content.get("application/json", {}).get("examples")
            if not examples:
                continue
            for media in content.values():
                media.setdefault("examples", examples)
    return result


def ecma(regex) -> str:
    """A compiled Python ``\\A...\\Z`` pattern in the ECMA syntax OpenAPI uses."""
    return regex.pattern.replace("\\A", "^").replace("\\Z", "$")


def documented(field, **schema):
    """``field`` with an OpenAPI schema that says what the service accepts (pattern, lengths,
    range), for clients and the fuzzer. The field itself still only parses the type: the rule
    stays in the service, which gives its own message."""
    schema.setdefault("type", "string")
    field_class = type(field)
    described = extend_schema_field(schema)(type(f"Documented{field_class.__name__}", (field_class,), {}))
    # A serializer deep-copies its declared fields by re-creating them from their arguments.
    return described(*field._args, **field._kwargs)


# OpenAPI links: where an operation's response supplies another's path parameter. Documentation
# for clients, and the chains schemathesis' stateful phase follows.
LINKS = {
    ("benches_create", "201"): {
        **{f"bench_{op}": (op, "$response.body#/id") for op in (
            "benches_retrieve", "benches_destroy", "benches_activate", "benches_start", "benches_stop",
            "benches_refresh_status", "benches_jobs_list")},
        **{f"job_{op}": (op, "$response.body#/latestJobId") for op in ("jobs_retrieve", "jobs_log", "jobs_cancel")},
    },
    **{(op, "202"): {f"job_{target}": (target, "$response.body#/id") for target in (
        "jobs_retrieve", "jobs_log", "jobs_cancel")} for op in (
        "benches_activate", "benches_start", "benches_stop", "benches_destroy")},
    ("api_keys_create", "201"): {"revoke": ("api_keys_revoke", "$response.body#/id")},
    ("users_create", "201"): {f"user_{op}": (op, "$response.body#/id") for op in (
        "users_retrieve", "users_reset_password", "users_destroy")},
    ("hosts_create", "201"): {f"host_{op}": (op, "$response.body#/id") for op in (
        "hosts_retrieve", "hosts_partial_update", "hosts_disable", "hosts_enable", "hosts_destroy")},
    ("compatible_create_devbench", "200"): {f"compatible_{op}": (op, "$response.body#/devbenchId") for op in (
        "compatible_delete_devbench", "compatible_activate_devbench", "compatible_start_devbench",
        "compatible_stop_devbench", "compatible_check_status")},
}


def add_links(result, generator, request, public):
    """Postprocessing hook (after the compatible routes are in): the ``LINKS`` above."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for (operation_id, code), links in LINKS.items():
                response = operation.get("responses", {}).get(code)
                if operation.get("operationId") != operation_id or response is None:
                    continue
                response["links"] = {
                    name: {"operationId": target, "parameters": {"id": expression}}
                    for name, (target, expression) in links.items()
                }
    return result

"""Reading a request body that may be JSON or a form, as the compatible routes accept both."""

from __future__ import annotations

import json

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from devbench_site.errors import InvalidInput, PayloadTooLarge

MAX_JSON_BODY = 64 * 1024
TOO_DEEP_MESSAGE = "Malformed JSON body: nested too deeply"
TOO_LARGE_MESSAGE = "Request body is too large"


def is_json(request: HttpRequest) -> bool:
    """Whether the request says its body is JSON."""
    return request.content_type == "application/json"


def body_fields(request: HttpRequest) -> dict[str, str]:
    """The request's fields as strings, from a JSON object or a form body.

    Raises InvalidInput for malformed or too deeply nested JSON, a JSON value that is not an
    object, or non-string field values (numbers too: a name ``1e400`` must not become "inf"),
    and PayloadTooLarge for a body over the limit, so callers never see a 500 for a bad body.
    """
    try:
        if not is_json(request):
            return _without_nul({key: request.POST.get(key, "") for key in request.POST})
        body = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge(TOO_LARGE_MESSAGE) from None
    if len(body) > MAX_JSON_BODY:
        raise PayloadTooLarge(TOO_LARGE_MESSAGE)
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("Malformed JSON body") from None
    except RecursionError:  # the decoder gives up on deep nesting before running out of stack
        raise InvalidInput(TOO_DEEP_MESSAGE) from None
    if not isinstance(data, dict):
        raise InvalidInput("JSON body must be an object")
    fields: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"Field '{key}' must be a string")
        fields[key] = value
    return _without_nul(fields)


def _without_nul(fields: dict[str, str]) -> dict[str, str]:
    """No field may carry a NUL character: databases refuse them (PostgreSQL raises)."""
    for key, value in fields.items():
        if "\x00" in value or "\x00" in key:
            raise InvalidInput(f"Field '{key}' must not contain NUL characters")
    return fields

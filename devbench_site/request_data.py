"""Reading a request body that may be JSON or a form, as the seed's routes accept both."""

from __future__ import annotations

import json

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from devbench_site.errors import InvalidInput, PayloadTooLarge

MAX_JSON_BODY = 64 * 1024


def is_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json"


def body_fields(request: HttpRequest) -> dict[str, str]:
    """The request's fields as strings, from a JSON object or a form body.

    Raises InvalidInput for malformed JSON, a JSON value that is not an object, or
    non-string field values, so callers never see a 500 for a bad body.
    """
    try:
        if not is_json(request):
            return _without_nul({key: request.POST.get(key, "") for key in request.POST})
        body = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge("Request body is too large") from None
    if len(body) > MAX_JSON_BODY:
        raise PayloadTooLarge("Request body is too large")
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("Malformed JSON body") from None
    if not isinstance(data, dict):
        raise InvalidInput("JSON body must be an object")
    fields: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidInput(f"Field '{key}' must be a string")
        fields[key] = str(value)
    return _without_nul(fields)


def _without_nul(fields: dict[str, str]) -> dict[str, str]:
    """No field may carry a NUL character: databases refuse them (PostgreSQL raises)."""
    for key, value in fields.items():
        if "\x00" in value or "\x00" in key:
            raise InvalidInput(f"Field '{key}' must not contain NUL characters")
    return fields

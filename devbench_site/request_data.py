"""Reading a request body that may be JSON or a form, as the seed's routes accept both."""

from __future__ import annotations

import json

from django.http import HttpRequest

from devbench_site.errors import InvalidInput

MAX_JSON_BODY = 64 * 1024


def is_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json"


def body_fields(request: HttpRequest) -> dict[str, str]:
    """The request's fields as strings, from a JSON object or a form body.

    Raises InvalidInput for malformed JSON, a JSON value that is not an object, or
    non-string field values, so callers never see a 500 for a bad body.
    """
    if not is_json(request):
        return {key: request.POST.get(key, "") for key in request.POST}
    if len(request.body) > MAX_JSON_BODY:
        raise InvalidInput("Request body is too large")
    try:
        data = json.loads(request.body or b"{}")
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
    return fields

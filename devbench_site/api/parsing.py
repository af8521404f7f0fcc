"""Reading a request's body or query string through a serializer (types only; rules are the
services'). Invalid input raises DRF's ValidationError, which the exception handler renders.
``JSONParser`` is the API's JSON body parser (``DEFAULT_PARSER_CLASSES``)."""

from __future__ import annotations

import functools

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.serializers import Serializer


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with deep nesting refused as a parse error (400) instead of a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:  # the decoder gives up on deep nesting before running out of stack
            raise ParseError("JSON parse error - nested too deeply") from None


def parse_body(serializer_class: type[Serializer], request: Request, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@functools.cache
def _all_optional(serializer_class: type[Serializer]) -> bool:
    return not any(field.required for field in serializer_class().fields.values())


def parse_query(serializer_class: type[Serializer], request: Request) -> dict:
    """The query string's values (the last one of a repeated parameter), absent ones left out."""
    if not request.query_params and _all_optional(serializer_class):
        return {}  # nothing to read: no serializer to build (a list's usual request)
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return {name: value for name, value in serializer.validated_data.items() if value not in (None, "")}

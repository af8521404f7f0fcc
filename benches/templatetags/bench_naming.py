"""The bench-name rule for templates: the create form's ``maxlength`` and ``pattern``."""

from __future__ import annotations

from django import template

from .. import naming

register = template.Library()


@register.simple_tag
def bench_name_max_length() -> int:
    """The longest bench name, for the input's ``maxlength`` and its help text."""
    return naming.MAX_LENGTH


@register.simple_tag
def bench_name_pattern() -> str:
    """The input's ``pattern`` (the browser anchors it to the whole value)."""
    return naming.HTML_PATTERN

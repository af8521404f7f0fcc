"""The bench-name rule, in one place: the model's field and validator, the remote protocol, the
create service's messages, the API's schema and the create form's ``<input>`` attributes (the
``bench_naming`` template tags) all read it from here; the dashboard's script reads the input's
attributes."""

from __future__ import annotations

import re

from django.core.validators import RegexValidator

MAX_LENGTH = 48
# ``\-`` rather than a bare trailing ``-``: browsers compile the input's ``pattern`` with the
# ``v`` flag, which refuses an unescaped ``-`` in a class; Python and ECMA read it the same.
_CHARACTERS = r"a-zA-Z0-9_\-"
PATTERN = rf"[{_CHARACTERS}]{{1,{MAX_LENGTH}}}"  # unanchored, for rules that embed a name
NAME_RE = re.compile(rf"\A{PATTERN}\Z")
HTML_PATTERN = rf"[{_CHARACTERS}]+"  # the input's ``pattern``; its ``maxlength`` is MAX_LENGTH

INVALID_MESSAGE = "Invalid DevBench name. Use only letters, numbers, hyphens and underscores."
TOO_LONG_MESSAGE = f"DevBench name must be at most {MAX_LENGTH} characters"
REQUIRED_MESSAGE = "DevBench name is required"
DUPLICATE_MESSAGE = "DevBench with this name already exists"

validator = RegexValidator(regex=NAME_RE, message=INVALID_MESSAGE, code="invalid_bench_name")


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a bench name, or None when it is one."""
    if isinstance(name, str) and NAME_RE.match(name):
        return None
    if not isinstance(name, str):
        return INVALID_MESSAGE
    if not name:
        return REQUIRED_MESSAGE
    if len(name) > MAX_LENGTH:
        return TOO_LONG_MESSAGE
    return INVALID_MESSAGE



# Snapshot names: the agent's SNAPSHOT_RE (docs/host-protocol.md), one rule for the model, the
# services and the API.
SNAPSHOT_MAX_LENGTH = 32
SNAPSHOT_NAME_RE = re.compile(rf"\A[A-Za-z0-9][A-Za-z0-9_-]{{0,{SNAPSHOT_MAX_LENGTH - 1}}}\Z")
SNAPSHOT_INVALID_MESSAGE = (
    f"Invalid snapshot name. Use 1 to {SNAPSHOT_MAX_LENGTH} letters, numbers, hyphens and underscores, "
    "starting with a letter or number."
)
snapshot_validator = RegexValidator(
    regex=SNAPSHOT_NAME_RE, message=SNAPSHOT_INVALID_MESSAGE, code="invalid_snapshot_name"
)


def snapshot_name_problem(name: object) -> str | None:
    """Why ``name`` is not a snapshot name, or None when it is one."""
    if isinstance(name, str) and SNAPSHOT_NAME_RE.match(name):
        return None
    return SNAPSHOT_INVALID_MESSAGE

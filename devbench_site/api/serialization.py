"""Values as the API writes them, for representations built without DRF's per-field machinery."""

from __future__ import annotations

import datetime

from django.utils import timezone


def api_datetime(value: datetime.datetime | None) -> str | None:
    """What ``serializers.DateTimeField`` writes: ISO 8601 in the current time zone, UTC as ``Z``."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

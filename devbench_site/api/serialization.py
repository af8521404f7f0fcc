"""Values as the API writes them, for representations built without DRF's per-field machinery."""

from __future__ import annotations

import datetime

from django.utils import timezone


def api_datetime(value: datetime.datetime | None, zone: datetime.tzinfo | None = None) -> str | None:
    """What ``serializers.DateTimeField`` writes: ISO 8601 in the current time zone (or ``zone``,
    when the caller looked it up once for several values), UTC as ``Z``."""
    if value is None:
        return None
    if timezone.is_aware(value):
        text = value.astimezone(zone or timezone.get_current_timezone()).isoformat()
    else:
        text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

"""The API's request rate per user (``DEVBENCH_API_RATE``, default 100/min), counted in the
shared cache so every Daphne process agrees. Bench creation has its own limit in the service
(``DEVBENCH_CREATE_LIMIT_PER_HOUR``), the same for the seed route and the API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import throttling


class UserRateThrottle(throttling.UserRateThrottle):
    """Per signed-in user (per address for anonymous callers); the rate is read on each request,
    so a changed setting applies without a restart of the class."""

    scope = "user"

    def get_rate(self) -> str | None:
        return settings.DEVBENCH_API_RATE or None

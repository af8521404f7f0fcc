"""The API's request rate per user (``DEVBENCH_API_RATE``, default 100/min), counted in the
shared cache so every Daphne process agrees. Bench creation has its own limit in the service
(``DEVBENCH_CREATE_LIMIT_PER_HOUR``), the same for the compatible route and the API."""

from __future__ import annotations

from django.conf import settings
from rest_framework import throttling


class UserRateThrottle(throttling.UserRateThrottle):
    """Per signed-in user (per address for anonymous callers); the rate is read on each request,
    so a changed setting applies without a restart of the class.

    A fixed window counted atomically in Redis (one round trip per request) instead of DRF's
    sliding log (a GET and a SET of the whole history per request, and two requests at once could
    both pass on the same count): at most N requests per window that starts with the first one;
    ``Retry-After`` is the window's time left."""

    scope = "user"

    def get_rate(self) -> str | None:
        return settings.DEVBENCH_API_RATE or None

    def allow_request(self, request, view) -> bool:
        if self.rate is None or not hasattr(self.cache, "count_in_window"):
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        count, self.seconds_left = self.cache.count_in_window(self.key, self.duration)
        return count <= self.num_requests

    def wait(self) -> float | None:
        if not hasattr(self, "seconds_left"):
            return super().wait()
        return max(self.seconds_left, 1)

"""Page-number pagination: ``?page=N&page_size=M`` → ``{"count", "next", "previous", "results"}``,
with the total counted by the page's own query."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Count, QuerySet, Window
from django.db.models.query import ModelIterable, ValuesIterable
from rest_framework import pagination

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class SinglePassPaginator(Paginator):
    """Django's paginator, but a page of a queryset of model instances or ``values()`` dicts is
    read with its total in the same query (``COUNT(*) OVER ()``) instead of a ``SELECT COUNT(*)``
    before it: one query per page. Anything else — a page past the end, an empty list, a bad
    number, an offset no database takes, ``values_list()`` rows — goes through Django's own checks
    and errors unchanged."""

    MAX_OFFSET = 2**31  # beyond it the count decides (Django's 404), not an OFFSET the database refuses

    def page(self, number):
        try:
            index = int(number)
        except (TypeError, ValueError):
            return super().page(number)
        queryset = self.object_list
        if (index < 1 or self.orphans or not isinstance(queryset, QuerySet)
                or queryset._iterable_class not in (ModelIterable, ValuesIterable)):
            return super().page(number)
        bottom = (index - 1) * self.per_page
        if bottom > self.MAX_OFFSET:
            return super().page(number)
        rows = list(queryset.annotate(_page_total=Window(Count("pk")))[bottom:bottom + self.per_page])
        if not rows:
            return super().page(number)
        first = rows[0]
        # Paginator.count is a cached_property
        self.__dict__["count"] = first["_page_total"] if isinstance(first, dict) else first._page_total
        return self._get_page(rows, index, self)


class PageNumberPagination(pagination.PageNumberPagination):
    django_paginator_class = SinglePassPaginator
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

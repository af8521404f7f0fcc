"""Page-number pagination: ``?page=N&page_size=M`` → ``{"count", "next", "previous", "results"}``,
with the total counted by the page's own query."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Count, QuerySet, Window
from django.db.models.query import ModelIterable, ValuesIterable
from rest_framework import pagination

from devbench_site.precompiled_queries import PAGE_TOTAL, BoundPages

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class SinglePassPaginator(Paginator):
    """Django's paginator, but a page of a queryset of model instances or ``values()`` dicts, or of
    a precompiled list (``BoundPages``), is read with its total in the same query (``COUNT(*)
    OVER ()``) instead of a ``SELECT COUNT(*)`` before it: one query per page. Anything else — a
    page past the end, an empty list, a bad number, an offset no database takes, ``values_list()``
    rows — goes through Django's own checks and errors unchanged."""

    MAX_OFFSET = 2**31  # beyond it the count decides (Django's 404), not an OFFSET the database refuses

    def page(self, number):
        try:
            index = int(number)
        except (TypeError, ValueError):
            return super().page(number)
        queryset = self.object_list
        if index < 1 or self.orphans or (bottom := (index - 1) * self.per_page) > self.MAX_OFFSET:
            return super().page(number)
        if isinstance(queryset, BoundPages):  # a precompiled list: the page and its total in one query
            rows, total = queryset.page(bottom, self.per_page)
        elif isinstance(queryset, QuerySet) and queryset._iterable_class in (ModelIterable, ValuesIterable):
            rows = list(queryset.annotate(**{PAGE_TOTAL: Window(Count("pk"))})[bottom:bottom + self.per_page])
            first = rows[0] if rows else None
            total = first[PAGE_TOTAL] if isinstance(first, dict) else getattr(first, PAGE_TOTAL, 0)
        else:
            return super().page(number)
        if not rows:
            return super().page(number)
        self.__dict__["count"] = total  # Paginator.count is a cached_property
        return self._get_page(rows, index, self)


class PageNumberPagination(pagination.PageNumberPagination):
    django_paginator_class = SinglePassPaginator
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

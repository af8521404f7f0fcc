"""Page-number pagination: ``?page=N&page_size=M`` → ``{"count", "next", "previous", "results"}``."""

from __future__ import annotations

from rest_framework import pagination

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

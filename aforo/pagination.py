"""The API's offset pagination: `?limit=` and `?offset=` are checked, not trusted.

DRF's LimitOffsetPagination passes any integer through to SQL (`?limit=9223372036854775808` is
PostgreSQL's `bigint out of range`, a 500) and silently replaces garbage with the default. Here a
limit above `max_limit` is clamped (the page says what it returned), an offset past
`MAX_OFFSET` and anything that is not a plain non-negative integer is a 400 naming the
parameter."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination

from .exceptions import ApiError
from .params import query_int

MAX_OFFSET = 10**12


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000

    def get_limit(self, request) -> int:
        limit = query_int(request, self.limit_query_param)
        if limit is None:
            return self.default_limit
        if limit == 0:
            raise ApiError(code="validation_error", message=f"{self.limit_query_param}: must be at least 1.", field="limit")
        return min(limit, self.max_limit)

    def get_offset(self, request) -> int:
        return query_int(request, self.offset_query_param, maximum=MAX_OFFSET) or 0

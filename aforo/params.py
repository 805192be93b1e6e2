"""Integers from URLs and query strings, checked before they reach SQL.

`str.isdigit()` is not enough: it is true for "²" (int() then raises) and for "١٢", and a
20-digit id overflows PostgreSQL's bigint. Ids are plain ASCII digits within bigint."""

from __future__ import annotations

from .exceptions import ApiError

MAX_ID = 2**63 - 1


def parse_id(raw: str | None, *, maximum: int = MAX_ID) -> int | None:
    """The non-negative integer `raw` spells in ASCII digits, if it is at most `maximum`; else None."""
    if not raw or len(raw) > 19 or not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if value <= maximum else None


def query_int(request, name: str, *, maximum: int = MAX_ID) -> int | None:
    """A query parameter that must be a non-negative integer no larger than `maximum` (an id:
    a bigint), or absent/empty (None). Anything else is a 400 naming the parameter."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    value = parse_id(raw, maximum=maximum)
    if value is None:
        raise ApiError(code="validation_error", message=f"{name}: must be an integer from 0 to {maximum}.", field=name)
    return value

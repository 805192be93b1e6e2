"""Integers from URLs and query strings, checked before they reach SQL; JSON request bodies.

`str.isdigit()` is not enough: it is true for "²" (int() then raises) and for "١٢", and a
20-digit id overflows PostgreSQL's bigint. Ids are plain ASCII digits within bigint."""

from __future__ import annotations

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status

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


def json_body(request, *, what: str, content_types: tuple[str, ...] = ("application/json",)) -> object:
    """The request's JSON body, bounded and parsed: 415 unless application/json, 413 past
    INGEST_MAX_BODY_BYTES, 400 `malformed_json` (invalid UTF-8, lone surrogates, nesting past
    1,024 levels included). `what` names the body in the 415's message ("events", "checks")."""
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if content_type not in content_types:
        raise ApiError(
            code="unsupported_media_type",
            message=f"Send {what} as {' or '.join(content_types)} (got {content_type or 'no content type'}).",
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    limit = settings.INGEST_MAX_BODY_BYTES
    try:
        # Bounded before it gets here: aforo.webserver.RequestBodyGuard (413 past
        # DATA_UPLOAD_MAX_MEMORY_SIZE), and Django's own RequestDataTooBig without it.
        body = request.body
    except RequestDataTooBig:
        body = None
    if body is None or len(body) > limit:
        raise ApiError(
            code="payload_too_large",
            message=f"The body is larger than {limit} bytes; send smaller batches.",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:  # also: invalid UTF-8, lone surrogates, nesting past 1,024 levels
        raise ApiError(code="malformed_json", message=f"The body is not valid JSON: {error}") from None

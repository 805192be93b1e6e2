"""What a lease request may say, validated field by field (the API's 400s, each with a stable
code and the field at fault). Numbers follow the event contract's quantity rules: a decimal
string or an integer, finite, at most 12 decimal places (no JSON floats, no NaN or Infinity)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

from aforo.exceptions import ApiError
from metering.validation import EventRejected, api_key_subject, parse_dimensions, parse_quantity, parse_subject

MIN_TTL_S = 1
MAX_TTL_S = 24 * 3600
MAX_UNITS = Decimal("1e15")
MAX_TEXT = 150  # holder and idempotency keys (stored in 200-character columns)
CREATE_FIELDS = {"api_key", "customer_id", "subscription_id", "metric", "dimensions", "units", "min_units", "ttl_seconds", "holder",
                 "idempotency_key"}
MONEY_FIELDS = {"api_key", "customer_id", "subscription_id", "amount", "min_amount", "ttl_seconds", "holder",
                "idempotency_key"}
RENEW_FIELDS = {"used", "ttl_seconds", "units"}
RETURN_FIELDS = {"used"}


class LeaseRequest(NamedTuple):
    subject: str  # key:<sha256>, customer:<id> or subscription:<id>
    metric: str  # "" for a money lease
    dimensions: dict[str, str]
    units: Decimal  # units of the metric, or the amount of money
    min_units: Decimal
    ttl_seconds: int
    holder: str
    idempotency_key: str
    kind: str = "units"  # "units" | "money"


class RenewRequest(NamedTuple):
    used: Decimal
    ttl_seconds: int
    units: Decimal | None  # top up to this many remaining units (None: extend only)


def _invalid(code: str, field: str, message: str) -> ApiError:
    return ApiError(code=code, message=message, field=field)


def _object(raw: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ApiError(code="invalid_body", message="Send a JSON object.")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise _invalid("unknown_field", unknown[0], f"{unknown[0]!r} is not a field here; send {', '.join(sorted(allowed))}")
    return raw


def units_parse(value: Any, field: str, *, allow_zero: bool = False) -> Decimal:
    """A unit figure: a decimal string or integer, finite, 0 (when allowed) or more, below 10^15."""
    if value is None:
        raise _invalid("missing_field", field, f"{field} is required")
    try:
        units = parse_quantity(value)
    except EventRejected as error:
        raise _invalid(f"invalid_{field}", field, error.message.replace("quantity", field)) from None
    if units > MAX_UNITS or (units == 0 and not allow_zero):
        raise _invalid(f"invalid_{field}", field, f"{field} must be {'0' if allow_zero else 'more than 0'} to {MAX_UNITS:,f}")
    return units


def ttl_parse(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_TTL_S <= value <= MAX_TTL_S:
        raise _invalid("invalid_ttl", "ttl_seconds", f"ttl_seconds must be an integer from {MIN_TTL_S} to {MAX_TTL_S}")
    return value


def _text(raw: dict[str, Any], field: str) -> str:
    value = raw.get(field)
    if value is None:
        raise _invalid("missing_field", field, f"{field} is required")
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TEXT or not value.isprintable():
        raise _invalid(f"invalid_{field}", field, f"{field} must be a printable string of 1 to {MAX_TEXT} characters")
    return value


def _subject(subject: dict[str, Any]) -> str:
    if "api_key" in subject:
        return api_key_subject(subject["api_key"])
    name, value = next(iter(subject.items()))
    return f"{name.removesuffix('_id')}:{value}"


def lease_create_parse(raw: Any) -> LeaseRequest:
    """The body of POST /api/v1/leases: a unit lease (`metric`, `units`) or a money lease
    (`amount`). Raises ApiError (400) naming the field."""
    if isinstance(raw, dict) and "amount" in raw:
        return _money_parse(raw)
    raw = _object(raw, CREATE_FIELDS)
    try:
        subject = parse_subject(raw)
        dimensions = parse_dimensions(raw.get("dimensions"))
    except EventRejected as error:
        raise _invalid(error.code, error.field or "api_key", error.message) from None
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric.strip() or len(metric) > 100 or not metric.isprintable():
        raise _invalid("invalid_metric", "metric", "metric must be a metric code (a printable string of 1–100 characters)")
    units = units_parse(raw.get("units"), "units")
    min_units = units_parse(raw["min_units"], "min_units", allow_zero=True) if raw.get("min_units") is not None else Decimal(0)
    if min_units > units:
        raise _invalid("invalid_min_units", "min_units", "min_units must not exceed units")
    if "ttl_seconds" not in raw:
        raise _invalid("missing_field", "ttl_seconds", "ttl_seconds is required")
    return LeaseRequest(
        _subject(subject),
        metric, dimensions, units, min_units, ttl_parse(raw["ttl_seconds"]), _text(raw, "holder"),
        _text(raw, "idempotency_key"),
    )


def _money_parse(raw: dict[str, Any]) -> LeaseRequest:
    raw = _object(raw, MONEY_FIELDS)
    try:
        subject = parse_subject(raw)
    except EventRejected as error:
        raise _invalid(error.code, error.field or "api_key", error.message) from None
    amount = units_parse(raw.get("amount"), "amount")
    minimum = units_parse(raw["min_amount"], "min_amount", allow_zero=True) if raw.get("min_amount") is not None else Decimal(0)
    if minimum > amount:
        raise _invalid("invalid_min_amount", "min_amount", "min_amount must not exceed amount")
    if "ttl_seconds" not in raw:
        raise _invalid("missing_field", "ttl_seconds", "ttl_seconds is required")
    return LeaseRequest(
        _subject(subject), "", {}, amount, minimum, ttl_parse(raw["ttl_seconds"]), _text(raw, "holder"),
        _text(raw, "idempotency_key"), "money",
    )


def lease_renew_parse(raw: Any) -> RenewRequest:
    """The body of POST /api/v1/leases/{id}/renew."""
    raw = _object(raw, RENEW_FIELDS)
    if "ttl_seconds" not in raw:
        raise _invalid("missing_field", "ttl_seconds", "ttl_seconds is required")
    units = units_parse(raw["units"], "units", allow_zero=True) if raw.get("units") is not None else None
    return RenewRequest(units_parse(raw.get("used"), "used", allow_zero=True), ttl_parse(raw["ttl_seconds"]), units)


def lease_return_parse(raw: Any) -> Decimal:
    """The body of POST /api/v1/leases/{id}/return: the units used."""
    return units_parse(_object(raw, RETURN_FIELDS).get("used"), "used", allow_zero=True)

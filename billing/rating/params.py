"""The engine's constants, errors and parameter parsing: what every model module uses to read
its config (decimals as strings, never floats; bounds; unknown keys refused)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

from aforo.money import decimal_text

PRECISION = 80
ZERO = Decimal(0)
MAX_PLACES = 12
MAX_PARAMETER = Decimal("1e12")
MAX_UNITS = Decimal("1e26")
DIMENSION_KEY_MAX = 200
KEY_SEPARATORS = frozenset(",=|")  # of a dimension key: "region=eu|uk,tool_name=search"
MAX_OVERRIDES = 100
MAX_EVENTS = 10_000  # transactions in one quote (the pipeline rates one event at a time)
LIMIT_FIELDS = ("units", "overage", "fail")
# What the entitlement check answers when its counters cannot be read (Redis down): "open" allows
# (the default: availability first), "closed" denies.
FAIL_OPEN, FAIL_CLOSED = "open", "closed"
FAILS = (FAIL_OPEN, FAIL_CLOSED)
BLOCK, BILL = "block", "bill"
OVERAGES = (BLOCK, BILL)


class RatingError(ValueError):
    """Bad input to the engine; `field` names the offending part (a dotted path such as
    "tiers[2].up_to" or "overrides[0].price.rate")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ConfigError(RatingError):
    """An invalid pricing config."""


class UsageError(RatingError):
    """Invalid units or events handed to quote()."""


# --- parsing ------------------------------------------------------------------------------


def parse_decimal(
    raw: Any, field: str, *, minimum: Decimal = ZERO, maximum: Decimal = MAX_PARAMETER, error: type[RatingError] = ConfigError
) -> Decimal:
    """A decimal string or an int, finite, within [minimum, maximum], at most 12 places.
    Floats and booleans are refused: a float is already inexact."""
    if isinstance(raw, (bool, float)):
        raise error(field, f'must be a decimal string such as "0.003", not {raw!r} (floats are inexact)')
    try:
        value = Decimal(raw.strip() if isinstance(raw, str) else raw) if isinstance(raw, (int, str, Decimal)) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise error(field, f"must be a finite decimal, got {raw!r}")
    if value < minimum:
        raise error(field, f"must be at least {minimum}, got {raw!r}")
    if value > maximum:
        raise error(field, f"must be at most {maximum:,f}, got {raw!r}")
    if value.as_tuple().exponent < -MAX_PLACES:  # type: ignore[operator]
        raise error(field, f"has more than {MAX_PLACES} decimal places")
    return value


def param(config: Mapping[str, Any], name: str, *, default: str | None = None, **limits: Any) -> Decimal:
    """Read parameter `name`; absent or null falls back to `default` (required when None)."""
    raw = config.get(name)
    if raw is None:
        if default is None:
            raise ConfigError(name, "is required")
        return Decimal(default)
    return parse_decimal(raw, name, **limits)


def optional_param(config: Mapping[str, Any], name: str, **limits: Any) -> Decimal | None:
    raw = config.get(name)
    return None if raw is None else parse_decimal(raw, name, **limits)


def reject_unknown(config: Mapping[str, Any], allowed: set[str], model: str) -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(unknown[0], f"is not a parameter of the {model} model; expected some of {sorted(allowed - {'model'})}")


def text(value: Decimal | None) -> str | None:
    """Normalised decimal text (no exponent, no trailing zeros): what stored configs hold."""
    return None if value is None else decimal_text(value)


@contextmanager
def nested(prefix: str) -> Iterator[None]:
    """Re-raise a ConfigError from inside a nested object with its path prefixed."""
    try:
        yield
    except ConfigError as error:
        raise ConfigError(f"{prefix}.{error.field}", error.message) from None

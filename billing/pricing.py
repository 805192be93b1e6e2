"""A quote a person asks for (POST /api/v1/pricing/quote, `manage.py quote`, the admin's price
preview reads the engine directly): what a config charges for some usage, explained. Pure:
nothing is read or written; the config is the caller's, not a stored one.

Parsing is the engine's on purpose: a serializer field would coerce a JSON float to a string
and hide that it was inexact; the engine refuses floats and names the field."""

from __future__ import annotations

from typing import Any

from billing.rating import ConfigError, UsageError, explain, text, validate_config
from metering.validation import EventRejected, parse_dimensions


class QuoteInputError(ValueError):
    """A quote request the engine cannot price: a stable `code` and the `field` at fault, as a
    path into the request body ("config.tiers[1].up_to", "events[3]", "dimensions.region")."""

    def __init__(self, *, code: str, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.code = code
        self.field = field
        self.message = message


def pricing_quote(*, config: Any, units: Any = None, events: Any = None, dimensions: Any = None) -> dict[str, Any]:
    """What `config` charges for one period at `units` (or at the transactions `events`, whose
    exact sum is then the units), priced for `dimensions`: amount, model, dimension key, the
    normalised config and the breakdown, decimals as strings. Raises QuoteInputError."""
    if config is None:
        raise QuoteInputError(code="invalid_config", field="config", message="is required")
    try:
        normalised = validate_config(config)
    except ConfigError as error:
        field = "config" if error.field == "config" else f"config.{error.field}"
        raise QuoteInputError(code="invalid_config", field=field, message=error.message) from None
    try:
        dimension_values = parse_dimensions(dimensions)
    except EventRejected as error:
        raise QuoteInputError(code=error.code, field=error.field or "dimensions", message=error.message) from None
    try:
        answer = explain(normalised, units, events, dimensions=dimension_values)
    except UsageError as error:
        raise QuoteInputError(code="invalid_usage", field=error.field, message=error.message) from None
    return {
        "amount": text(answer.amount),
        "model": answer.model,
        "dimension_key": answer.dimension_key,
        "units": text(answer.units),
        "config": normalised,
        "breakdown": [line.as_dict() for line in answer.lines],
    }

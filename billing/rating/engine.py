"""The engine's public functions over a config: quote, breakdown, explain (the rest lives in
params, types, model, overrides and registry; billing.rating re-exports the public names)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from .model import Model
from .overrides import compile_config
from .params import MAX_EVENTS, MAX_UNITS, PRECISION, ZERO, UsageError, parse_decimal, text
from .types import Limit, Line

def _units(units: Decimal | str | int) -> Decimal:
    return parse_decimal(units, "units", maximum=MAX_UNITS, error=UsageError)


def _events(units: Decimal | None, events: Sequence[Decimal | str | int] | None) -> list[Decimal] | None:
    """Parsed transaction amounts, which must sum to `units` (unless units is None)."""
    if events is None:
        return None
    if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
        raise UsageError("events", "must be a list of transaction amounts")
    if len(events) > MAX_EVENTS:
        raise UsageError("events", f"at most {MAX_EVENTS:,} transactions per quote")
    parsed = [parse_decimal(e, f"events[{i}]", maximum=MAX_UNITS, error=UsageError) for i, e in enumerate(events)]
    if units is None:
        return parsed
    with localcontext() as ctx:
        ctx.prec = PRECISION
        total = sum(parsed, ZERO)
    if total != units:
        raise UsageError("units", f"must equal the sum of events ({text(total)}), got {text(units)}")
    return parsed


def _model(config: Mapping[str, Any], dimensions: Mapping[str, Any] | None) -> tuple[str, Model]:
    return compile_config(config).select(dimensions)


def quote(
    config: Mapping[str, Any],
    units: Decimal | str | int,
    events: Sequence[Decimal | str | int] | None = None,
    *,
    dimensions: Mapping[str, Any] | None = None,
) -> Decimal:
    """The full, exact charge for one billing period of one metric at `units` of usage.
    For percentage, `events` are the transaction amounts in arrival order (they must sum to
    `units`; without them `units` is one transaction). `dimensions` picks an override."""
    parsed_units = _units(units)
    _, model = _model(config, dimensions)
    return model.quote(parsed_units, _events(parsed_units, events))


def breakdown(
    config: Mapping[str, Any],
    units: Decimal | str | int,
    events: Sequence[Decimal | str | int] | None = None,
    *,
    dimensions: Mapping[str, Any] | None = None,
) -> tuple[str, list[Line]]:
    """(dimension_key, lines) of the same quote: per tier, per package or per transaction;
    the lines' amounts sum to quote(...) exactly."""
    parsed_units = _units(units)
    key, model = _model(config, dimensions)
    return key, model.lines(parsed_units, _events(parsed_units, events))


@dataclass(frozen=True, slots=True)
class Quote:
    """A quote explained: what the API and the `quote` command show."""

    amount: Decimal
    units: Decimal
    model: str  # of the price that applied: the base config's or the override's
    dimension_key: str
    lines: list[Line]
    limit: Limit | None = None  # of that price; the amount is the same with or without it


def explain(
    config: Mapping[str, Any],
    units: Decimal | str | int | None = None,
    events: Sequence[Decimal | str | int] | None = None,
    *,
    dimensions: Mapping[str, Any] | None = None,
) -> Quote:
    """quote() and breakdown() together, for a person: `units` may be left out when `events`
    are given (they are then the events' exact sum)."""
    if units is None:
        if events is None:
            raise UsageError("units", "is required unless events (the transaction amounts) are given")
        parsed_events = _events(None, events)
        with localcontext() as ctx:
            ctx.prec = PRECISION
            parsed_units = sum(parsed_events, ZERO)  # type: ignore[arg-type]
    else:
        parsed_units = _units(units)
        parsed_events = _events(parsed_units, events)
    key, model = _model(config, dimensions)
    return Quote(
        amount=model.quote(parsed_units, parsed_events), units=parsed_units, model=model.name, dimension_key=key,
        lines=model.lines(parsed_units, parsed_events), limit=model.limit,
    )

"""per_unit: max(units − included_free, 0) × rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .engine import ConfigError, parse_decimal

FIELDS = {"model", "rate", "included_free"}


def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(config) - FIELDS
    if unknown:
        raise ConfigError(sorted(unknown)[0], "is not a parameter of the per_unit model")
    return {
        "model": "per_unit",
        "rate": str(parse_decimal(config, "rate")),
        "included_free": str(parse_decimal(config, "included_free", default="0")),
    }


@dataclass(frozen=True)
class PerUnit:
    rate: Decimal
    included_free: Decimal

    def quote(self, units: Decimal, events: Sequence[Decimal] | None = None) -> Decimal:
        billable = units - self.included_free
        return billable * self.rate if billable > 0 else Decimal(0)


def compile(config: Mapping[str, Any]) -> PerUnit:  # noqa: A001 - the module's contract name
    return PerUnit(rate=Decimal(config["rate"]), included_free=Decimal(config["included_free"]))

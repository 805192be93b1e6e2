"""per_unit: max(units − included_free, 0) × rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .model import Model
from .params import MAX_UNITS, ZERO, param, reject_unknown, text
from .types import Line

FIELDS = {"model", "rate", "included_free"}


def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(config, FIELDS, "per_unit")
    return {
        "model": "per_unit",
        "rate": text(param(config, "rate")),
        "included_free": text(param(config, "included_free", default="0", maximum=MAX_UNITS)),
    }


@dataclass(frozen=True)
class PerUnit(Model):
    name = "per_unit"
    rate: Decimal
    included_free: Decimal

    def boundaries(self) -> list[Decimal]:
        return [self.included_free] if self.included_free else []

    def included_units(self) -> Decimal | None:
        return self.included_free or None

    def _quote(self, units: Decimal, events: Sequence[Decimal] | None) -> Decimal:
        billable = units - self.included_free
        return billable * self.rate if billable > 0 else ZERO

    def _lines(self, units: Decimal, events: Sequence[Decimal] | None) -> list[Line]:
        lines = []
        if self.included_free:
            lines.append(Line(f"included free (first {text(self.included_free)})", ZERO, units=min(units, self.included_free), unit_amount=ZERO))
        billable = max(units - self.included_free, ZERO)
        lines.append(Line("per unit", billable * self.rate, units=billable, unit_amount=self.rate))
        return lines


def compile(config: Mapping[str, Any]) -> PerUnit:  # shadows the builtin: the module's contract name
    return PerUnit(rate=Decimal(config["rate"]), included_free=Decimal(config["included_free"]))

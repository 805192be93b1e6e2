"""included_quota: the first `quota` units are included; units beyond it at `overage_rate`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .engine import MAX_UNITS, ZERO, Line, Model, param, reject_unknown, text

FIELDS = {"model", "quota", "overage_rate"}


def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(config, FIELDS, "included_quota")
    return {
        "model": "included_quota",
        "quota": text(param(config, "quota", maximum=MAX_UNITS)),
        "overage_rate": text(param(config, "overage_rate")),
    }


@dataclass(frozen=True)
class IncludedQuota(Model):
    name = "included_quota"
    quota: Decimal
    overage_rate: Decimal

    def _quote(self, units: Decimal, events: Sequence[Decimal] | None) -> Decimal:
        overage = units - self.quota
        return overage * self.overage_rate if overage > 0 else ZERO

    def _lines(self, units: Decimal, events: Sequence[Decimal] | None) -> list[Line]:
        overage = max(units - self.quota, ZERO)
        return [
            Line(f"included (quota {text(self.quota)})", ZERO, units=min(units, self.quota), unit_amount=ZERO),
            Line("overage", overage * self.overage_rate, units=overage, unit_amount=self.overage_rate),
        ]


def compile(config: Mapping[str, Any]) -> IncludedQuota:  # shadows the builtin: the module's contract name
    return IncludedQuota(quota=Decimal(config["quota"]), overage_rate=Decimal(config["overage_rate"]))

"""included_quota: the first `quota` units are included; units beyond it at `overage_rate`.
The same charge as per_unit with included_free = quota, named as plans name it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from .params import MAX_UNITS, ZERO, param, reject_unknown, text
from .types import Line
from .per_unit import PerUnit

FIELDS = {"model", "quota", "overage_rate"}


def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(config, FIELDS, "included_quota")
    return {
        "model": "included_quota",
        "quota": text(param(config, "quota", maximum=MAX_UNITS)),
        "overage_rate": text(param(config, "overage_rate")),
    }


class IncludedQuota(PerUnit):
    name = "included_quota"

    def _lines(self, units: Decimal, events: Sequence[Decimal] | None) -> list[Line]:
        overage = max(units - self.included_free, ZERO)
        return [
            Line(f"included (quota {text(self.included_free)})", ZERO, units=min(units, self.included_free), unit_amount=ZERO),
            Line("overage", overage * self.rate, units=overage, unit_amount=self.rate),
        ]


def compile(config: Mapping[str, Any]) -> IncludedQuota:  # shadows the builtin: the module's contract name
    return IncludedQuota(rate=Decimal(config["overage_rate"]), included_free=Decimal(config["quota"]))

"""flat: `amount` per period, whatever the usage (also at zero). Every event's delta is zero;
settlement charges quote(0) == amount once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .model import Model
from .params import param, reject_unknown, text
from .types import Line

FIELDS = {"model", "amount"}


def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(config, FIELDS, "flat")
    return {"model": "flat", "amount": text(param(config, "amount"))}


@dataclass(frozen=True)
class Flat(Model):
    name = "flat"
    amount: Decimal

    def _quote(self, units: Decimal, events: Sequence[Decimal] | None) -> Decimal:
        return self.amount

    def _lines(self, units: Decimal, events: Sequence[Decimal] | None) -> list[Line]:
        return [Line("flat fee for the period", self.amount, units=units, flat_amount=self.amount)]


def compile(config: Mapping[str, Any]) -> Flat:  # shadows the builtin: the module's contract name
    return Flat(amount=Decimal(config["amount"]))

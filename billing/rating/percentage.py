"""percentage: a fee per transaction (payments, marketplace take rates). `units` is the sum of
the transaction amounts; `events` the amounts, in arrival order.

Each transaction pays amount × rate / 100 + fixed_fee, clamped to [per_transaction_min,
per_transaction_max] when set. The allowance — the first `free_events` transactions and the
first `free_amount` of value — ends when the first of the two runs out: a transaction entirely
inside it pays nothing (no fixed fee, no minimum); the one that crosses `free_amount` (or uses
up exactly what was left of it) pays its fixed fee and the percentage on its part beyond the
allowance. `min_fee` raises the period total to at least that much.

Delta rating needs more than the units: the transaction's index, the value before it, and the
fees so far before the minimum (Usage.events, Usage.units, Usage.fees).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .model import Model
from .params import ConfigError, MAX_UNITS, ZERO, optional_param, param, reject_unknown, text
from .types import Line, Rating, Usage

FIELDS = {"model", "rate", "fixed_fee", "per_transaction_min", "per_transaction_max", "min_fee", "free_events", "free_amount"}
HUNDRED = Decimal(100)


def normalise(config: Mapping[str, Any]) -> dict[str, Any]:
    reject_unknown(config, FIELDS, "percentage")
    rate = param(config, "rate", maximum=HUNDRED)
    tx_min = param(config, "per_transaction_min", default="0")
    tx_max = optional_param(config, "per_transaction_max")
    if tx_max is not None and tx_max < tx_min:
        raise ConfigError("per_transaction_max", f"must be at least per_transaction_min ({text(tx_min)})")
    free_events = param(config, "free_events", default="0", maximum=Decimal("1e12"))
    if free_events != free_events.to_integral_value():
        raise ConfigError("free_events", "must be a whole number of transactions")
    return {
        "model": "percentage",
        "rate": text(rate),
        "fixed_fee": text(param(config, "fixed_fee", default="0")),
        "per_transaction_min": text(tx_min),
        "per_transaction_max": text(tx_max),
        "min_fee": text(param(config, "min_fee", default="0")),
        "free_events": int(free_events),
        "free_amount": text(param(config, "free_amount", default="0", maximum=MAX_UNITS)),
    }


@dataclass(frozen=True)
class Percentage(Model):
    name = "percentage"
    uses_events = True
    rate: Decimal
    fixed_fee: Decimal
    per_transaction_min: Decimal
    per_transaction_max: Decimal | None
    min_fee: Decimal
    free_events: int
    free_amount: Decimal

    def fee(self, index: int, prior: Decimal, amount: Decimal) -> tuple[Decimal, Decimal | None]:
        """(fee, chargeable value) of transaction number `index` (0-based) of `amount`, after
        `prior` value in the period; before the period minimum. The chargeable value is None
        for a transaction entirely inside the free allowance."""
        chargeable = amount
        if (self.free_events or self.free_amount) and (not self.free_events or index < self.free_events):
            if not self.free_amount or prior + amount < self.free_amount:
                return ZERO, None  # entirely inside the allowance
            if prior < self.free_amount:  # crosses it, or uses up exactly what was left
                chargeable = prior + amount - self.free_amount
        fee = chargeable * self.rate / HUNDRED + self.fixed_fee
        fee = max(fee, self.per_transaction_min)
        if self.per_transaction_max is not None and fee > self.per_transaction_max:
            fee = self.per_transaction_max
        return fee, chargeable

    def _transactions(self, units: Decimal, events: Sequence[Decimal] | None) -> Sequence[Decimal]:
        if events is not None:
            return events
        return [units] if units else []

    def _quote(self, units: Decimal, events: Sequence[Decimal] | None) -> Decimal:
        fees, prior = ZERO, ZERO
        for index, amount in enumerate(self._transactions(units, events)):
            fees += self.fee(index, prior, amount)[0]
            prior += amount
        return max(fees, self.min_fee)

    def _lines(self, units: Decimal, events: Sequence[Decimal] | None) -> list[Line]:
        lines, fees, prior = [], ZERO, ZERO
        for index, amount in enumerate(self._transactions(units, events)):
            fee, chargeable = self.fee(index, prior, amount)
            if chargeable is None:
                note = " (free allowance)"
            elif chargeable != amount:
                note = f" ({text(chargeable)} beyond the free allowance)"
            else:
                note = ""
            lines.append(
                Line(
                    f"transaction {index + 1}{note}", fee, units=amount, unit_amount=self.rate / HUNDRED,
                    flat_amount=ZERO if chargeable is None else self.fixed_fee,
                )
            )
            fees += fee
            prior += amount
        if fees < self.min_fee:
            lines.append(Line(f"period minimum fee {text(self.min_fee)}", self.min_fee - fees))
        return lines

    def _rate(self, usage: Usage, quantity: Decimal) -> Rating:
        fee, _ = self.fee(usage.events, usage.units, quantity)
        fees = usage.fees + fee
        amount = max(fees, self.min_fee) - max(usage.fees, self.min_fee)
        return Rating(amount, Usage(usage.units + quantity, usage.events + 1, fees))


def compile(config: Mapping[str, Any]) -> Percentage:  # shadows the builtin: the module's contract name
    tx_max = config["per_transaction_max"]
    return Percentage(
        rate=Decimal(config["rate"]), fixed_fee=Decimal(config["fixed_fee"]),
        per_transaction_min=Decimal(config["per_transaction_min"]),
        per_transaction_max=None if tx_max is None else Decimal(tx_max), min_fee=Decimal(config["min_fee"]),
        free_events=int(config["free_events"]), free_amount=Decimal(config["free_amount"]),
    )

"""What a model computes: the running state (Usage), a rated event (Rating, with its TierDelta
breakdown), a quote's Line, and a price's Limit. Immutable values."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from .params import ZERO, text

class Usage(NamedTuple):
    """The running state of one (subscription, metric, dimension, period): units so far, events
    (transactions) so far, and, for percentage, the per-transaction fees before the period
    minimum. Zero usage is Usage()."""

    units: Decimal = ZERO
    events: int = 0
    fees: Decimal = ZERO


class TierDelta(NamedTuple):
    tier: int  # 1-based
    units: Decimal
    amount: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "units": text(self.units), "amount": text(self.amount)}


class Rating(NamedTuple):
    """One event rated against a running state: the exact delta, the state after it, and
    (tiered models) how the delta falls across tiers."""

    amount: Decimal
    usage: Usage
    tiers: tuple[TierDelta, ...] | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a quote's breakdown; a breakdown's amounts sum to the quote exactly."""

    description: str
    amount: Decimal
    units: Decimal | None = None
    unit_amount: Decimal | None = None
    flat_amount: Decimal | None = None
    tier: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description}
        for name in ("tier", "units", "unit_amount", "flat_amount"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value if name == "tier" else text(value)
        out["amount"] = text(self.amount)
        return out


@dataclass(frozen=True, slots=True)
class Limit:
    """A price's hard usage limit per period: `units`, and what happens beyond them — `overage`
    "block" (not to be charged) or "bill" (charged as usual, reported as overage)."""

    units: Decimal
    overage: str
    fail: str = "open"  # the entitlement check's answer when its counters are unavailable: open | closed

    def as_dict(self) -> dict[str, Any]:
        out = {"units": text(self.units), "overage": self.overage}
        return out if self.fail == "open" else {**out, "fail": self.fail}  # the config's normalised form

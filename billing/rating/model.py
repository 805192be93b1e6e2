"""The model base class (quote, lines, rate_event under the exact decimal context, limits) and
the tiered models' shared delta rating."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import ClassVar

from .params import BLOCK, PRECISION, ZERO
from .types import Limit, Line, Rating, TierDelta, Usage

@dataclass(frozen=True)
class Model:
    """A compiled pricing model. Subclasses (frozen dataclasses) implement `_quote` and `_lines`
    (and `_rate` when the charge depends on more than the units, like percentage); the public
    methods run them under the engine's precision so no caller can get a rounded result.

    `limit` (keyword-only, so subclasses keep their positional fields) is the price's usage limit
    or None; no pricing method reads it."""

    name: ClassVar[str]
    uses_events: ClassVar[bool] = False  # percentage: priced per transaction
    # The charge never falls as units grow (every model but volume): a "block" limit then
    # charges exactly quote(min(units, limit)), with no quote needed to know it.
    monotone: ClassVar[bool] = True
    limit: Limit | None = field(default=None, kw_only=True)

    def quote(self, units: Decimal, events: Sequence[Decimal] | None = None) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return self._quote(units, events)

    def lines(self, units: Decimal, events: Sequence[Decimal] | None = None) -> list[Line]:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return self._lines(units, events)

    def rate_event(self, usage: Usage, quantity: Decimal) -> Rating:
        """Delta rating: the charge of one more event of `quantity` on top of `usage`."""
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return self._rate(usage, quantity)

    def boundaries(self) -> list[Decimal]:
        """Units where the price per unit changes (tier bounds, included units, package edges),
        ascending: what a price preview should show. None for per-transaction models."""
        return []

    def included_units(self) -> Decimal | None:
        """The units the price includes free each period (included_free, a quota, free units, a
        free first tier), or None: what settlement's QuotaCheck and the usage page report."""
        return None

    def overage_units(self, units: Decimal) -> Decimal:
        """The units beyond the limit, max(units − limit.units, 0), whatever its overage; 0
        without a limit."""
        if self.limit is None:
            return ZERO
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return max(units - self.limit.units, ZERO)

    def overage_credit(self, units: Decimal) -> Decimal:
        """What a "block" limit takes back from quote(units): the charge of the units beyond the
        limit, quote(units) − quote(limit.units), exact. Never negative: where a price falls past
        the limit (volume tiers) blocking does not raise the charge, so the credit is 0 and
        quote(units) − credit == min(quote(units), quote(min(units, limit.units))). 0 for "bill",
        without a limit, and within it."""
        if self.limit is None or self.limit.overage != BLOCK or units <= self.limit.units:
            return ZERO
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return max(self._quote(units, None) - self._quote(self.limit.units, None), ZERO)

    def blocks(self) -> bool:
        """A "block" limit: units beyond it are recorded but never charged (rate_limited)."""
        return self.limit is not None and self.limit.overage == BLOCK

    def charged_units(self, units: Decimal) -> Decimal:
        """The units whose charge a "block" limit lets through: the units priced so that
        quote(charged_units(u)) == quote(u) − overage_credit(u) — min(u, limit), or u itself
        where a price falls past the limit (volume) and blocking must not raise the charge.
        `units` without a block limit. Call under the engine's precision."""
        limit = self.limit
        if limit is None or limit.overage != BLOCK or units <= limit.units:
            return units
        if self.monotone or self._quote(units, None) >= self._quote(limit.units, None):
            return limit.units
        return units

    def rate_limited(self, usage: Usage, quantity: Decimal) -> tuple[Rating, Decimal]:
        """Delta rating under a "block" limit, in real time: the event's charge is
        charge(after) − charge(before) with charge(u) = quote(charged_units(u)) (so for every
        key the events sum to quote(total) − overage_credit(total) − quote(0), the delta law of
        the capped price), its tier breakdown that of the charged units, and the units it takes
        past the limit — max(after − max(before, limit), 0) — returned as blocked. The state
        after counts every unit (usage is recorded, blocked or not). Call under the engine's
        precision (ratings_plan)."""
        after = usage.units + quantity
        before_charged = self.charged_units(usage.units)
        rating = self._rate(Usage(before_charged, usage.events, usage.fees), self.charged_units(after) - before_charged)
        blocked = max(after - max(usage.units, self.limit.units), ZERO)  # type: ignore[union-attr]
        return Rating(rating.amount, Usage(after, usage.events + 1, usage.fees), rating.tiers), blocked

    def _quote(self, units: Decimal, events: Sequence[Decimal] | None) -> Decimal:
        raise NotImplementedError

    def _lines(self, units: Decimal, events: Sequence[Decimal] | None) -> list[Line]:
        raise NotImplementedError

    def _rate(self, usage: Usage, quantity: Decimal) -> Rating:
        after = usage.units + quantity
        amount = self._quote(after, None) - self._quote(usage.units, None)
        return Rating(amount, Usage(after, usage.events + 1, usage.fees))


class TieredModel(Model):
    """graduated and volume: a charge per tier, so a rated event records its tier breakdown."""

    def included_units(self) -> Decimal | None:
        up_to, unit_amount, flat_amount = self.tiers[0]  # type: ignore[attr-defined]
        return up_to if up_to is not None and not unit_amount and not flat_amount else None  # a free first tier

    def _tier_totals(self, units: Decimal) -> list[tuple[int, Decimal, Decimal]]:
        """(tier number, units in the tier, amount of the tier incl. its flat fee) per tier charged."""
        raise NotImplementedError

    def _quote(self, units: Decimal, events: Sequence[Decimal] | None) -> Decimal:
        return sum((amount for _, _, amount in self._tier_totals(units)), ZERO)

    def _rate(self, usage: Usage, quantity: Decimal) -> Rating:
        after = usage.units + quantity
        delta: dict[int, list[Decimal]] = {}
        for tier, units, amount in self._tier_totals(after):
            delta[tier] = [units, amount]
        for tier, units, amount in self._tier_totals(usage.units):
            entry = delta.setdefault(tier, [ZERO, ZERO])
            entry[0] -= units
            entry[1] -= amount
        tiers = tuple(TierDelta(t, u, a) for t, (u, a) in sorted(delta.items()) if u or a)
        return Rating(sum((t.amount for t in tiers), ZERO), Usage(after, usage.events + 1, usage.fees), tiers)

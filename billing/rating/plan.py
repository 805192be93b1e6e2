"""Delta rating of a batch, as a pure plan over immutable rows (no database, no Django).

The caller locks and reads the running state of every (subscription, metric, dimension,
period) the batch touches, hands it here with the events in arrival order, and writes what comes
back: one `PlannedRating` per event and the totals after the batch. For every key,
sum(amount) == quote(units after) − quote(units before) whatever the batch boundaries (the
delta law, ARCHITECTURE.md §4.3) — hypothesis checks it in tests/rating/test_plan.py. Under a
"block" limit the law holds for the capped price, quote(u) − overage_credit(u): units past the
limit are counted and reported as blocked, never charged (Model.rate_limited).

A free event (trial usage, billing.trials) moves the running state like any other — its units
are the key's first, so the paid ones after it are priced from there — and is charged nothing:
for every key, sum(amount) == quote(units after) − quote(units before) − (what the free events'
deltas would have been)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from decimal import Decimal, localcontext
from typing import NamedTuple

from .model import Model
from .params import PRECISION
from .types import TierDelta, Usage

ZERO = Decimal(0)


class TotalState(NamedTuple):
    """The running state of one key: its row id, units, amount, events and fees so far."""

    id: int
    units: Decimal = ZERO
    amount: Decimal = ZERO
    events: int = 0
    fees: Decimal = ZERO


class EventToRate(NamedTuple):
    key: Hashable  # the running total it moves
    quantity: Decimal
    model: Model
    free: bool = False  # trial usage: counted, rated at zero


class PlannedRating(NamedTuple):
    units_before: Decimal
    units_after: Decimal
    amount: Decimal
    tiers: tuple[TierDelta, ...] | None
    blocked: Decimal = ZERO  # units past a "block" limit: recorded, never charged (Model.rate_limited)
    free: bool = False  # trial usage: rated at zero (no tiers)


def ratings_plan(
    events: Sequence[EventToRate], totals: Mapping[Hashable, TotalState]
) -> tuple[list[PlannedRating], dict[Hashable, TotalState]]:
    """Rate `events` in order against `totals`; returns each event's rating and the new totals
    (every key of `totals`, moved or not)."""
    state = dict(totals)
    planned: list[PlannedRating] = []
    append = planned.append
    with localcontext() as context:  # Model.rate_event's exact context, once for the batch
        context.prec = PRECISION
        for key, quantity, model, free in events:
            total = state[key]
            if model.limit is None or not model.blocks():
                rating = model._rate(Usage(total.units, total.events, total.fees), quantity)
                blocked = ZERO
            else:
                rating, blocked = model.rate_limited(Usage(total.units, total.events, total.fees), quantity)
            after = rating.usage
            if free:
                state[key] = TotalState(total.id, after.units, total.amount, after.events, after.fees)
                append(PlannedRating(total.units, after.units, ZERO, None, blocked, True))
                continue
            state[key] = TotalState(total.id, after.units, total.amount + rating.amount, after.events, after.fees)
            append(PlannedRating(total.units, after.units, rating.amount, rating.tiers, blocked))
    return planned, state

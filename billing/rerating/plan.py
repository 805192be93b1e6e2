"""Re-rating as a pure plan over immutable rows (no database, no Django).

The caller locks the running totals of every key in scope — (subscription, metric, dimension,
period): a key's events are all in scope or none — reads each event's current rating (its newest
rated row, unless that is a reversal) and says what should price it now (`Target`: the model the
catalog resolves today, the model it was rated with, or None to remove it). Here every key is
rated again from zero, its events in their original rating order, with billing.rating.plan's
ratings_plan — the same delta law as the consumer — and each event whose rating differs (its
key, amount, tier breakdown or blocked units) becomes a `Change`: a reversal of the old rating
and, unless removed, a new one. Every key ends where a fresh rating of its events would:
sum(amount) == quote(units) − quote(0) under the new prices (tests/rerating/test_plan.py).

An event whose charge is the same keeps its rating row even where its units_before/after moved
(a removed event before it): the running total, the line sums and the delta law are exact; the
row's position figures are then those of its rating time."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from billing.rating.model import Model
from billing.rating.plan import EventToRate, PlannedRating, TotalState, ratings_plan

ZERO = Decimal(0)


class CurrentRating(NamedTuple):
    """An event's current rating, as read from the ledger."""

    rated_id: int
    position: int  # its first rating's id: the order the key's events were rated in
    raw_event_id: int
    key: Hashable
    quantity: Decimal
    amount: Decimal
    tiers: tuple | None  # as stored: ({"tier", "units", "amount"}, …) or None
    blocked: Decimal
    trial: bool
    pricing: Any = None  # what priced it (version, config): carried to the change, not compared


class Target(NamedTuple):
    """What prices an event now: its key and model, and what the new rating row records."""

    key: Hashable
    model: Model
    pricing: Any = None


class Change(NamedTuple):
    old: CurrentRating
    new: PlannedRating | None  # None: removed (a reversal alone)
    target: Target | None
    difference: Decimal


def _tiers(tiers: tuple | None) -> tuple | None:
    if tiers is None:
        return None
    return tuple((int(t["tier"]), Decimal(str(t["units"])), Decimal(str(t["amount"]))) for t in tiers)


def _same(old: CurrentRating, target: Target, new: PlannedRating) -> bool:
    if old.key != target.key or old.amount != new.amount or old.blocked != new.blocked:
        return False
    planned_tiers = None if new.tiers is None else tuple((t.tier, t.units, t.amount) for t in new.tiers)
    return _tiers(old.tiers) == planned_tiers


def rerating_plan(
    events: Sequence[CurrentRating], targets: Sequence[Target | None], totals: Mapping[Hashable, int]
) -> tuple[list[Change], dict[Hashable, TotalState]]:
    """(changes, totals after) for `events` (every current rating of the keys in scope) priced
    by `targets` (one per event; None removes it). `totals`: the running total's row id of every
    key the events are in now or move to; each one's state after is in the result."""
    order = sorted(range(len(events)), key=lambda i: events[i].position)
    kept = [i for i in order if targets[i] is not None]
    planned, after = ratings_plan(
        [EventToRate(targets[i].key, events[i].quantity, targets[i].model, events[i].trial) for i in kept],
        {key: TotalState(row_id) for key, row_id in totals.items()},
    )
    new_of = dict(zip(kept, planned))
    changes: list[Change] = []
    for i in order:
        old, target = events[i], targets[i]
        if target is None:
            changes.append(Change(old, None, None, -old.amount))
            continue
        new = new_of[i]
        if not _same(old, target, new):
            changes.append(Change(old, new, target, new.amount - old.amount))
    return changes, after

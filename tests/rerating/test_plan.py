"""billing.rerating.plan, pure: re-rating a ledger rated under one price with another leaves every
key where a fresh rating under the new price would (the delta law: sum == quote(units) −
quote(0)), changes only the events whose rating differs, and a second plan over the corrected
ledger changes nothing. Removing one event (a reversal) leaves the rest priced as if it had
never come."""

from __future__ import annotations

from decimal import Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.rating import compile_config, quote
from billing.rating.plan import EventToRate, TotalState, ratings_plan
from billing.rerating.plan import CurrentRating, Target, rerating_plan

from ..rating.test_properties import CONFIGS, quantities

KEYS = ["a", "b"]
ZERO = Decimal(0)


def _tiers(tiers):
    return None if tiers is None else tuple({"tier": t.tier, "units": str(t.units), "amount": str(t.amount)} for t in tiers)


def _rated(events, models, free=()):
    """A ledger as the consumer writes it: [(CurrentRating)] in rating order."""
    planned, _ = ratings_plan(
        [EventToRate(key, q, models[key], i in free) for i, (key, q) in enumerate(events)],
        {key: TotalState(n) for n, key in enumerate(KEYS)},
    )
    return [
        CurrentRating(i + 1, i + 1, 1000 + i, key, q, p.amount, _tiers(p.tiers), p.blocked, i in free)
        for i, ((key, q), p) in enumerate(zip(events, planned))
    ]


def _applied(ledger, changes, next_id):
    """The ledger after the changes: each changed event's current rating replaced (or removed)."""
    by_raw = {c.old.raw_event_id: c for c in changes}
    out = []
    for row in ledger:
        change = by_raw.get(row.raw_event_id)
        if change is None:
            out.append(row)
        elif change.new is not None:
            next_id += 2
            out.append(CurrentRating(next_id, row.position, row.raw_event_id, change.target.key, row.quantity,
                                     change.new.amount, _tiers(change.new.tiers), change.new.blocked, row.trial))
    return out


@st.composite
def cases(draw):
    model = draw(st.sampled_from(sorted(set(CONFIGS) - {"percentage"})))
    old = {key: draw(CONFIGS[model]) for key in KEYS}
    new = {key: draw(CONFIGS[draw(st.sampled_from(sorted(set(CONFIGS) - {"percentage"})))]) for key in KEYS}
    events = draw(st.lists(st.tuples(st.sampled_from(KEYS), quantities), min_size=1, max_size=20))
    return old, new, events


@settings(max_examples=150, deadline=None)
@given(cases())
def test_rerating_ends_where_a_fresh_rating_under_the_new_price_would(case):
    old, new, events = case
    old_models = {k: compile_config(c).base for k, c in old.items()}
    new_models = {k: compile_config(c).base for k, c in new.items()}
    with localcontext() as context:
        context.prec = 200
        ledger = _rated(events, old_models)
        totals = {key: n for n, key in enumerate(KEYS)}
        changes, after = rerating_plan(ledger, [Target(r.key, new_models[r.key]) for r in ledger], totals)
        corrected = _applied(ledger, changes, 10_000)
        fresh = _rated(events, new_models)
        assert [r.amount for r in corrected] == [r.amount for r in fresh]
        for key in KEYS:
            units = sum((q for k, q in events if k == key), ZERO)
            charged = sum((r.amount for r in corrected if r.key == key), ZERO)
            assert charged == quote(new[key], units) - quote(new[key], ZERO)
            assert after[key].amount == charged and after[key].units == units
        # the difference of each change is what moved, and nothing else did
        assert sum((c.difference for c in changes), ZERO) == sum((r.amount for r in fresh), ZERO) - sum(
            (r.amount for r in ledger), ZERO)
        changed = {c.old.raw_event_id for c in changes}
        assert all(r.amount == f.amount for r, f in zip(ledger, fresh) if r.raw_event_id not in changed)
        again, _ = rerating_plan(corrected, [Target(r.key, new_models[r.key]) for r in corrected], totals)
        assert again == []


@settings(max_examples=150, deadline=None)
@given(cases(), st.data())
def test_a_reversed_event_leaves_the_rest_priced_as_if_it_never_came(case, data):
    old, _, events = case
    models = {k: compile_config(c).base for k, c in old.items()}
    with localcontext() as context:
        context.prec = 200
        ledger = _rated(events, models)
        gone = data.draw(st.integers(min_value=0, max_value=len(events) - 1))
        targets = [None if i == gone else Target(r.key, models[r.key]) for i, r in enumerate(ledger)]
        changes, after = rerating_plan(ledger, targets, {key: n for n, key in enumerate(KEYS)})
        assert [c for c in changes if c.new is None] == [changes[[c.old.raw_event_id for c in changes].index(1000 + gone)]]
        corrected = _applied(ledger, changes, 10_000)
        rest = [e for i, e in enumerate(events) if i != gone]
        assert [r.amount for r in corrected] == [r.amount for r in _rated(rest, models)]
        for key in KEYS:
            units = sum((q for k, q in rest if k == key), ZERO)
            assert after[key].amount == quote(old[key], units) - quote(old[key], ZERO)
            assert after[key].events == sum(1 for k, _ in rest if k == key)


def test_a_graduated_price_fixed_moves_only_the_events_past_the_fixed_tier():
    old = compile_config({"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "2"}]}).base
    new = compile_config({"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "1.5"}]}).base
    ledger = _rated([("a", Decimal(6)), ("a", Decimal(6)), ("a", Decimal(3))], {"a": old, "b": old})
    assert [r.amount for r in ledger] == [Decimal(6), Decimal(4) + Decimal(4), Decimal(6)]
    changes, after = rerating_plan(ledger, [Target("a", new)] * 3, {"a": 1, "b": 2})
    # the first event is all in tier 1: unchanged; the one crossing 10 and the one past it move
    assert [c.old.raw_event_id for c in changes] == [1001, 1002]
    assert [c.difference for c in changes] == [Decimal("-1"), Decimal("-1.5")]
    assert after["a"].amount == Decimal("10") + Decimal("7.5") and after["a"].units == Decimal(15)

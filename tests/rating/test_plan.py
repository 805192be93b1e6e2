"""billing.rating.plan, the pure planner of a rating batch: no database. Whatever the keys, the
batch boundaries and the interleaving of keys, each key's amounts sum to quote(after) −
quote(before) (the delta law), its state after the batch is what rating its events one by one
gives, and each planned row says the units before and after its event."""

from __future__ import annotations

from decimal import Decimal, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.rating import compile_config, quote
from billing.rating.plan import EventToRate, TotalState, ratings_plan

from .test_properties import CONFIGS, quantities, unit_counts

KEYS = ["a", "b", "c"]


@st.composite
def batches(draw):
    model = draw(st.sampled_from(sorted(set(CONFIGS) - {"percentage"})))
    configs = {key: draw(CONFIGS[model]) for key in KEYS}
    events = draw(st.lists(st.tuples(st.sampled_from(KEYS), quantities), max_size=25))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(events)), max_size=4)))
    return configs, events, cuts


@settings(max_examples=200, deadline=None)
@given(batches())
def test_planned_batches_obey_the_delta_law_whatever_the_batch_boundaries(batch):
    configs, events, cuts = batch
    models = {key: compile_config(config).base for key, config in configs.items()}
    totals = {key: TotalState(id=index) for index, key in enumerate(KEYS)}
    charged = {key: Decimal(0) for key in KEYS}
    with localcontext() as context:
        context.prec = 200
        for start, end in zip([0, *cuts], [*cuts, len(events)]):
            part = events[start:end]
            planned, after = ratings_plan([EventToRate(key, q, models[key]) for key, q in part], totals)
            assert len(planned) == len(part) and set(after) == set(totals)
            for (key, quantity), plan in zip(part, planned):
                assert plan.units_after == plan.units_before + quantity
                charged[key] += plan.amount
            for key in KEYS:  # the plan's totals: its rows, summed
                moved = [(q, p) for (k, q), p in zip(part, planned) if k == key]
                assert after[key].units == totals[key].units + sum((q for q, _ in moved), Decimal(0))
                assert after[key].amount == totals[key].amount + sum((p.amount for _, p in moved), Decimal(0))
                assert after[key].events == totals[key].events + len(moved)
                assert after[key].id == totals[key].id
            totals = after
        for key in KEYS:
            units = sum((q for k, q in events if k == key), Decimal(0))
            assert charged[key] == quote(configs[key], units) - quote(configs[key], Decimal(0))
            assert totals[key].amount == charged[key]


def test_a_plan_leaves_its_input_totals_untouched():
    model = compile_config({"model": "per_unit", "rate": "0.5"}).base
    totals = {"k": TotalState(id=1, units=Decimal(4), amount=Decimal(2), events=4)}
    planned, after = ratings_plan([EventToRate("k", Decimal(2), model)], totals)
    assert totals["k"] == TotalState(1, Decimal(4), Decimal(2), 4)
    assert (planned[0].units_before, planned[0].units_after, planned[0].amount) == (4, 6, 1)
    assert after["k"] == TotalState(1, Decimal(6), Decimal(3), 5)


@st.composite
def limited_batches(draw):
    """A batch of events on keys whose prices carry a "block" limit (every unit model)."""
    model = draw(st.sampled_from(sorted(set(CONFIGS) - {"percentage"})))
    configs = {key: {**draw(CONFIGS[model]), "limit": {"units": draw(unit_counts), "overage": "block"}} for key in KEYS}
    events = draw(st.lists(st.tuples(st.sampled_from(KEYS), quantities), max_size=25))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(events)), max_size=4)))
    return configs, events, cuts


@settings(max_examples=200, deadline=None)
@given(limited_batches())
def test_a_block_limit_rates_the_units_past_it_at_zero_and_keeps_the_capped_delta_law(batch):
    """Block means block, in real time: for every key the events' amounts sum to what settlement
    used to charge after taking back the units past the limit, quote(u) − overage_credit(u)
    (quote(min(u, limit)) for every model whose charge never falls), whatever the batch
    boundaries; the blocked units sum to the units past the limit; every unit is counted."""
    configs, events, cuts = batch
    models = {key: compile_config(config).base for key, config in configs.items()}
    totals = {key: TotalState(id=index) for index, key in enumerate(KEYS)}
    charged = {key: Decimal(0) for key in KEYS}
    blocked = {key: Decimal(0) for key in KEYS}
    with localcontext() as context:
        context.prec = 200
        for start, end in zip([0, *cuts], [*cuts, len(events)]):
            part = events[start:end]
            planned, totals = ratings_plan([EventToRate(key, q, models[key]) for key, q in part], totals)
            for (key, quantity), plan in zip(part, planned):
                limit = models[key].limit.units
                assert plan.units_after == plan.units_before + quantity
                assert plan.blocked == max(plan.units_after - max(plan.units_before, limit), Decimal(0))
                if plan.units_before >= limit and models[key].monotone:
                    assert plan.amount == 0 and plan.blocked == quantity
                charged[key] += plan.amount
                blocked[key] += plan.blocked
        for key in KEYS:
            model, units = models[key], sum((q for k, q in events if k == key), Decimal(0))
            assert totals[key].units == units
            assert charged[key] == totals[key].amount == model.quote(units) - model.overage_credit(units) - model.quote(Decimal(0))
            if model.monotone:
                assert charged[key] == model.quote(min(units, model.limit.units)) - model.quote(Decimal(0))
            assert blocked[key] == model.overage_units(units)


def test_a_bill_limit_changes_nothing_in_real_time():
    billed = compile_config({"model": "per_unit", "rate": "0.5", "limit": {"units": "10", "overage": "bill"}}).base
    planned, after = ratings_plan([EventToRate("k", Decimal(25), billed)], {"k": TotalState(id=1)})
    assert (planned[0].amount, planned[0].blocked, after["k"].amount) == (Decimal("12.5"), 0, Decimal("12.5"))

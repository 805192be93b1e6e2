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

from .test_properties import CONFIGS, quantities

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

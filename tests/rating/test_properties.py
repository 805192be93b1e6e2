"""The engine's laws, stated with hypothesis over random valid configs of every model:

- delta rating: rating quantities one by one with rate_event from Usage() charges, in total,
  exactly quote(total) − quote(0) (percentage: quote(total, events=the quantities in that order)),
  whatever the split and the order; the Usage after each event carries units, events and fees;
- the tier deltas of a rated event sum to its amount (graduated, volume);
- graduated and package are non-decreasing in units; graduated equals volume inside the first tier;
- quote is always a Decimal, never negative; breakdown lines sum to it; normalising is idempotent.

Sums in the tests run under a wide decimal context so the checks themselves never round."""

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.rating import MODELS, Usage, breakdown, compile_config, quote, validate_config


@contextmanager
def exact() -> Iterator[None]:
    with localcontext() as context:
        context.prec = 200
        yield


def _text(value: Decimal) -> str:
    return format(value, "f")


money = st.decimals(min_value=0, max_value=1000, places=4).map(_text)
unit_rates = st.decimals(min_value=0, max_value=10, places=6).map(_text)
unit_counts = st.decimals(min_value=0, max_value=10**6, places=3).map(_text)
quantities = st.one_of(
    st.decimals(min_value=0, max_value=10**4, places=3),
    st.decimals(min_value=0, max_value=10**6, places=0),
    st.just(Decimal(1000000000000)),  # very large volumes, now and then
    st.just(Decimal("0.000000000001")),
)


@st.composite
def tier_lists(draw, *, max_tiers: int = 5) -> list[dict]:
    count = draw(st.integers(min_value=1, max_value=max_tiers))
    bounds = sorted(
        draw(
            st.sets(
                st.decimals(min_value=Decimal("0.01"), max_value=10**5, places=2),
                min_size=count - 1,
                max_size=count - 1,
            )
        )
    )
    return [
        {"up_to": None if bound is None else _text(bound), "unit_amount": draw(unit_rates), "flat_amount": draw(money)}
        for bound in [*bounds, None]
    ]


@st.composite
def percentage_configs(draw) -> dict:
    tx_min = draw(st.decimals(min_value=0, max_value=5, places=2))
    tx_max = draw(st.none() | st.decimals(min_value=0, max_value=50, places=2).map(lambda extra: tx_min + extra))
    return {
        "model": "percentage",
        "rate": _text(draw(st.decimals(min_value=0, max_value=100, places=4))),
        "fixed_fee": _text(draw(st.decimals(min_value=0, max_value=2, places=2))),
        "per_transaction_min": _text(tx_min),
        "per_transaction_max": None if tx_max is None else _text(tx_max),
        "min_fee": _text(draw(st.decimals(min_value=0, max_value=100, places=2))),
        "free_events": draw(st.integers(min_value=0, max_value=4)),
        "free_amount": _text(draw(st.decimals(min_value=0, max_value=10**4, places=2))),
    }


CONFIGS = {
    "per_unit": st.fixed_dictionaries({"model": st.just("per_unit"), "rate": unit_rates, "included_free": unit_counts}),
    "flat": st.fixed_dictionaries({"model": st.just("flat"), "amount": money}),
    "percentage": percentage_configs(),
    "included_quota": st.fixed_dictionaries(
        {"model": st.just("included_quota"), "quota": unit_counts, "overage_rate": unit_rates}
    ),
    "graduated": st.fixed_dictionaries({"model": st.just("graduated"), "tiers": tier_lists()}),
    "volume": st.fixed_dictionaries({"model": st.just("volume"), "tiers": tier_lists()}),
    "package": st.fixed_dictionaries(
        {
            "model": st.just("package"),
            "package_size": st.decimals(min_value=Decimal("0.001"), max_value=10**4, places=3).map(_text),
            "rate": money,
            "free_units": unit_counts,
            "rounding": st.sampled_from(["up", "down"]),
        }
    ),
}
assert set(CONFIGS) == set(MODELS)


def _rate_all(config: dict, amounts: list[Decimal]) -> tuple[Decimal, Usage, list]:
    """Rate `amounts` one by one from Usage(); (charged in total, final usage, ratings)."""
    model = compile_config(config).base
    usage, charged, ratings = Usage(), Decimal(0), []
    with exact():
        for index, quantity in enumerate(amounts):
            rating = model.rate_event(usage, quantity)
            assert isinstance(rating.amount, Decimal)
            assert rating.usage.units == usage.units + quantity
            assert rating.usage.events == index + 1
            charged += rating.amount
            usage = rating.usage
            ratings.append(rating)
    return charged, usage, ratings


def _period_quote(config: dict, amounts: list[Decimal]) -> Decimal:
    with exact():
        total = sum(amounts, Decimal(0))
    return quote(config, total, events=amounts if config["model"] == "percentage" else None)


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_delta_ratings_sum_to_quote_of_total_minus_quote_of_zero(model, data):
    config = data.draw(CONFIGS[model])
    amounts = data.draw(st.lists(quantities, max_size=12))
    charged, usage, _ = _rate_all(config, amounts)
    period = _period_quote(config, amounts)
    with exact():
        assert charged == period - quote(config, 0)
        assert usage.units == sum(amounts, Decimal(0))
    assert usage.events == len(amounts)
    if model == "percentage":
        # Usage.fees are the per-transaction fees before the period minimum.
        assert max(usage.fees, Decimal(config["min_fee"])) == period
    else:
        assert usage.fees == 0


@pytest.mark.parametrize("model", [m for m in MODELS if m != "percentage"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_delta_total_does_not_depend_on_arrival_order(model, data):
    config = data.draw(CONFIGS[model])
    amounts = data.draw(st.lists(quantities, min_size=2, max_size=8))
    shuffled = data.draw(st.permutations(amounts))
    assert _rate_all(config, amounts)[0] == _rate_all(config, shuffled)[0]


@pytest.mark.parametrize("model", ["graduated", "volume"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_tier_deltas_sum_to_the_rated_amount(model, data):
    config = data.draw(CONFIGS[model])
    amounts = data.draw(st.lists(quantities, min_size=1, max_size=10))
    _, _, ratings = _rate_all(config, amounts)
    with exact():
        for rating, quantity in zip(ratings, amounts, strict=True):
            assert rating.tiers is not None
            numbers = [tier.tier for tier in rating.tiers]
            assert numbers == sorted(set(numbers))
            assert all(1 <= n <= len(config["tiers"]) for n in numbers)
            assert sum((tier.amount for tier in rating.tiers), Decimal(0)) == rating.amount
            assert sum((tier.units for tier in rating.tiers), Decimal(0)) == quantity  # units move, none are lost


@pytest.mark.parametrize("model", ["graduated", "package", "per_unit", "included_quota"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_non_decreasing_in_units(model, data):
    config = data.draw(CONFIGS[model])
    smaller, larger = sorted(data.draw(st.lists(quantities, min_size=2, max_size=2)))
    assert quote(config, smaller) <= quote(config, larger)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_graduated_equals_volume_inside_the_first_tier(data):
    tiers = data.draw(tier_lists())
    first = tiers[0]["up_to"]
    ceiling = Decimal(first) if first is not None else Decimal(10**6)
    units = data.draw(st.decimals(min_value=0, max_value=ceiling, places=3) | st.just(ceiling) | st.just(Decimal(0)))
    assert quote({"model": "graduated", "tiers": tiers}, units) == quote({"model": "volume", "tiers": tiers}, units)


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_quote_is_a_non_negative_decimal_and_lines_sum_to_it(model, data):
    config = data.draw(CONFIGS[model])
    amounts = data.draw(st.lists(quantities, max_size=6))
    with exact():
        total = sum(amounts, Decimal(0))
    events = amounts if model == "percentage" else None
    for units in (total, int(total), 0):
        amount = quote(config, units, events=events if units == total else None)
        assert type(amount) is Decimal
        assert amount >= 0
    key, lines = breakdown(config, total, events)
    assert key == ""
    with exact():
        assert sum((line.amount for line in lines), Decimal(0)) == quote(config, total, events)
    assert all(type(line.amount) is Decimal for line in lines)


@pytest.mark.parametrize("model", [m for m in MODELS if m != "volume"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_no_event_is_charged_a_negative_delta_outside_volume(model, data):
    config = data.draw(CONFIGS[model])
    _, _, ratings = _rate_all(config, data.draw(st.lists(quantities, max_size=8)))
    assert all(rating.amount >= 0 for rating in ratings)


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_normalising_is_idempotent(model, data):
    normalised = validate_config(data.draw(CONFIGS[model]))
    assert validate_config(normalised) == normalised

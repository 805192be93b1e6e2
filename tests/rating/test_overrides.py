"""Dimension overrides (billing/rating/overrides.py): an override applies when every dimension it
names has one of its values; the most specific applicable override wins (most dimensions named),
ties go to the first listed; no match prices the base config under dimension_key ""."""

from decimal import Decimal

import pytest

from billing.rating import Usage, UsageError, breakdown, compile_config, dimension_key, quote

CONFIG = {
    "model": "per_unit",
    "rate": "0.01",
    "overrides": [
        {"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "0.03"}},
        {"match": {"tool_name": "generate"}, "price": {"model": "per_unit", "rate": "0.05"}},
        {"match": {"tool_name": ["search", "lookup"], "region": "eu"}, "price": {"model": "per_unit", "rate": "0.02"}},
        {"match": {"plan_tier": [1, 2]}, "price": {"model": "flat", "amount": "7"}},
    ],
}
EU_SEARCH = "region=eu,tool_name=lookup|search"


@pytest.mark.parametrize(
    ("dimensions", "key"),
    [
        (None, ""),
        ({}, ""),
        ({"region": "us"}, ""),
        ({"region": "EU"}, ""),  # values are case-sensitive
        ({"region": None}, ""),
        ({"region": "eu"}, "region=eu"),
        ({"tool_name": "generate"}, "tool_name=generate"),
        ({"tool_name": "search", "region": "eu"}, EU_SEARCH),  # most specific wins though listed last
        ({"tool_name": "lookup", "region": "eu", "session_id": "s1"}, EU_SEARCH),  # unnamed dimensions are ignored
        ({"tool_name": "search", "region": "us"}, ""),  # the two-dimension override needs both
        ({"tool_name": "generate", "region": "eu"}, "region=eu"),  # tie between one-dimension overrides: first listed
        ({"plan_tier": 1}, "plan_tier=1|2"),  # a list of values; integer dimension value
        ({"plan_tier": "2"}, "plan_tier=1|2"),  # "2" and 2 are the same value
        ({"plan_tier": 3}, ""),
    ],
)
def test_select_picks_the_most_specific_override(dimensions, key):
    book = compile_config(CONFIG)
    selected_key, model = book.select(dimensions)
    assert selected_key == key
    assert model is book.for_key(key)


def test_ties_go_to_the_first_listed_not_the_alphabetical():
    swapped = {**CONFIG, "overrides": [CONFIG["overrides"][1], CONFIG["overrides"][0], *CONFIG["overrides"][2:]]}
    assert compile_config(swapped).select({"tool_name": "generate", "region": "eu"})[0] == "tool_name=generate"


@pytest.mark.parametrize(
    ("dimensions", "expected"),
    [
        (None, "1"),  # 100 × 0.01
        ({"region": "eu"}, "3"),
        ({"tool_name": "generate"}, "5"),
        ({"tool_name": "search", "region": "eu"}, "2"),
        ({"plan_tier": 1}, "7"),
        ({"region": "apac"}, "1"),
    ],
)
def test_quote_prices_with_the_selected_override(dimensions, expected):
    assert quote(CONFIG, "100", dimensions=dimensions) == Decimal(expected)


def test_breakdown_reports_the_dimension_key():
    key, lines = breakdown(CONFIG, "100", dimensions={"tool_name": "generate", "region": "eu"})
    assert key == "region=eu"
    assert sum((line.amount for line in lines), Decimal(0)) == Decimal(3)
    assert breakdown(CONFIG, "100")[0] == ""


def test_for_key_returns_each_override_and_the_base():
    book = compile_config(CONFIG)
    assert book.for_key("") is book.base
    assert {
        key: book.for_key(key).quote(Decimal(100)) for key in ("", "region=eu", "tool_name=generate", EU_SEARCH)
    } == {
        "": Decimal(1),
        "region=eu": Decimal(3),
        "tool_name=generate": Decimal(5),
        EU_SEARCH: Decimal(2),
    }
    assert book.for_key("plan_tier=1|2").quote(Decimal(0)) == Decimal(7)


def test_for_key_of_an_unknown_key_names_the_field():
    with pytest.raises(UsageError) as error:
        compile_config(CONFIG).for_key("region=mars")
    assert error.value.field == "dimension_key"


def test_a_price_book_quotes_its_base_config():
    book = compile_config(CONFIG)
    assert book.dimensional
    assert not compile_config({"model": "per_unit", "rate": "0.01"}).dimensional
    assert book.quote(Decimal(100)) == Decimal(1)


def test_dimension_key_sorts_names():
    assert dimension_key({"tool_name": ["lookup", "search"], "region": ["eu"]}) == EU_SEARCH


def test_each_dimension_key_has_its_own_running_total():
    # Graduated base (first 10 units at 1, then 0.5) with an override for region=eu (first 10 at 2,
    # then 1). Events alternate regions; each key's deltas, rated against that key's own running
    # total, add up to its own quote(total) − quote(0).
    tiers = [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5"}]
    config = {
        "model": "graduated",
        "tiers": tiers,
        "overrides": [
            {
                "match": {"region": "eu"},
                "price": {
                    "model": "graduated",
                    "tiers": [{**tiers[0], "unit_amount": "2"}, {**tiers[1], "unit_amount": "1"}],
                },
            }
        ],
    }
    book = compile_config(config)
    usage: dict[str, Usage] = {}
    charged: dict[str, Decimal] = {}
    for region, quantity in [("eu", "6"), ("us", "6"), ("eu", "6"), ("us", "6"), ("eu", "3")]:
        key, model = book.select({"region": region})
        rating = model.rate_event(usage.get(key, Usage()), Decimal(quantity))
        usage[key] = rating.usage
        charged[key] = charged.get(key, Decimal(0)) + rating.amount
    assert usage == {"region=eu": Usage(Decimal(15), 3), "": Usage(Decimal(12), 2)}
    assert charged == {"region=eu": Decimal(25), "": Decimal(11)}  # eu: 10 × 2 + 5 × 1; base: 10 × 1 + 2 × 0.5


def test_explain_gives_the_applied_model_key_units_and_lines():
    from billing.rating import explain

    answer = explain(CONFIG, "3", dimensions={"plan_tier": "1"})
    assert (answer.amount, answer.model, answer.dimension_key, answer.units) == (Decimal(7), "flat", "plan_tier=1|2", Decimal(3))
    assert sum(line.amount for line in answer.lines) == answer.amount


def test_explain_sums_the_events_when_units_are_left_out():
    from billing.rating import explain

    percentage = {"model": "percentage", "rate": "2.9", "fixed_fee": "0.30"}
    answer = explain(percentage, None, ["100", "50.25"])
    # 100 × 2.9% + 0.30 = 3.2; 50.25 × 2.9% + 0.30 = 1.75725
    assert (answer.units, answer.amount, answer.model) == (Decimal("150.25"), Decimal("4.95725"), "percentage")
    with pytest.raises(UsageError) as error:
        explain(percentage)
    assert error.value.field == "units"

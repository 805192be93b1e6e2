"""validate_config(): every invalid config raises ConfigError naming the offending field as a
dotted path; a valid one comes back normalised. Invalid usage raises UsageError the same way."""

import copy
from decimal import Decimal

import pytest

from billing.rating import ConfigError, RatingError, UsageError, compile_config, config_hash, quote, validate_config

PER_UNIT = {"model": "per_unit", "rate": "1"}
TIER_LAST = {"up_to": None, "unit_amount": "1"}


def _tiers(*tiers: dict, model: str = "graduated") -> dict:
    return {"model": model, "tiers": list(tiers)}


def _override(match, price) -> dict:
    return {**PER_UNIT, "overrides": [{"match": match, "price": price}]}


INVALID = [
    # --- the model
    pytest.param("per_unit", "config", id="not-an-object"),
    pytest.param({"rate": "1"}, "model", id="missing-model"),
    pytest.param({"model": "tiered_magic", "rate": "1"}, "model", id="unknown-model"),
    pytest.param({"model": 3, "rate": "1"}, "model", id="model-not-a-string"),
    # --- numbers
    pytest.param({"model": "per_unit"}, "rate", id="missing-parameter"),
    pytest.param({"model": "per_unit", "rate": None}, "rate", id="null-parameter"),
    pytest.param({"model": "per_unit", "rate": "-0.01"}, "rate", id="negative"),
    pytest.param({"model": "per_unit", "rate": 0.01}, "rate", id="float"),
    pytest.param({"model": "per_unit", "rate": True}, "rate", id="boolean"),
    pytest.param({"model": "per_unit", "rate": "NaN"}, "rate", id="nan"),
    pytest.param({"model": "per_unit", "rate": "Infinity"}, "rate", id="infinity"),
    pytest.param({"model": "per_unit", "rate": "abc"}, "rate", id="not-a-number"),
    pytest.param({"model": "per_unit", "rate": ""}, "rate", id="empty-string"),
    pytest.param({"model": "per_unit", "rate": ["1"]}, "rate", id="list"),
    pytest.param({"model": "per_unit", "rate": "0.0000000000001"}, "rate", id="more-than-12-places"),
    pytest.param({"model": "per_unit", "rate": "1000000000001"}, "rate", id="above-the-parameter-ceiling"),
    pytest.param({"model": "per_unit", "rate": "1", "included_free": "-5"}, "included_free", id="negative-allowance"),
    pytest.param({"model": "per_unit", "rate": "1", "surprise": "1"}, "surprise", id="unknown-parameter"),
    # --- flat, included_quota, package
    pytest.param({"model": "flat"}, "amount", id="flat-missing-amount"),
    pytest.param({"model": "flat", "amount": "1", "rate": "1"}, "rate", id="flat-unknown-parameter"),
    pytest.param({"model": "included_quota", "overage_rate": "1"}, "quota", id="quota-missing"),
    pytest.param({"model": "included_quota", "quota": "10"}, "overage_rate", id="overage-missing"),
    pytest.param({"model": "included_quota", "quota": 10.0, "overage_rate": "1"}, "quota", id="quota-float"),
    pytest.param({"model": "package", "rate": "5"}, "package_size", id="package-size-missing"),
    pytest.param({"model": "package", "package_size": "0", "rate": "5"}, "package_size", id="package-size-zero"),
    pytest.param({"model": "package", "package_size": "10"}, "rate", id="package-rate-missing"),
    pytest.param(
        {"model": "package", "package_size": "10", "rate": "5", "free_units": "-1"},
        "free_units",
        id="package-free-negative",
    ),
    pytest.param(
        {"model": "package", "package_size": "10", "rate": "5", "rounding": "nearest"},
        "rounding",
        id="package-rounding",
    ),
    # --- percentage
    pytest.param({"model": "percentage"}, "rate", id="percentage-rate-missing"),
    pytest.param({"model": "percentage", "rate": "100.5"}, "rate", id="percentage-rate-above-100"),
    pytest.param({"model": "percentage", "rate": "1", "fixed_fee": "-1"}, "fixed_fee", id="percentage-fixed-negative"),
    pytest.param(
        {"model": "percentage", "rate": "1", "per_transaction_min": "2", "per_transaction_max": "1"},
        "per_transaction_max",
        id="percentage-max-below-min",
    ),
    pytest.param(
        {"model": "percentage", "rate": "1", "free_events": "1.5"}, "free_events", id="percentage-free-events-fraction"
    ),
    pytest.param(
        {"model": "percentage", "rate": "1", "free_events": -1}, "free_events", id="percentage-free-events-negative"
    ),
    pytest.param(
        {"model": "percentage", "rate": "1", "free_amount": "-1"}, "free_amount", id="percentage-free-amount-negative"
    ),
    pytest.param({"model": "percentage", "rate": "1", "min_fee": 5.0}, "min_fee", id="percentage-min-fee-float"),
    # --- tiers
    pytest.param({"model": "graduated"}, "tiers", id="tiers-missing"),
    pytest.param({"model": "volume", "tiers": []}, "tiers", id="tiers-empty"),
    pytest.param({"model": "volume", "tiers": {"up_to": None}}, "tiers", id="tiers-not-a-list"),
    pytest.param(
        _tiers(*[{"up_to": str(i), "unit_amount": "1"} for i in range(1, 101)], TIER_LAST), "tiers", id="tiers-too-many"
    ),
    pytest.param({**_tiers(TIER_LAST), "rate": "1"}, "rate", id="tiers-unknown-parameter"),
    pytest.param(_tiers("tier", TIER_LAST), "tiers[0]", id="tier-not-an-object"),
    pytest.param(
        _tiers({"up_to": "10", "unit_amount": "1", "price": "1"}, TIER_LAST), "tiers[0].price", id="tier-unknown-field"
    ),
    pytest.param(_tiers({"unit_amount": "1"}, TIER_LAST), "tiers[0].up_to", id="tier-up-to-missing"),
    pytest.param(_tiers({"up_to": "0", "unit_amount": "1"}, TIER_LAST), "tiers[0].up_to", id="tier-up-to-zero"),
    pytest.param(_tiers({"up_to": "-5", "unit_amount": "1"}, TIER_LAST), "tiers[0].up_to", id="tier-up-to-negative"),
    pytest.param(_tiers({"up_to": 10.0, "unit_amount": "1"}, TIER_LAST), "tiers[0].up_to", id="tier-up-to-float"),
    pytest.param(
        _tiers({"up_to": "10", "unit_amount": "1"}, {"up_to": "5", "unit_amount": "1"}, TIER_LAST),
        "tiers[1].up_to",
        id="tiers-descending",
    ),
    pytest.param(
        _tiers({"up_to": "10", "unit_amount": "1"}, {"up_to": "10", "unit_amount": "1"}, TIER_LAST),
        "tiers[1].up_to",
        id="tiers-repeated",
    ),
    pytest.param(
        _tiers({"up_to": "10", "unit_amount": "1"}, {"up_to": "20", "unit_amount": "1"}),
        "tiers[1].up_to",
        id="last-bounded",
    ),
    pytest.param(_tiers({"up_to": None, "unit_amount": "1"}, TIER_LAST), "tiers[0].up_to", id="middle-unbounded"),
    pytest.param(_tiers({"up_to": "10"}, TIER_LAST), "tiers[0].unit_amount", id="tier-without-amounts"),
    pytest.param(
        _tiers({"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "-1"}),
        "tiers[1].unit_amount",
        id="tier-negative",
    ),
    pytest.param(
        _tiers({"up_to": "10", "flat_amount": 5.0}, TIER_LAST, model="volume"),
        "tiers[0].flat_amount",
        id="tier-flat-float",
    ),
    # --- overrides
    pytest.param({**PER_UNIT, "overrides": {"match": {}}}, "overrides", id="overrides-not-a-list"),
    pytest.param(
        {**PER_UNIT, "overrides": [{"match": {"a": "b"}, "price": PER_UNIT}] * 101},
        "overrides",
        id="overrides-too-many",
    ),
    pytest.param({**PER_UNIT, "overrides": ["x"]}, "overrides[0]", id="override-not-an-object"),
    pytest.param({**PER_UNIT, "overrides": [{"price": PER_UNIT}]}, "overrides[0].match", id="override-match-missing"),
    pytest.param({**PER_UNIT, "overrides": [{"match": {"a": "b"}}]}, "overrides[0].price", id="override-price-missing"),
    pytest.param(
        {**PER_UNIT, "overrides": [{"match": {"a": "b"}, "price": PER_UNIT, "extra": 1}]},
        "overrides[0].extra",
        id="override-unknown-key",
    ),
    pytest.param(_override({}, PER_UNIT), "overrides[0].match", id="match-empty"),
    pytest.param(_override(["region"], PER_UNIT), "overrides[0].match", id="match-not-an-object"),
    pytest.param(_override({"r" * 65: "eu"}, PER_UNIT), "overrides[0].match", id="match-name-too-long"),
    pytest.param(_override({"tool_name": []}, PER_UNIT), "overrides[0].match.tool_name", id="match-empty-list"),
    pytest.param(_override({"region": "eu,uk"}, PER_UNIT), "overrides[0].match.region", id="match-value-with-comma"),
    pytest.param(_override({"region": ["eu", "a=b"]}, PER_UNIT), "overrides[0].match.region", id="match-value-with-equals"),
    pytest.param(_override({"tool|name": "x"}, PER_UNIT), "overrides[0].match", id="match-name-with-bar"),
    pytest.param(_override({"tool_name": ""}, PER_UNIT), "overrides[0].match.tool_name", id="match-empty-value"),
    pytest.param(_override({"region": 1.5}, PER_UNIT), "overrides[0].match.region", id="match-float"),
    pytest.param(_override({"region": True}, PER_UNIT), "overrides[0].match.region", id="match-boolean"),
    pytest.param(
        _override({"region": ["w" * 60, "x" * 60, "y" * 60, "z" * 60]}, PER_UNIT),
        "overrides[0].match",
        id="key-too-long",
    ),
    pytest.param(
        {
            **PER_UNIT,
            "overrides": [{"match": {"a": "b"}, "price": PER_UNIT}, {"match": {"a": ["b"]}, "price": PER_UNIT}],
        },
        "overrides[1].match",
        id="match-repeated",
    ),
    pytest.param(_override({"a": "b"}, "per_unit"), "overrides[0].price", id="price-not-an-object"),
    pytest.param(_override({"a": "b"}, {"rate": "1"}), "overrides[0].price.model", id="price-model-missing"),
    pytest.param(_override({"a": "b"}, {"model": "magic"}), "overrides[0].price.model", id="price-model-unknown"),
    pytest.param(
        _override({"a": "b"}, {"model": "per_unit", "rate": 0.5}), "overrides[0].price.rate", id="price-rate-float"
    ),
    pytest.param(
        _override(
            {"a": "b"}, _tiers({"up_to": "10", "unit_amount": "1"}, {"up_to": "5", "unit_amount": "1"}, TIER_LAST)
        ),
        "overrides[0].price.tiers[1].up_to",
        id="price-tiers-descending",
    ),
    pytest.param(
        _override({"a": "b"}, {**PER_UNIT, "overrides": []}),
        "overrides[0].price.overrides",
        id="price-nested-overrides",
    ),
    pytest.param({"model": "per_unit", "rate": "-1", "overrides": []}, "rate", id="base-checked-with-overrides"),
]


@pytest.mark.parametrize(("config", "field"), INVALID)
def test_invalid_configs_name_the_field(config, field):
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert error.value.field == field
    assert str(error.value).startswith(f"{field}: ")


def test_quote_and_compile_refuse_an_invalid_config_the_same_way():
    config = _tiers({"up_to": "10", "unit_amount": "1"}, {"up_to": "10", "unit_amount": "1"}, TIER_LAST)
    for call in (lambda: quote(config, "1"), lambda: compile_config(config)):
        with pytest.raises(ConfigError) as error:
            call()
        assert error.value.field == "tiers[1].up_to"


def test_errors_are_value_errors():
    assert (
        issubclass(ConfigError, RatingError)
        and issubclass(UsageError, RatingError)
        and issubclass(RatingError, ValueError)
    )


PERCENTAGE = {"model": "percentage", "rate": "1"}

INVALID_USAGE = [
    pytest.param(PER_UNIT, "-1", None, "units", id="negative-units"),
    pytest.param(PER_UNIT, 1.5, None, "units", id="float-units"),
    pytest.param(PER_UNIT, "NaN", None, "units", id="nan-units"),
    pytest.param(PER_UNIT, Decimal("Infinity"), None, "units", id="infinite-units"),
    pytest.param(PER_UNIT, "0.0000000000001", None, "units", id="units-more-than-12-places"),
    pytest.param(PER_UNIT, "100000000000000000000000001", None, "units", id="units-above-ceiling"),
    pytest.param(PERCENTAGE, "10", ["3", "3"], "units", id="events-do-not-sum-to-units"),
    pytest.param(PERCENTAGE, "4", ["5", "-1"], "events[1]", id="negative-event"),
    pytest.param(PERCENTAGE, "5", [5.0], "events[0]", id="float-event"),
    pytest.param(PERCENTAGE, "5", "5", "events", id="events-a-string"),
    pytest.param(PERCENTAGE, "5", iter(["5"]), "events", id="events-not-a-sequence"),
]


@pytest.mark.parametrize(("config", "units", "events", "field"), INVALID_USAGE)
def test_invalid_usage_names_the_field(config, units, events, field):
    with pytest.raises(UsageError) as error:
        quote(config, units, events)
    assert error.value.field == field


NORMALISED = [
    pytest.param(
        {"model": "per_unit", "rate": 2},
        {"model": "per_unit", "rate": "2", "included_free": "0"},
        id="per-unit-int-and-default",
    ),
    pytest.param(
        {"model": "per_unit", "rate": " 0.0030 ", "included_free": "1E+3"},
        {"model": "per_unit", "rate": "0.003", "included_free": "1000"},
        id="per-unit-normal-text",
    ),
    pytest.param({"model": "flat", "amount": Decimal("10.50")}, {"model": "flat", "amount": "10.5"}, id="flat-decimal"),
    pytest.param(
        {"model": "included_quota", "quota": 1000, "overage_rate": "0.040"},
        {"model": "included_quota", "quota": "1000", "overage_rate": "0.04"},
        id="included-quota",
    ),
    pytest.param(
        {"model": "package", "package_size": 100, "rate": "5.00"},
        {"model": "package", "package_size": "100", "rate": "5", "free_units": "0", "rounding": "up"},
        id="package-defaults",
    ),
    pytest.param(
        {"model": "percentage", "rate": "2.90", "free_events": "3"},
        {
            "model": "percentage",
            "rate": "2.9",
            "fixed_fee": "0",
            "per_transaction_min": "0",
            "per_transaction_max": None,
            "min_fee": "0",
            "free_events": 3,  # a count, kept as an integer
            "free_amount": "0",
        },
        id="percentage-defaults",
    ),
    pytest.param(
        _tiers({"up_to": 10, "unit_amount": "1.50"}, {"up_to": None, "flat_amount": 5}),
        {
            "model": "graduated",
            "tiers": [
                {"up_to": "10", "unit_amount": "1.5", "flat_amount": "0"},
                {"up_to": None, "unit_amount": "0", "flat_amount": "5"},
            ],
        },
        id="tiers-filled",
    ),
    pytest.param(
        {
            "model": "per_unit",
            "rate": "0.010",
            "overrides": [
                {
                    "match": {"tool_name": ["search", "lookup", "search"], "region": "eu"},
                    "price": {"model": "flat", "amount": "1.0"},
                },
                {"match": {"plan_tier": [2, 1]}, "price": {"model": "per_unit", "rate": 2}},
            ],
        },
        {
            "model": "per_unit",
            "rate": "0.01",
            "included_free": "0",
            "overrides": [
                {
                    "match": {"region": ["eu"], "tool_name": ["lookup", "search"]},
                    "price": {"model": "flat", "amount": "1"},
                },
                {"match": {"plan_tier": ["1", "2"]}, "price": {"model": "per_unit", "rate": "2", "included_free": "0"}},
            ],
        },
        id="overrides-sorted-and-normalised",
    ),
    pytest.param({**PER_UNIT, "overrides": []}, {**PER_UNIT, "included_free": "0"}, id="empty-overrides-dropped"),
]


@pytest.mark.parametrize(("config", "normalised"), NORMALISED)
def test_normalised_output(config, normalised):
    original = copy.deepcopy(config)
    result = validate_config(config)
    assert result == normalised
    assert config == original  # the input is not modified
    assert validate_config(result) == result  # normalising is idempotent


def test_override_match_names_are_sorted():
    result = validate_config(_override({"tool_name": "search", "agent_id": "a1", "region": "eu"}, PER_UNIT))
    assert list(result["overrides"][0]["match"]) == ["agent_id", "region", "tool_name"]


def test_config_hash_is_stable_and_order_free():
    assert config_hash({"model": "per_unit", "rate": "1"}) == config_hash({"rate": "1", "model": "per_unit"})
    assert config_hash({"model": "per_unit", "rate": "1"}) != config_hash({"model": "per_unit", "rate": "2"})

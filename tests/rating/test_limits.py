"""Hard usage limits on a price: `"limit": {"units": …, "overage": "block" | "bill"}`.

Validated with a dotted path like every other field; normalised only when present (a config
without a limit normalises and hashes exactly as before limits existed); compiled to Model.limit;
never priced by the engine (quote, rate_event and breakdown are the same with or without one).
Model.overage_credit is what a "block" limit takes back: for every price whose charge does not
fall with usage, quote(units) − overage_credit(units) == quote(min(units, limit.units))."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.rating import (
    ConfigError,
    Limit,
    Usage,
    breakdown,
    compile_config,
    config_hash,
    explain,
    quote,
    validate_config,
)
from tests.rating.test_properties import CONFIGS, exact, quantities, unit_counts

D = Decimal
PER_UNIT = {"model": "per_unit", "rate": "0.003", "included_free": "1000"}
PERCENTAGE = {"model": "percentage", "rate": "2.9", "fixed_fee": "0.30"}
TIERS = [
    {"up_to": "1000", "unit_amount": "0.01"},
    {"up_to": "10000", "unit_amount": "0.008"},
    {"up_to": None, "unit_amount": "0.005", "flat_amount": "5"},
]
GRADUATED = {"model": "graduated", "tiers": TIERS}
VOLUME = {"model": "volume", "tiers": TIERS}
FALLING = {"model": "volume", "tiers": [{"up_to": "100", "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5"}]}
PACKAGE = {"model": "package", "package_size": "1000", "rate": "5", "free_units": "100"}
QUOTA = {"model": "included_quota", "quota": "10000", "overage_rate": "0.002"}
FLAT = {"model": "flat", "amount": "49"}
BLOCK = {"units": "100000", "overage": "block"}
TIER_LAST = {"up_to": None, "unit_amount": "2"}


def _limited(price: dict, units: str | int, overage: str = "block") -> dict:
    return {**price, "limit": {"units": units, "overage": overage}}


def _override(price: dict) -> dict:
    return {**PER_UNIT, "overrides": [{"match": {"tool_name": "generate"}, "price": price}]}


# --- validation -------------------------------------------------------------------------------

INVALID = [
    pytest.param({**PER_UNIT, "limit": {"overage": "block"}}, "limit.units", id="missing-units"),
    pytest.param({**PER_UNIT, "limit": {"units": None, "overage": "block"}}, "limit.units", id="null-units"),
    pytest.param({**PER_UNIT, "limit": {"units": 100.0, "overage": "block"}}, "limit.units", id="float-units"),
    pytest.param({**PER_UNIT, "limit": {"units": "-1", "overage": "block"}}, "limit.units", id="negative-units"),
    pytest.param({**PER_UNIT, "limit": {"units": "abc", "overage": "block"}}, "limit.units", id="units-not-a-number"),
    pytest.param({**PER_UNIT, "limit": {"units": "1e27", "overage": "block"}}, "limit.units", id="units-above-max"),
    pytest.param(_limited(PER_UNIT, "0.0000000000001", "bill"), "limit.units", id="units-13-places"),
    pytest.param({**PER_UNIT, "limit": {"units": "100"}}, "limit.overage", id="missing-overage"),
    pytest.param({**PER_UNIT, "limit": {"units": "100", "overage": "stop"}}, "limit.overage", id="bad-overage"),
    pytest.param({**PER_UNIT, "limit": {"units": "100", "overage": ["block"]}}, "limit.overage", id="overage-a-list"),
    pytest.param(
        {**PER_UNIT, "limit": {"units": "100", "overage": "bill", "soft": True}}, "limit.soft", id="unknown-key"
    ),
    pytest.param({**PER_UNIT, "limit": {**BLOCK, "fail": "maybe"}}, "limit.fail", id="bad-fail"),
    pytest.param({**PER_UNIT, "limit": {**BLOCK, "fail": True}}, "limit.fail", id="fail-a-bool"),
    pytest.param({**PER_UNIT, "limit": "100000"}, "limit", id="limit-not-an-object"),
    pytest.param({**PER_UNIT, "limit": ["100", "block"]}, "limit", id="limit-a-list"),
    pytest.param({**PERCENTAGE, "limit": BLOCK}, "limit", id="limit-on-percentage"),
    pytest.param({**PER_UNIT, "rate": "-1", "limit": BLOCK}, "rate", id="the-price-itself-first"),
    pytest.param(
        _override({"model": "per_unit", "rate": "0.05", "limit": {"units": "10", "overage": "never"}}),
        "overrides[0].price.limit.overage",
        id="override-bad-overage",
    ),
    pytest.param(
        _override({"model": "per_unit", "rate": "0.05", "limit": {"units": 10.5, "overage": "bill"}}),
        "overrides[0].price.limit.units",
        id="override-float-units",
    ),
    pytest.param(
        _override({"model": "flat", "amount": "1", "limit": {"units": "1", "overage": "bill", "hard": "yes"}}),
        "overrides[0].price.limit.hard",
        id="override-unknown-key",
    ),
    pytest.param(_override({**PERCENTAGE, "limit": BLOCK}), "overrides[0].price.limit", id="override-percentage"),
]


@pytest.mark.parametrize(("config", "field"), INVALID)
def test_an_invalid_limit_names_its_path(config, field):
    with pytest.raises(ConfigError) as raised:
        validate_config(config)
    assert raised.value.field == field
    with pytest.raises(ConfigError):
        compile_config(config)


def test_the_messages_say_what_is_allowed():
    with pytest.raises(ConfigError) as raised:
        validate_config({**PER_UNIT, "limit": {"units": "100", "overage": "stop"}})
    assert all(word in raised.value.message for word in ("'block'", "'bill'", "'stop'"))
    with pytest.raises(ConfigError) as raised:
        validate_config({**PERCENTAGE, "limit": BLOCK})
    assert "limits count units" in raised.value.message and "percentage prices transactions" in raised.value.message
    with pytest.raises(ConfigError) as raised:
        validate_config({**PER_UNIT, "limit": {"units": "1", "overage": "bill", "soft": True}})
    assert "units" in raised.value.message and "overage" in raised.value.message


# --- normalisation and hashes ---------------------------------------------------------------


def test_a_limit_normalises_to_decimal_text_and_round_trips():
    config = {**PER_UNIT, "limit": {"units": "100000.000", "overage": "block"}}
    normalised = validate_config(config)
    assert normalised == {
        "model": "per_unit", "rate": "0.003", "included_free": "1000", "limit": {"units": "100000", "overage": "block"},
    }  # fmt: skip
    assert validate_config(normalised) == normalised
    assert validate_config(_limited(PER_UNIT, 250, "bill"))["limit"] == {"units": "250", "overage": "bill"}
    assert validate_config(_limited(PER_UNIT, " 1E3 ", "bill"))["limit"]["units"] == "1000"
    override = validate_config(_override(_limited(FLAT, "0")))
    assert override["overrides"][0]["price"] == {**FLAT, "limit": {"units": "0", "overage": "block"}}
    assert "limit" not in override
    assert validate_config(override) == override
    # The check's fail setting: "open" is the default and stays out of the normalised form (so a
    # config hashes as before it existed); "closed" is kept.
    assert validate_config(_limited(PER_UNIT, "5") | {"limit": {**BLOCK, "fail": "open"}})["limit"] == BLOCK
    closed = validate_config({**PER_UNIT, "limit": {**BLOCK, "fail": "closed"}})
    assert closed["limit"] == {**BLOCK, "fail": "closed"} and validate_config(closed) == closed
    assert compile_config(closed).base.limit == Limit(D("100000"), "block", "closed")
    assert compile_config({**PER_UNIT, "limit": BLOCK}).base.limit.fail == "open"


# Pinned before limits existed: the normalised form and the hash of configs without a limit.
UNLIMITED = [
    pytest.param(
        {"model": "per_unit", "rate": "0.0030", "included_free": "1e3"},
        {"model": "per_unit", "rate": "0.003", "included_free": "1000"},
        "92ba42d6e605af8ab38ff32e3c424710bbb6790bc35da349b8e4db92f26ea34e",
        id="per_unit",
    ),
    pytest.param(
        {
            "model": "graduated",
            "tiers": [
                {"up_to": "1000", "unit_amount": "0.01"},
                {"up_to": None, "unit_amount": "0.005", "flat_amount": "5"},
            ],
        },
        {
            "model": "graduated",
            "tiers": [
                {"up_to": "1000", "unit_amount": "0.01", "flat_amount": "0"},
                {"up_to": None, "unit_amount": "0.005", "flat_amount": "5"},
            ],
        },
        "a4068c94d18528f6d395a32f499d2c8f2a6f9e3e9fc10ac5e7d9b44b30eb9b2c",
        id="graduated",
    ),
    pytest.param(
        {
            "model": "per_unit", "rate": "0.003",
            "overrides": [{"match": {"region": ["uk", "eu"]}, "price": {"model": "flat", "amount": "49.00"}}],
        },
        {
            "model": "per_unit", "rate": "0.003", "included_free": "0",
            "overrides": [{"match": {"region": ["eu", "uk"]}, "price": {"model": "flat", "amount": "49"}}],
        },
        "497303840f9f55b09d31991e64273d87847c6d6cef2e85732f43e2815d886c4d",
        id="overrides",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("config", "normalised", "digest"), UNLIMITED)
def test_a_config_without_a_limit_normalises_and_hashes_as_before(config, normalised, digest):
    assert validate_config(config) == normalised
    assert config_hash(validate_config(config)) == digest
    # A null limit is no limit: the same normalised form and hash.
    assert config_hash(validate_config({**config, "limit": None})) == digest
    limited = validate_config({**config, "limit": BLOCK})
    assert config_hash(limited) != digest
    assert {key: value for key, value in limited.items() if key != "limit"} == normalised


# --- the compiled limit -----------------------------------------------------------------------


def test_the_compiled_limit_of_the_base_and_of_each_override():
    config = {
        **PER_UNIT,
        "limit": {"units": "100000", "overage": "block"},
        "overrides": [
            {"match": {"tool_name": "generate"}, "price": _limited({**PER_UNIT, "rate": "0.05"}, "500.5", "bill")},
            {"match": {"tool_name": "search"}, "price": {"model": "per_unit", "rate": "0.01"}},
        ],
    }  # fmt: skip
    book = compile_config(config)
    assert book.base.limit == Limit(D("100000"), "block")
    assert book.for_key("").limit == Limit(D("100000"), "block")
    assert book.for_key("tool_name=generate").limit == Limit(D("500.5"), "bill")
    assert book.for_key("tool_name=search").limit is None  # a limit belongs to its price: not inherited
    key, model = book.select({"tool_name": "generate"})
    assert key == "tool_name=generate" and model.limit == Limit(D("500.5"), "bill")
    assert book.select({"tool_name": "other"})[1].limit.overage == "block"
    assert compile_config(PER_UNIT).base.limit is None
    assert Limit(D("1"), "bill").as_dict() == {"units": "1", "overage": "bill"}
    assert Limit(D("1"), "block", "closed").as_dict() == {"units": "1", "overage": "block", "fail": "closed"}


def test_a_limit_changes_no_price():
    for price in (PER_UNIT, GRADUATED, FLAT):
        limited = _limited(price, "1500")
        for units in ("0", "1000", "1500", "1501", "20000"):
            assert quote(limited, units) == quote(price, units)
            assert breakdown(limited, units) == breakdown(price, units)
        usage, quantity = Usage(D(1400), 3), D(300)
        rated = compile_config(limited).base.rate_event(usage, quantity)
        assert rated == compile_config(price).base.rate_event(usage, quantity)
    answer = explain(_limited(PER_UNIT, "1500"), "2000")
    assert answer.amount == D("3") and answer.limit == Limit(D("1500"), "block")
    assert explain(PER_UNIT, "2000").limit is None


# --- overage_units and overage_credit, exactly --------------------------------------------------


def _credit(price: dict, limit: str, units: str, overage: str = "block") -> Decimal:
    return compile_config(_limited(price, limit, overage)).base.overage_credit(D(units))


CREDITS = [
    # per_unit 0.003 after 1,000 free
    pytest.param(PER_UNIT, "100000", "150000", "150", id="per_unit"),
    pytest.param(PER_UNIT, "100000", "100000", "0", id="per_unit-at-the-limit"),
    pytest.param(PER_UNIT, "100000", "99999", "0", id="per_unit-within"),
    pytest.param(PER_UNIT, "500", "1500", "1.5", id="per_unit-limit-inside-the-free-units"),
    pytest.param(PER_UNIT, "100000", "100000.001", "0.000003", id="per_unit-fraction-past"),
    # graduated: 0.01 to 1,000; 0.008 to 10,000; then 0.005 + a flat 5 on entering
    pytest.param(GRADUATED, "500", "1500", "9", id="graduated-limit-inside-a-tier"),
    pytest.param(GRADUATED, "1000", "12000", "87", id="graduated-limit-on-a-boundary"),
    pytest.param(GRADUATED, "10000", "10001", "5.005", id="graduated-into-a-flat-tier"),
    pytest.param(GRADUATED, "10000", "10000", "0", id="graduated-at-the-boundary"),
    pytest.param(
        {"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "1", "flat_amount": "3"}, TIER_LAST]},
        "0", "12", "14", id="graduated-limit-zero-keeps-the-first-flat",
    ),
    # volume: all units at the rate of the tier the total falls in
    pytest.param(VOLUME, "500", "800", "3", id="volume-same-tier"),
    pytest.param(VOLUME, "1000", "1500", "2", id="volume-across-a-boundary"),
    pytest.param(FALLING, "100", "150", "0", id="volume-cheaper-past-the-limit-credits-nothing"),
    pytest.param(FALLING, "100", "300", "50", id="volume-dearer-again"),
    # package: 5 per started package of 1,000 units after 100 free
    pytest.param(PACKAGE, "1100", "1101", "5", id="package-next-package"),
    pytest.param(PACKAGE, "1500", "2100", "0", id="package-in-the-started-package"),
    pytest.param(PACKAGE, "1500", "2101", "5", id="package-past-it"),
    pytest.param({**PACKAGE, "rounding": "down"}, "1500", "2100", "5", id="package-rounding-down"),
    pytest.param(QUOTA, "50000", "60000", "20", id="included_quota"),
    pytest.param(QUOTA, "5000", "12000", "4", id="included_quota-limit-inside-the-quota"),
    pytest.param(FLAT, "10", "1000000", "0", id="flat-does-not-depend-on-units"),
]  # fmt: skip


@pytest.mark.parametrize(("price", "limit", "units", "credit"), CREDITS)
def test_overage_credit_is_the_charge_of_the_units_beyond_a_block_limit(price, limit, units, credit):
    assert _credit(price, limit, units) == D(credit)
    assert _credit(price, limit, units, overage="bill") == 0  # charged as usual
    model = compile_config(_limited(price, limit)).base
    assert model.overage_units(D(units)) == max(D(units) - D(limit), D(0))
    assert compile_config(price).base.overage_credit(D(units)) == 0
    assert compile_config(price).base.overage_units(D(units)) == 0


def test_overage_units_are_reported_for_bill_as_for_block():
    for overage in ("bill", "block"):
        model = compile_config(_limited(PER_UNIT, "100000", overage)).base
        assert model.overage_units(D("150000.5")) == D("50000.5")
        assert model.overage_units(D("100000")) == 0 and model.overage_units(D(0)) == 0


# --- the law ------------------------------------------------------------------------------------

UNIT_MODELS = sorted(model for model in CONFIGS if model != "percentage")


@pytest.mark.parametrize("model", UNIT_MODELS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_block_limit_charges_as_if_usage_stopped_at_it(model, data):
    price = data.draw(CONFIGS[model])
    limit = data.draw(unit_counts)
    units = data.draw(quantities)
    blocked = compile_config(_limited(price, limit)).base
    billed = compile_config(_limited(price, limit, "bill")).base
    credit = blocked.overage_credit(units)
    capped = min(units, D(limit))
    with exact():
        assert credit >= 0 and billed.overage_credit(units) == 0
        assert blocked.overage_units(units) == billed.overage_units(units) == max(units - D(limit), D(0))
        assert blocked.quote(units) - credit == min(blocked.quote(units), blocked.quote(capped))
        if model != "volume":  # every other model's charge never falls as usage grows
            assert blocked.quote(units) - credit == blocked.quote(capped)
        assert blocked.quote(units) == compile_config(price).base.quote(units)


@pytest.mark.parametrize(
    ("config", "included"),
    [
        ({"model": "per_unit", "rate": "1", "included_free": "100"}, "100"),
        ({"model": "per_unit", "rate": "1"}, None),
        ({"model": "included_quota", "quota": "50", "overage_rate": "2"}, "50"),
        ({"model": "package", "package_size": "10", "rate": "1", "free_units": "20"}, "20"),
        ({"model": "graduated", "tiers": [{"up_to": "1000", "unit_amount": "0"}, {"up_to": None, "unit_amount": "1"}]}, "1000"),
        ({"model": "volume", "tiers": [{"up_to": "5", "unit_amount": "0"}, {"up_to": None, "unit_amount": "1"}]}, "5"),
        # a first tier with a flat fee is not free
        ({"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "0", "flat_amount": "5"}, {"up_to": None, "unit_amount": "1"}]}, None),
        ({"model": "flat", "amount": "9"}, None),
        ({"model": "percentage", "rate": "2.9"}, None),
    ],
)
def test_included_units_per_model(config, included):
    model = compile_config(validate_config(config)).for_key("")
    assert model.included_units() == (None if included is None else Decimal(included))

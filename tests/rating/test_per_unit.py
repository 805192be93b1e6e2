"""per_unit: max(units − included_free, 0) × rate."""

from decimal import Decimal

import pytest

from billing.rating import Usage, compile_config, quote

CONFIG = {"model": "per_unit", "rate": "0.003", "included_free": "1000"}


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("0", "0"),
        ("999", "0"),
        ("1000", "0"),  # exactly the allowance: nothing billable
        ("1000.000000000001", "0.000000000000003"),  # 1e-12 × 0.003
        ("1000.5", "0.0015"),  # 0.5 × 0.003
        ("1001", "0.003"),
        ("2500", "4.5"),  # 1500 × 0.003
        ("1000000000000", "2999999997"),  # (10^12 − 1000) × 0.003
        ("1000000000000000", "2999999999997"),  # (10^15 − 1000) × 0.003
        ("100000000000000000000000000", "299999999999999999999997"),  # 10^26, the units ceiling: 3·10^23 − 3
    ],
)
def test_per_unit_after_included_free(units, expected):
    assert quote(CONFIG, units) == Decimal(expected)


@pytest.mark.parametrize(
    ("units", "expected"),
    [("0", "0"), ("1", "0.05"), ("0.5", "0.025"), ("3", "0.15"), ("1000000000000", "50000000000")],
)
def test_per_unit_without_allowance(units, expected):
    assert quote({"model": "per_unit", "rate": "0.05"}, units) == Decimal(expected)


def test_included_free_may_exceed_a_trillion_units():
    # LLM token metering: 5·10^12 free tokens, then 0.000002 per token. (6·10^12 − 5·10^12) × 0.000002 = 2000000.
    config = {"model": "per_unit", "rate": "0.000002", "included_free": "5000000000000"}
    assert quote(config, "6000000000000") == Decimal(2000000)


def test_exact_beyond_default_decimal_precision():
    # 98765432109876543.123456789012 × 0.123456789012 has 41 significant digits, more than the
    # default context's 28: the engine must not round it.
    config = {"model": "per_unit", "rate": "0.123456789012"}
    expected = Decimal("12193263113668038.385760524269153483936144")
    assert len(expected.as_tuple().digits) == 41
    assert quote(config, "98765432109876543.123456789012") == expected


def test_rate_event_charges_the_delta_and_advances_the_usage():
    model = compile_config(CONFIG).base
    rating = model.rate_event(Usage(Decimal(999), 3), Decimal(2))
    assert rating.amount == Decimal("0.003")  # only unit 1001 is past the allowance
    assert rating.usage == Usage(Decimal(1001), 4)
    assert rating.tiers is None

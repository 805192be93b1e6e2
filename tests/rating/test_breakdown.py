"""breakdown(): the lines of a quote — per tier, per package, per transaction — whose amounts sum
to the quote exactly, for every model."""

from decimal import Decimal

import pytest

from billing.rating import breakdown, quote

GRADUATED = {
    "model": "graduated",
    "tiers": [
        {"up_to": "10", "unit_amount": "1", "flat_amount": "5"},
        {"up_to": "100", "unit_amount": "0.5", "flat_amount": "20"},
        {"up_to": None, "unit_amount": "0.1", "flat_amount": "100"},
    ],
}
PERCENTAGE = {"model": "percentage", "rate": "1", "fixed_fee": "0.25", "free_amount": "150", "min_fee": "5"}

CASES = [
    ({"model": "per_unit", "rate": "0.003", "included_free": "1000"}, "0", None),
    ({"model": "per_unit", "rate": "0.003", "included_free": "1000"}, "2500", None),
    ({"model": "per_unit", "rate": "0.05"}, "3", None),
    ({"model": "flat", "amount": "49.99"}, "0", None),
    ({"model": "flat", "amount": "49.99"}, "12", None),
    ({"model": "included_quota", "quota": "1000", "overage_rate": "0.04"}, "10", None),
    ({"model": "included_quota", "quota": "1000", "overage_rate": "0.04"}, "1500", None),
    (GRADUATED, "0", None),
    (GRADUATED, "10", None),
    (GRADUATED, "101", None),
    (GRADUATED, "1000000000000", None),
    ({**GRADUATED, "model": "volume"}, "0", None),
    ({**GRADUATED, "model": "volume"}, "101", None),
    ({"model": "package", "package_size": "100", "rate": "5", "free_units": "100"}, "50", None),
    ({"model": "package", "package_size": "100", "rate": "5", "free_units": "100"}, "201", None),
    ({"model": "package", "package_size": "100", "rate": "5", "rounding": "down"}, "250", None),
    (PERCENTAGE, "0", None),
    (PERCENTAGE, "0", []),
    (PERCENTAGE, "300", ["100", "100", "100"]),
    (PERCENTAGE, "5000", ["1000", "4000"]),
    (
        {"model": "percentage", "rate": "1", "per_transaction_min": "0.5", "per_transaction_max": "5"},
        "1010",
        ["10", "1000"],
    ),
]


@pytest.mark.parametrize(("config", "units", "events"), CASES)
def test_lines_sum_exactly_to_the_quote(config, units, events):
    key, lines = breakdown(config, units, events)
    assert key == ""
    assert lines
    assert all(isinstance(line.amount, Decimal) for line in lines)
    assert sum((line.amount for line in lines), Decimal(0)) == quote(config, units, events)


def test_graduated_lines_per_tier():
    _, lines = breakdown(GRADUATED, "101")
    assert [line.as_dict() for line in lines] == [
        {
            "description": "tier 1 (0, 10]",
            "tier": 1,
            "units": "10",
            "unit_amount": "1",
            "flat_amount": "5",
            "amount": "15",
        },
        {
            "description": "tier 2 (10, 100]",
            "tier": 2,
            "units": "90",
            "unit_amount": "0.5",
            "flat_amount": "20",
            "amount": "65",
        },
        {
            "description": "tier 3 (100, ∞)",
            "tier": 3,
            "units": "1",
            "unit_amount": "0.1",
            "flat_amount": "100",
            "amount": "100.1",
        },
    ]


def test_graduated_line_at_zero_is_the_first_flat_fee():
    _, lines = breakdown(GRADUATED, "0")
    assert [line.as_dict() for line in lines] == [
        {
            "description": "tier 1 (0, 10]",
            "tier": 1,
            "units": "0",
            "unit_amount": "1",
            "flat_amount": "5",
            "amount": "5",
        }
    ]


def test_volume_line_names_the_tier_all_units_fell_in():
    _, lines = breakdown({**GRADUATED, "model": "volume"}, "10.5")
    assert [line.as_dict() for line in lines] == [
        {
            "description": "all units at tier 2 (10, 100]",
            "tier": 2,
            "units": "10.5",
            "unit_amount": "0.5",
            "flat_amount": "20",
            "amount": "25.25",
        }
    ]


def test_percentage_lines_per_transaction_and_period_minimum():
    _, lines = breakdown(PERCENTAGE, "300", ["100", "100", "100"])
    assert [line.as_dict() for line in lines] == [
        {
            "description": "transaction 1 (free allowance)",
            "units": "100",
            "unit_amount": "0.01",
            "flat_amount": "0",
            "amount": "0",
        },
        {
            "description": "transaction 2 (50 beyond the free allowance)",
            "units": "100",
            "unit_amount": "0.01",
            "flat_amount": "0.25",
            "amount": "0.75",
        },
        {
            "description": "transaction 3",
            "units": "100",
            "unit_amount": "0.01",
            "flat_amount": "0.25",
            "amount": "1.25",
        },
        {"description": "period minimum fee 5", "amount": "3"},  # 5 − (0 + 0.75 + 1.25)
    ]

"""graduated: each tier's units at that tier's unit_amount; a tier's flat_amount once usage enters
it (units > previous up_to); the first tier's flat_amount even at zero. `up_to` is an inclusive
cumulative bound: a tier covers (previous up_to, up_to]."""

from decimal import Decimal

import pytest

from billing.rating import TierDelta, Usage, compile_config, quote

# (0, 10] at 1 + flat 5 · (10, 100] at 0.5 + flat 20 · (100, ∞) at 0.1 + flat 100
CONFIG = {
    "model": "graduated",
    "tiers": [
        {"up_to": "10", "unit_amount": "1", "flat_amount": "5"},
        {"up_to": "100", "unit_amount": "0.5", "flat_amount": "20"},
        {"up_to": None, "unit_amount": "0.1", "flat_amount": "100"},
    ],
}


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("0", "5"),  # the first tier's flat fee, even at zero
        ("1", "6"),  # 5 + 1
        ("9.5", "14.5"),  # 5 + 9.5
        ("10", "15"),  # on the boundary: tier 2 not entered, no flat 20
        ("10.000000000001", "35.0000000000005"),  # 15 + 20 + 1e-12 × 0.5
        ("10.5", "35.25"),  # fractional units fall past 10: 15 + 20 + 0.25
        ("11", "35.5"),
        ("100", "80"),  # 15 + 20 + 90 × 0.5
        ("100.000000000001", "180.0000000000001"),  # 80 + 100 + 1e-12 × 0.1
        ("101", "180.1"),
        ("1000", "270"),  # 180 + 900 × 0.1
        ("1000000000000", "100000000170"),  # 180 + (10^12 − 100) × 0.1
        ("1000000000000000", "100000000000170"),  # 180 + (10^15 − 100) × 0.1
    ],
)
def test_graduated_quote(units, expected):
    assert quote(CONFIG, units) == Decimal(expected)


@pytest.mark.parametrize(("units", "expected"), [("0", "0"), ("1000", "0"), ("1001", "0.01"), ("1500", "5")])
def test_free_first_tier(units, expected):
    config = {
        "model": "graduated",
        "tiers": [{"up_to": "1000", "unit_amount": "0"}, {"up_to": None, "unit_amount": "0.01"}],
    }
    assert quote(config, units) == Decimal(expected)


@pytest.mark.parametrize(("units", "expected"), [("0", "0"), ("1000000000000", "2000000000")])
def test_single_unbounded_tier_is_per_unit(units, expected):
    config = {"model": "graduated", "tiers": [{"up_to": None, "unit_amount": "0.002"}]}
    assert quote(config, units) == Decimal(expected)


def test_flat_only_tiers_charge_each_flat_once_entered():
    config = {
        "model": "graduated",
        "tiers": [
            {"up_to": "5", "flat_amount": "100"},
            {"up_to": "10", "flat_amount": "50"},
            {"up_to": None, "flat_amount": "1"},
        ],
    }
    assert [quote(config, units) for units in ("0", "5", "5.5", "10", "11", "1000")] == [
        Decimal(100),
        Decimal(100),
        Decimal(150),
        Decimal(150),
        Decimal(151),
        Decimal(151),
    ]


def test_rate_event_splits_the_delta_across_the_tiers_it_crosses():
    # From 8 to 103 units: tier 1 gets 2 units (2), tier 2 is entered (flat 20 + 90 × 0.5 = 65),
    # tier 3 is entered (flat 100 + 3 × 0.1 = 100.3). quote(103) − quote(8) = 180.3 − 13 = 167.3.
    model = compile_config(CONFIG).base
    rating = model.rate_event(Usage(Decimal(8), 2), Decimal(95))
    assert rating.amount == Decimal("167.3")
    assert rating.tiers == (
        TierDelta(1, Decimal(2), Decimal(2)),
        TierDelta(2, Decimal(90), Decimal(65)),
        TierDelta(3, Decimal(3), Decimal("100.3")),
    )
    assert rating.usage == Usage(Decimal(103), 3)


def test_rate_event_of_the_first_event_excludes_the_first_flat_fee():
    # Delta rating: the first tier's flat fee is quote(0), settled once, not carried by an event.
    rating = compile_config(CONFIG).base.rate_event(Usage(), Decimal(4))
    assert rating.amount == Decimal(4)
    assert rating.tiers == (TierDelta(1, Decimal(4), Decimal(4)),)

"""volume: all units at the unit_amount of the first tier with units ≤ up_to, plus that tier's
flat_amount; zero units → the first tier. The total may fall when crossing a boundary."""

from decimal import Decimal

import pytest

from billing.rating import TierDelta, Usage, compile_config, quote

# (0, 10] at 1 + flat 5 · (10, 100] at 0.5 + flat 20 · (100, ∞) at 0.1 + flat 100
CONFIG = {
    "model": "volume",
    "tiers": [
        {"up_to": "10", "unit_amount": "1", "flat_amount": "5"},
        {"up_to": "100", "unit_amount": "0.5", "flat_amount": "20"},
        {"up_to": None, "unit_amount": "0.1", "flat_amount": "100"},
    ],
}


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("0", "5"),  # zero units: the first tier's flat fee
        ("1", "6"),
        ("10", "15"),  # on the boundary: still tier 1, 5 + 10 × 1
        ("10.000000000001", "25.0000000000005"),  # tier 2: 20 + 10.000000000001 × 0.5
        ("10.5", "25.25"),  # 20 + 10.5 × 0.5
        ("100", "70"),  # 20 + 100 × 0.5
        ("100.000000000001", "110.0000000000001"),  # tier 3: 100 + 100.000000000001 × 0.1
        ("101", "110.1"),
        ("1000000000000", "100000000100"),  # 100 + 10^11
        ("1000000000000000", "100000000000100"),  # 100 + 10^14
    ],
)
def test_volume_quote(units, expected):
    assert quote(CONFIG, units) == Decimal(expected)


FALLING = {"model": "volume", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5"}]}


@pytest.mark.parametrize(
    ("units", "expected"), [("0", "0"), ("10", "10"), ("10.5", "5.25"), ("11", "5.5"), ("20", "10")]
)
def test_total_falls_across_a_boundary(units, expected):
    assert quote(FALLING, units) == Decimal(expected)


def test_rate_event_across_a_boundary_is_negative_and_moves_every_unit():
    # 10 → 11 units: tier 1 loses its 10 units (−10), tier 2 takes all 11 (5.5): delta −4.5.
    rating = compile_config(FALLING).base.rate_event(Usage(Decimal(10), 1), Decimal(1))
    assert rating.amount == Decimal("-4.5")
    assert rating.tiers == (TierDelta(1, Decimal(-10), Decimal(-10)), TierDelta(2, Decimal(11), Decimal("5.5")))
    assert rating.usage == Usage(Decimal(11), 2)


def test_rate_event_leaving_the_first_tier_gives_back_its_flat_fee():
    # From 0 (quote 5) to 11 units (20 + 5.5 = 25.5): tier 1 −5, tier 2 +25.5, delta 20.5.
    rating = compile_config(CONFIG).base.rate_event(Usage(), Decimal(11))
    assert rating.amount == Decimal("20.5")
    assert rating.tiers == (TierDelta(1, Decimal(0), Decimal(-5)), TierDelta(2, Decimal(11), Decimal("25.5")))

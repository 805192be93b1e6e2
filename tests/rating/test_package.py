"""package: `rate` per package of `package_size` units after `free_units`; rounding "up" (default)
charges every started package, "down" only whole packages. Never negative."""

from decimal import Decimal

import pytest

from billing.rating import quote

UP = {"model": "package", "package_size": "100", "rate": "5", "free_units": "100"}
DOWN = {**UP, "rounding": "down"}


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("0", "0"),
        ("100", "0"),  # all free
        ("100.5", "5"),  # 0.5 billable: one started package
        ("101", "5"),
        ("200", "5"),  # exactly one package
        ("200.000000000001", "10"),  # a second package is started
        ("201", "10"),
        ("1000000000000", "49999999995"),  # (10^12 − 100) / 100 = 9999999999 whole packages × 5
        ("1000000000001", "50000000000"),  # 9999999999 whole + 1 started = 10^10 × 5
    ],
)
def test_started_packages_count_in_full(units, expected):
    assert quote(UP, units) == Decimal(expected)


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("0", "0"),
        ("100.5", "0"),  # no whole package yet
        ("199.999", "0"),
        ("200", "5"),
        ("299", "5"),
        ("300", "10"),
        ("1000000000001", "49999999995"),  # 9999999999 whole packages × 5
    ],
)
def test_rounding_down_counts_whole_packages_only(units, expected):
    assert quote(DOWN, units) == Decimal(expected)


@pytest.mark.parametrize(("rounding", "expected"), [("up", "0.03"), ("down", "0.02")])
def test_fractional_package_size(rounding, expected):
    # 1.2 units in packages of 0.5: 2 whole + 0.2 started.
    config = {"model": "package", "package_size": "0.5", "rate": "0.01", "rounding": rounding}
    assert quote(config, "1.2") == Decimal(expected)


def test_free_units_above_usage_never_go_negative():
    assert quote({**UP, "free_units": "1000"}, "10") == Decimal(0)

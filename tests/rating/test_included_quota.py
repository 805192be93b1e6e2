"""included_quota: the first `quota` units are included, units beyond it at `overage_rate`."""

from decimal import Decimal

import pytest

from billing.rating import quote

CONFIG = {"model": "included_quota", "quota": "1000", "overage_rate": "0.04"}


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("0", "0"),
        ("999.999", "0"),
        ("1000", "0"),  # exactly the quota
        ("1000.000000000001", "0.00000000000004"),  # 1e-12 × 0.04
        ("1000.5", "0.02"),
        ("1001", "0.04"),
        ("1500", "20"),  # 500 × 0.04
        ("1000000000000", "39999999960"),  # (10^12 − 1000) × 0.04
        ("100000000000000000000000000", "3999999999999999999999960"),  # (10^26 − 1000) × 0.04
    ],
)
def test_overage_beyond_quota(units, expected):
    assert quote(CONFIG, units) == Decimal(expected)


def test_zero_quota_charges_every_unit():
    assert quote({"model": "included_quota", "quota": "0", "overage_rate": "0.04"}, "7") == Decimal("0.28")


def test_quota_may_exceed_a_trillion_units():
    config = {"model": "included_quota", "quota": "2000000000000", "overage_rate": "0.5"}
    assert quote(config, "2000000000001") == Decimal("0.5")

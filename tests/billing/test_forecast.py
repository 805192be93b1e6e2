"""billing.forecast, pure (no database): the run-rate forecast of the period's charge and the
commitment burn-down, with their edge cases — the period just started, zero usage, the period
over, a commitment met or passed, credits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.forecast import MIN_ELAPSED, commitment_burn_down, period_forecast

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
END = datetime(2026, 12, 1, tzinfo=timezone.utc)  # 30 days


def forecast(charged: str, now: datetime, currency: str = "USD"):
    return period_forecast(charged=D(charged), currency=currency, period_start=START, period_end=END, now=now)


def test_the_run_rate_so_far_is_extrapolated_to_the_whole_period():
    result = forecast("100", START + timedelta(days=10))  # a third of the period: × 3
    assert result.amount == D("300.00") and result.elapsed_fraction == D("0.3333")


def test_the_forecast_is_rounded_to_the_currencys_minor_unit_half_up():
    assert forecast("0.001", START + timedelta(days=12)).amount == D("0.00")  # 0.0025 → 0.00
    assert forecast("0.003", START + timedelta(days=12)).amount == D("0.01")  # 0.0075 → 0.01
    assert forecast("1001", START + timedelta(days=20), currency="JPY").amount == D("1502")  # 1501.5 → 1502
    assert forecast("1", START + timedelta(days=3), currency="KWD").amount == D("10.000")


def test_no_forecast_before_an_hour_of_the_period_has_passed():
    just_started = forecast("5", START + MIN_ELAPSED - timedelta(microseconds=1))
    assert just_started.amount is None and just_started.elapsed_fraction == D("0.0013")
    assert forecast("5", START).amount is None
    assert forecast("5", START - timedelta(days=1)).amount is None  # a clock before the period: nothing elapsed
    assert forecast("5", START + MIN_ELAPSED).amount == D("3600.00")  # 5 per hour × 720 hours


def test_zero_usage_forecasts_zero():
    assert forecast("0", START + timedelta(days=15)).amount == D("0.00")
    assert forecast("0", START + timedelta(days=15), currency="JPY").amount == D("0")


def test_at_or_after_the_periods_end_the_forecast_is_what_was_charged():
    assert forecast("123.456", END).amount == D("123.46")
    assert forecast("123.456", END + timedelta(days=2)) == forecast("123.456", END)
    assert forecast("123.456", END).elapsed_fraction == D("1")


def test_a_credit_so_far_forecasts_a_credit():
    assert forecast("-10", START + timedelta(days=15)).amount == D("-20.00")


def test_naive_datetimes_and_empty_periods_are_refused():
    with pytest.raises(ValueError):
        period_forecast(charged=D(1), currency="USD", period_start=START.replace(tzinfo=None), period_end=END, now=END)
    with pytest.raises(ValueError):
        period_forecast(charged=D(1), currency="USD", period_start=END, period_end=START, now=END)


@given(
    charged=st.decimals(min_value=0, max_value=10**12, places=6),
    elapsed_s=st.integers(min_value=3600, max_value=30 * 86400),
)
def test_the_forecast_is_never_below_the_charges_so_far(charged, elapsed_s):
    result = forecast(str(charged), START + timedelta(seconds=elapsed_s))
    assert result.amount is not None
    assert result.amount >= charged.quantize(D("0.01"), rounding="ROUND_DOWN")


def test_the_burn_down_of_a_commitment():
    burn = commitment_burn_down(consumed=D("347.28"), commitment=D("500"))
    assert (burn.percent, burn.bar_percent, burn.remaining, burn.met) == (D("69.46"), D("69.46"), D("152.72"), False)


def test_a_commitment_met_and_passed():
    met = commitment_burn_down(consumed=D("500"), commitment=D("500"))
    assert (met.percent, met.remaining, met.met) == (D("100.00"), D("0"), True)
    passed = commitment_burn_down(consumed=D("750"), commitment=D("500"))
    assert (passed.percent, passed.bar_percent, passed.remaining, passed.met) == (D("150.00"), D("100"), D("0"), True)


def test_nothing_consumed_zero_commitment_and_credits():
    assert commitment_burn_down(consumed=D("0"), commitment=D("500")).bar_percent == D("0.00")
    zero = commitment_burn_down(consumed=D("0"), commitment=D("0"))
    assert (zero.percent, zero.met) == (D("100"), True)
    credit = commitment_burn_down(consumed=D("-5"), commitment=D("500"))
    assert (credit.percent, credit.bar_percent, credit.remaining) == (D("-1.00"), D("0"), D("505"))
    with pytest.raises(ValueError):
        commitment_burn_down(consumed=D("1"), commitment=D("-1"))

"""What the dashboard tells a customer about the period ahead: the forecast of the period's usage
charge at the current run rate, and how much of a minimum commitment is consumed. Pure (Decimal
and datetimes in, Decimal out; no database, no Django), so its edge cases are plain tests.

Forecast method (straight-line run rate over the period so far):

    forecast = charged so far × period length ÷ time elapsed in the period

— what the period will cost if usage goes on at the average pace it has had since the period
began. It is not offered before MIN_ELAPSED has passed (an hour's usage says little about a
month), zero usage forecasts zero, and at or past the period's end the forecast is what was
charged. It covers the usage charges rated so far (delta rating), as the running totals do: flat
fees and period minimums are added at settlement and are not in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext

from aforo.money import LEGACY_MINOR_UNITS, quantize_to_minor_unit

MIN_ELAPSED = timedelta(hours=1)
EXACT = 80  # digits: a quotient of 64-digit amounts and microsecond spans is not rounded early
PERCENT = Decimal("0.01")


@dataclass(frozen=True)
class Forecast:
    amount: Decimal | None  # None: too early in the period to say (elapsed < MIN_ELAPSED)
    elapsed_fraction: Decimal  # 0..1, to 4 places (shown as a percentage of the period)


def period_forecast(
    *, charged: Decimal, currency: str, period_start: datetime, period_end: datetime, now: datetime
) -> Forecast:
    """The period's usage charge if the run rate so far holds: charged × length ÷ elapsed, to
    the currency's minor unit (HALF_UP). See the module docstring for the method."""
    if None in (period_start.tzinfo, period_end.tzinfo, now.tzinfo):
        raise ValueError("period_forecast needs timezone-aware datetimes")
    length = period_end - period_start
    if length <= timedelta(0):
        raise ValueError("the period must end after it starts")
    elapsed = min(max(now - period_start, timedelta(0)), length)
    with localcontext() as context:
        context.prec, context.rounding = EXACT, ROUND_DOWN
        fraction = _micros(elapsed) / _micros(length)
        shown_fraction = fraction.quantize(Decimal("0.0001"), rounding=ROUND_DOWN)
        if elapsed < MIN_ELAPSED and elapsed < length:
            return Forecast(amount=None, elapsed_fraction=shown_fraction)
        projected = charged if elapsed == length else charged * _micros(length) / _micros(elapsed)
        amount = quantize_to_minor_unit(projected, currency, rounding=ROUND_HALF_UP, default=LEGACY_MINOR_UNITS)
    return Forecast(amount=amount, elapsed_fraction=shown_fraction)


def _micros(span: timedelta) -> Decimal:
    return Decimal(span // timedelta(microseconds=1))


@dataclass(frozen=True)
class Commitment:
    commitment: Decimal
    consumed: Decimal
    remaining: Decimal  # max(commitment − consumed, 0)
    percent: Decimal  # consumed ÷ commitment × 100, 2 places (may pass 100)
    bar_percent: Decimal  # the progress bar's width: percent clamped to [0, 100]
    met: bool


def commitment_burn_down(*, consumed: Decimal, commitment: Decimal) -> Commitment:
    """How much of a minimum commitment the period's charges so far have consumed. A commitment
    of 0 is met from the start (100 %). Negative consumption (volume pricing can credit) counts
    as nothing consumed on the bar."""
    if commitment < 0:
        raise ValueError("a commitment is never negative")
    with localcontext() as context:
        context.prec, context.rounding = EXACT, ROUND_DOWN
        if commitment == 0:
            percent = Decimal(100)
        else:
            percent = (consumed * 100 / commitment).quantize(PERCENT, rounding=ROUND_HALF_UP)
        remaining = max(commitment - consumed, Decimal(0))
    return Commitment(
        commitment=commitment, consumed=consumed, remaining=remaining, percent=percent,
        bar_percent=min(max(percent, Decimal(0)), Decimal(100)), met=consumed >= commitment,
    )

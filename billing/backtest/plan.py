"""The backtest's pure part: what each (subscription, period) was charged and would be charged
under a candidate price, from usage already grouped per key, and the summary of the changes.
No database: `read.py` loads the groups, this prices and summarises them.

Both sides count the same charges, those of settlement's Rate stage for the metric (usage lines
and each key's zero-usage charge, unprorated), so a candidate equal to the price that rated the
events shows no difference:

- **charged**: the rated ledger's amounts (each event's delta, so per key quote(units) −
  quote(0) of the price that rated it, net of a "block" limit and of free trial usage) plus
  quote(0) of each key's newest rating config, and of the base price ("" key) once per period;
- **candidate**: per candidate key, Q(units) − Q(trial units) + quote(0), where Q is the
  candidate's charge of the period's units net of its own "block" limit (quote(u) −
  overage_credit(u)) — once per key for every model that is a function of the period's units,
  and over the events in rating order only for a per-transaction model (percentage)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

from aforo.money import LEGACY_MINOR_UNITS, decimal_text, quantize_to_minor_unit
from billing.rating import Model, PriceBook, compile_config
from billing.rating.params import PRECISION

ZERO = Decimal(0)
HUNDRED = Decimal(100)
ROUNDING = ROUND_HALF_UP  # settlement's: amounts are shown as an invoice line would round them
# Histogram of the % change per customer over the range: (label, low inclusive, high exclusive).
# Unchanged customers (no difference at the minor unit) and new charges (nothing charged before)
# have buckets of their own.
EDGES = (Decimal(-50), Decimal(-20), Decimal(-10), Decimal(-5), ZERO, Decimal(5), Decimal(10), Decimal(20), Decimal(50))
UNCHANGED, NEW_CHARGE = "unchanged", "new charge"


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """The rated events of one (subscription, period, rated key, candidate key, trial) group."""

    subscription_id: int
    customer_id: int
    currency: str
    period_start: datetime
    rated_key: str
    candidate_key: str
    trial: bool
    units: Decimal
    amount: Decimal
    events: int
    newest_id: int


@dataclass(frozen=True, slots=True)
class PeriodResult:
    """One subscription's period for the metric: exact amounts."""

    subscription_id: int
    customer_id: int
    currency: str
    period_start: datetime
    units: Decimal
    events: int
    charged: Decimal
    candidate: Decimal


@dataclass
class _Period:
    customer_id: int
    currency: str
    units: Decimal = ZERO
    events: int = 0
    amount: Decimal = ZERO
    newest_id: int = 0
    rated: dict[str, int] = field(default_factory=dict)  # rated key -> newest event id
    candidate: dict[str, list[Decimal]] = field(default_factory=dict)  # key -> [units, trial units]


def _charge(model: Model, units: Decimal, events: Sequence[Decimal] | None) -> Decimal:
    """The candidate's charge for `units`, net of a "block" limit (the delta law of the capped price)."""
    if model.uses_events:
        return model.quote(units, list(events or ()))
    return model.quote(units) - model.overage_credit(units)


def periods_price(
    *,
    groups: Sequence[KeyUsage],
    snapshots: Mapping[int, Mapping[str, Any]],
    candidate: PriceBook,
    transactions: Mapping[tuple[int, datetime, str], tuple[list[Decimal], list[Decimal]]] | None = None,
) -> list[PeriodResult]:
    """Per (subscription, period): units, events, charged and candidate, exact. `snapshots`:
    newest event id of each group -> the config it was rated with. `transactions`: per
    (subscription, period, candidate key) the event quantities in rating order, all and trial
    only (needed only for keys priced by a per-transaction model)."""
    periods: dict[tuple[int, datetime], _Period] = {}
    with localcontext() as ctx:
        ctx.prec = PRECISION
        for group in groups:
            period = periods.setdefault((group.subscription_id, group.period_start), _Period(group.customer_id, group.currency))
            period.units += group.units
            period.events += group.events
            period.amount += group.amount
            period.newest_id = max(period.newest_id, group.newest_id)
            period.rated[group.rated_key] = max(period.rated.get(group.rated_key, 0), group.newest_id)
            units = period.candidate.setdefault(group.candidate_key, [ZERO, ZERO])
            units[0] += group.units
            if group.trial:
                units[1] += group.units
        return [
            _period_price(subscription_id, period_start, period, snapshots, candidate, transactions or {})
            for (subscription_id, period_start), period in sorted(periods.items(), key=lambda item: item[0])
        ]


def _period_price(subscription_id, period_start, period: _Period, snapshots, candidate: PriceBook, transactions) -> PeriodResult:
    rated = dict(period.rated)
    rated.setdefault("", period.newest_id)  # the base price's zero-usage charge, from the newest config
    charged = period.amount + sum(
        (compile_config(snapshots[newest]).for_key(key).quote(ZERO, []) for key, newest in rated.items()), ZERO
    )
    keys = dict(period.candidate)
    keys.setdefault("", [ZERO, ZERO])
    amount = ZERO
    for key, (units, trial_units) in keys.items():
        model = candidate.for_key(key)
        every, trial = transactions.get((subscription_id, period_start, key), ([], []))
        amount += _charge(model, units, every) + model.quote(ZERO, [])
        amount -= _charge(model, trial_units, trial)
    return PeriodResult(
        subscription_id=subscription_id, customer_id=period.customer_id, currency=period.currency,
        period_start=period_start, units=period.units, events=period.events, charged=charged, candidate=amount,
    )


def idle_price(
    *, idle: Sequence[tuple[int, int, str, datetime, Mapping[str, Any]]], candidate: PriceBook
) -> list[PeriodResult]:
    """The periods with no usage of the metric: each charged its price's zero-usage charge
    (quote(0) of the base price, as settlement's Rate stage adds it), against the candidate's."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        base = candidate.for_key("").quote(ZERO, [])
        return [
            PeriodResult(
                subscription_id=sub_id, customer_id=customer_id, currency=currency, period_start=period_start,
                units=ZERO, events=0, charged=compile_config(config).for_key("").quote(ZERO, []), candidate=base,
            )
            for sub_id, customer_id, currency, period_start, config in idle
        ]


# --- the summary ---------------------------------------------------------------------------------


def money(amount: Decimal, currency: str) -> str:
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return decimal_text_fixed(quantize_to_minor_unit(amount, currency, rounding=ROUNDING, default=LEGACY_MINOR_UNITS))


def decimal_text_fixed(value: Decimal) -> str:
    """A rounded amount with its minor-unit places ("12.50"), never "-0.00"."""
    return format(abs(value) if not value else value, "f")


def change_percent(charged: Decimal, candidate: Decimal) -> Decimal | None:
    """(candidate − charged) / charged in %, to 0.1; None when nothing was charged."""
    if not charged:
        return None
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return ((candidate - charged) * HUNDRED / charged).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _comparison(charged: Decimal, candidate: Decimal, currency: str) -> dict[str, Any]:
    # Each side rounded, the difference of the rounded sides: a table that adds up; unchanged =
    # the same at the minor unit. The % change is of the exact amounts.
    rounded_charged = Decimal(money(charged, currency))
    rounded_candidate = Decimal(money(candidate, currency))
    difference = rounded_candidate - rounded_charged
    percent = change_percent(charged, candidate)
    return {
        "charged": decimal_text_fixed(rounded_charged), "candidate": decimal_text_fixed(rounded_candidate),
        "difference": decimal_text_fixed(difference),
        "change_percent": None if percent is None else format(percent, "f"),
        "_difference": difference, "_percent": percent, "_zero": not rounded_charged and not rounded_candidate,
    }


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if not key.startswith("_")}


def backtest_summary(*, results: Sequence[PeriodResult], customer_names: Mapping[int, str]) -> dict[str, Any]:
    """Rows per customer and period, per customer over the range, totals per currency and the
    distribution of the changes per customer; amounts rounded to the currency's minor unit."""
    by_period: dict[tuple[int, str, datetime], list[PeriodResult]] = {}
    for result in results:
        by_period.setdefault((result.customer_id, result.currency, result.period_start), []).append(result)
    rows = []
    customers: dict[tuple[int, str], list[Decimal]] = {}
    totals: dict[str, list[Decimal]] = {}
    with localcontext() as ctx:
        ctx.prec = PRECISION
        for (customer_id, currency, period_start), parts in sorted(by_period.items(), key=lambda item: item[0]):
            charged = sum((p.charged for p in parts), ZERO)
            candidate = sum((p.candidate for p in parts), ZERO)
            rows.append({
                "customer": customer_id, "customer_name": customer_names.get(customer_id, ""), "currency": currency,
                "period_start": period_start.isoformat(), "events": sum(p.events for p in parts),
                "units": decimal_text(sum((p.units for p in parts), ZERO)),
                **_public(_comparison(charged, candidate, currency)),
            })
            for bucket, key in ((customers, (customer_id, currency)), (totals, currency)):
                entry = bucket.setdefault(key, [ZERO, ZERO])
                entry[0] += charged
                entry[1] += candidate
    per_customer = [
        {"customer": customer_id, "customer_name": customer_names.get(customer_id, ""), "currency": currency,
         **_comparison(charged, candidate, currency)}
        for (customer_id, currency), (charged, candidate) in sorted(customers.items())
    ]
    return {
        "rows": rows,
        "customers": [_public(row) for row in per_customer],
        "totals": [
            {"currency": currency, "customers": sum(1 for row in per_customer if row["currency"] == currency),
             **_public(_comparison(charged, candidate, currency))}
            for currency, (charged, candidate) in sorted(totals.items())
        ],
        "distribution": distribution(per_customer),
    }


def _bucket_labels() -> list[str]:
    def pct(value: Decimal) -> str:
        return f"{'+' if value > 0 else ''}{value}%"

    labels = [f"below {pct(EDGES[0])}"]
    labels += [f"{pct(low)} to {pct(high)}" for low, high in zip(EDGES, EDGES[1:], strict=False)]
    return [*labels, f"{pct(EDGES[-1])} or more"]


def distribution(per_customer: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Customers better off (pay less), worse off (pay more) and unchanged (no difference at
    the minor unit), and a histogram of their % change (a bound belongs to the bucket further from 0)."""
    labels = _bucket_labels()
    counts = dict.fromkeys([*labels, UNCHANGED, NEW_CHARGE], 0)
    better = worse = unchanged = 0
    for row in per_customer:
        difference, percent = row["_difference"], row["_percent"]
        if not difference:
            unchanged += 1
            counts[UNCHANGED] += 1
            continue
        if difference < 0:
            better += 1
        else:
            worse += 1
        if percent is None:
            counts[NEW_CHARGE] += 1
        else:  # a bound belongs to the bucket further from zero; a -0.0 % decrease to "-5% to 0%"
            index = bisect_left(EDGES, percent) if difference < 0 else bisect_right(EDGES, percent)
            counts[labels[index]] += 1
    order = [*labels[: bisect_right(EDGES, ZERO)], UNCHANGED, *labels[bisect_right(EDGES, ZERO):], NEW_CHARGE]
    return {
        "better_off": better, "worse_off": worse, "unchanged": unchanged,
        "histogram": [{"bucket": label, "customers": counts[label]} for label in order],
    }

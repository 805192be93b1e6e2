"""billing.backtest.plan, pure: the candidate per key follows the engine's laws (per transaction
for percentage, trial units first, a "block" limit), the charged side adds each key's
zero-usage charge, and the distribution's buckets."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from billing.backtest.plan import KeyUsage, backtest_summary, distribution, periods_price
from billing.rating import compile_config, validate_config

START = datetime(2026, 3, 1, tzinfo=UTC)
PERCENTAGE = validate_config({"model": "percentage", "rate": "2", "fixed_fee": "0.3", "min_fee": "1"})
PER_UNIT = validate_config({"model": "per_unit", "rate": "1"})


def _group(units: str, amount: str = "0", *, key: str = "", trial: bool = False, newest: int = 1, events: int = 1) -> KeyUsage:
    return KeyUsage(1, 10, "USD", START, key, key, trial, Decimal(units), Decimal(amount), events, newest)


def test_percentage_is_priced_per_transaction_in_rating_order():
    book = compile_config(PERCENTAGE)
    events = [Decimal("100"), Decimal("5"), Decimal("40")]
    [result] = periods_price(groups=[_group("145", "2", events=3)], snapshots={1: PER_UNIT}, candidate=book,
                             transactions={(1, START, ""): (events, [])})
    assert result.candidate == Decimal("2.3") + Decimal("0.4") + Decimal("1.1")  # each fee, above the 1.00 period minimum
    assert result.charged == Decimal("2")  # the ledger's amounts; per_unit has no zero-usage charge


def test_trial_units_are_the_periods_first_and_free():
    book = compile_config({"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.1"}]})
    [result] = periods_price(groups=[_group("8", trial=True), _group("6", "3.2", newest=2)], snapshots={1: PER_UNIT, 2: PER_UNIT},
                             candidate=book)
    assert result.candidate == Decimal("2") + Decimal("0.4")  # units 9-10 at 1, 11-14 at 0.1
    assert (result.units, result.charged) == (Decimal(14), Decimal("3.2"))


def test_a_block_limit_of_the_candidate_caps_its_charge_and_bases_are_counted_once_per_key():
    book = compile_config({"model": "flat", "amount": "5", "overrides": [
        {"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "1", "limit": {"units": "10", "overage": "block"}}}]})
    snapshot = validate_config({"model": "graduated", "tiers": [{"up_to": None, "unit_amount": "1", "flat_amount": "4"}]})
    eu = KeyUsage(1, 10, "USD", START, "", "region=eu", False, Decimal(25), Decimal(25), 25, 1)  # rated on the base price
    [result] = periods_price(groups=[eu], snapshots={1: snapshot}, candidate=book)
    assert result.candidate == Decimal(10) + Decimal(5)  # 10 of the 25 units charged, and the base price's flat 5
    assert result.charged == Decimal(25) + Decimal(4)  # the ledger's amounts and the snapshot's flat fee, once


def test_the_distribution_buckets_and_rounding():
    rows = [
        {"_difference": Decimal("-0.01"), "_percent": Decimal("0.0")},  # a decrease too small for 0.1 %
        {"_difference": Decimal("0"), "_percent": Decimal("0")},
        {"_difference": Decimal("5"), "_percent": Decimal("5.0")},  # a bound: the bucket further from zero
        {"_difference": Decimal("-5"), "_percent": Decimal("-20.0")},
        {"_difference": Decimal("3"), "_percent": None},  # nothing charged before
    ]
    answer = distribution(rows)
    assert (answer["better_off"], answer["worse_off"], answer["unchanged"]) == (2, 2, 1)
    counts = {bucket["bucket"]: bucket["customers"] for bucket in answer["histogram"]}
    assert counts == {"below -50%": 0, "-50% to -20%": 1, "-20% to -10%": 0, "-10% to -5%": 0, "-5% to 0%": 1, "unchanged": 1,
                      "0% to +5%": 0, "+5% to +10%": 1, "+10% to +20%": 0, "+20% to +50%": 0, "+50% or more": 0, "new charge": 1}


def test_amounts_show_the_currencys_minor_unit():
    [result] = periods_price(groups=[KeyUsage(1, 10, "JPY", START, "", "", False, Decimal("3"), Decimal("0.5"), 1, 1)],
                             snapshots={1: PER_UNIT}, candidate=compile_config({"model": "per_unit", "rate": "0.6"}))
    summary = backtest_summary(results=[result], customer_names={10: "Acme"})
    assert summary["rows"][0] | {"period_start": None} == {
        "customer": 10, "customer_name": "Acme", "currency": "JPY", "period_start": None, "events": 1, "units": "3",
        "charged": "1", "candidate": "2", "difference": "1", "change_percent": "260.0"}

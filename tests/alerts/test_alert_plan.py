"""The alerts' pure part (billing.alerts.plan): exact crossings, precedence of rules, the
anomaly method. No database."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.alerts.plan import (
    Rule,
    anomaly_verdict,
    crossed,
    effective_rules,
    money,
    spend_firings,
    unit_firings,
)

D = Decimal
CONTEXT = {
    "tenant_id": 1, "customer_id": 2, "subscription_id": 3, "metric": "calls", "metric_key": "calls",
    "dimension_key": "", "period_start": datetime(2026, 12, 1, tzinfo=timezone.utc),
    "period_end": datetime(2027, 1, 1, tzinfo=timezone.utc), "currency": "USD", "rated_event_id": 9, "event_id": "e",
}


def rule(kind="quota_percent", thresholds=("80", "100"), rid=1, metric_id=None, **kw):
    return Rule(id=rid, kind=kind, metric_id=metric_id, metric=None, thresholds=tuple(D(t) for t in thresholds), **kw)


@given(
    quantities=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=40),
    base=st.integers(min_value=1, max_value=500),
)
def test_each_threshold_is_crossed_by_exactly_one_event_of_a_running_total(quantities, base):
    """However the usage arrives, a running total's events cross each threshold it reaches
    exactly once, and none it does not reach."""
    r = rule(thresholds=("50", "80", "100", "150"))
    fired: list[str] = []
    units = D(0)
    for q in quantities:
        before, units = units, units + q
        fired += [f.threshold_key for f in unit_firings(r, base=D(base), units_before=before, units_after=units, context=CONTEXT)]
    reached = [p for p in ("50", "80", "100", "150") if units >= D(base) * D(p) / 100]
    assert sorted(fired, key=D) == reached


def test_a_crossing_names_the_threshold_and_the_units():
    [f] = unit_firings(rule(thresholds=("80",)), base=D(1000), units_before=D(799), units_after=D(805), context=CONTEXT)
    assert (f.threshold, f.observed, f.reference) == (D(80), D(805), D(1000))
    assert f.message == "calls: 80% of the included quota (800 of 1000)"
    [f] = unit_firings(rule("limit_percent", ("100",)), base=D(1000), units_before=D(999), units_after=D(1000), context=CONTEXT)
    assert f.message == "calls: hard limit of 1000 reached"


def test_no_base_no_crossing():
    assert unit_firings(rule(), base=None, units_before=D(0), units_after=D(10**6), context=CONTEXT) == []
    assert unit_firings(rule(), base=D(0), units_before=D(0), units_after=D(10**6), context=CONTEXT) == []


def test_crossed_is_half_open():
    assert crossed(D(10), D(20), [D(10), D(15), D(20), D(21)]) == [D(15), D(20)]


def test_commitment_percent_says_how_much_of_the_commitment_is_used():
    r = rule("commitment_percent", ("50", "100"))
    firings = spend_firings(r, spend=D("347.2849"), commitment=D(500), context=CONTEXT)
    assert [f.threshold_key for f in firings] == ["50"]
    assert firings[0].message == "347.28 USD of the 500.00 USD minimum commitment used (69.4%)"
    assert spend_firings(r, spend=D(1000), commitment=None, context=CONTEXT) == []


def test_spend_amounts_fire_for_every_threshold_reached():
    firings = spend_firings(rule("spend_amount", ("100", "250", "1000")), spend=D("250"), commitment=None, context=CONTEXT)
    assert [f.threshold_key for f in firings] == ["100", "250"]
    assert firings[1].message == "Spend this period reached 250.00 USD (threshold 250.00 USD)"


def test_money_is_shown_to_the_minor_unit_of_its_currency():
    assert money(D("1234.5"), "JPY") == "1235 JPY"
    assert money(D("0.125"), "USD") == "0.13 USD"
    assert money(D("1.2345"), "BHD") == "1.235 BHD"


def test_the_most_specific_rule_wins_and_an_inactive_override_silences():
    tenant = rule(rid=1)
    plan = rule(rid=2, thresholds=("90",))
    sub = rule(rid=3, thresholds=("50",))
    other_metric = rule(rid=4, metric_id=7)
    rows = [(tenant, None, None, True), (plan, 10, None, True), (sub, None, 100, True), (other_metric, None, None, True)]
    assert {r.id for r in effective_rules(rows, subscription_id=100, rate_plan_id=10)} == {3, 4}
    assert {r.id for r in effective_rules(rows, subscription_id=101, rate_plan_id=10)} == {2, 4}
    assert {r.id for r in effective_rules(rows, subscription_id=101, rate_plan_id=11)} == {1, 4}
    silenced = [*rows, (rule(rid=5), None, 101, False)]
    assert {r.id for r in effective_rules(silenced, subscription_id=101, rate_plan_id=10)} == {4}


def _flat(minutes, per_minute):
    return {m: D(per_minute) for m in minutes}


def test_anomaly_is_a_window_rate_above_factor_times_the_baseline():
    end = 1000
    history = _flat(range(end - 64, end - 4), 10)  # 60 baseline minutes at 10/min
    calm = {**history, **_flat(range(end - 4, end + 1), 30)}  # 3x: not above 3x
    spike = {**history, **_flat(range(end - 4, end + 1), 31)}
    args = dict(first_minute=end - 64, end_minute=end, factor=D(3), window=5, baseline=60, min_units=D(100))
    assert not anomaly_verdict(buckets=calm, **args).anomalous
    verdict = anomaly_verdict(buckets=spike, **args)
    assert verdict.anomalous and verdict.window_rate == D(31) and verdict.baseline_rate == D(10)


def test_no_anomaly_without_a_full_baseline_or_below_the_floor():
    end = 1000
    spike = _flat(range(end - 4, end + 1), 1000)
    args = dict(buckets=spike, end_minute=end, factor=D(3), window=5, baseline=60)
    assert not anomaly_verdict(first_minute=end - 4, min_units=D(100), **args).anomalous  # a new key
    assert anomaly_verdict(first_minute=end - 64, min_units=D(100), **args).anomalous  # quiet history, then a spike
    assert not anomaly_verdict(first_minute=end - 64, min_units=D(5001), **args).anomalous  # under the floor

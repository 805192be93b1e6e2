"""Each settlement stage alone: a hand-built SettlementContext (and SettlementInputs) in, the
lines and the log out. Most tests here need no database; the stages that read rows or the rated
ledger are in test_settlement_stages_ledger.py."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Discount, TaxRate
from billing.rating import quote
from billing.settlement import allowance, commit, discount, quota_check, rate, route, tax
from billing.settlement.context import Aggregate, Line, SettlementContext, round_money
from billing.settlement.inputs import Grant, PriorRun, SettlementInputs, SubscriptionTerms, Total
from tests.factories import priced_setup

NOW = timezone.now()
P0, P1, P2, P3 = (datetime(2025, month, 1, tzinfo=UTC) for month in (1, 2, 3, 4))
CODES = {1: "calls", 2: "tokens", 3: "storage", 4: "seats"}


def context(setup, *, kind="final", lines=(), aggregates=(), previously_invoiced=Decimal(0), **inputs):
    built = SettlementContext(
        subscription=SubscriptionTerms.of(setup.subscription), period_start=NOW - timedelta(days=30), period_end=NOW, kind=kind,
        watermark=10**9, now=NOW, inputs=SettlementInputs(interim_subtotal=previously_invoiced, **inputs),
    )
    built.aggregates.extend(aggregates)
    for line in lines:
        built.add(line)
    return built


def usage(amount: str) -> Line:
    return Line(kind="usage", description="usage", amount_unrounded=Decimal(amount))


def kinds(built):
    return [(line.kind, line.amount) for line in built.lines]


@pytest.mark.parametrize(
    ("currency", "amount", "rounded"),
    [("USD", "0.005", "0.01"), ("USD", "0.0049999", "0.00"), ("USD", "-0.005", "-0.01"), ("JPY", "12.5", "13"),
     ("KWD", "1.2345", "1.235"), ("EUR", "2.675", "2.68"),
     # From the full ISO 4217 table (aforo.money), not a hand-kept list of exceptions:
     ("IQD", "1.2345", "1.235"), ("LYD", "-0.0005", "-0.001"), ("BIF", "99.5", "100"), ("XOF", "0.49", "0"),
     ("CLF", "1.23455", "1.2346"), ("UYW", "0.00005", "0.0001"), ("UGX", "2.5", "3")],
)
def test_rounding_is_half_up_to_the_currency_minor_unit(currency, amount, rounded):
    assert round_money(Decimal(amount), currency) == Decimal(rounded)
    assert round_money(Decimal(amount), currency).as_tuple().exponent == Decimal(rounded).as_tuple().exponent


def test_a_legacy_currency_outside_the_table_still_settles_in_hundredths():
    from aforo.money import UnknownCurrency, currency_minor_units

    assert round_money(Decimal("1.005"), "ZZZ") == Decimal("1.01")  # a row from before currencies were checked
    with pytest.raises(UnknownCurrency):
        currency_minor_units("ZZZ")  # new data has no such default: only settlement's legacy path does


@pytest.mark.django_db
def test_rate_makes_usage_and_late_lines_and_one_base_charge_per_metric():
    setup = priced_setup(config={"model": "flat", "amount": "49"})
    start = NOW - timedelta(days=30)
    aggregates = [
        Aggregate(start, setup.metric.pk, setup.metric.code, "", Decimal(3), Decimal(0), 3, 0, 9, setup.metric_config.config),
        Aggregate(start - timedelta(days=30), setup.metric.pk, setup.metric.code, "", Decimal(1), Decimal(0), 1, 0, 12,
                  setup.metric_config.config, late=True),
    ]
    built = context(
        setup, aggregates=aggregates, version_id=setup.metric_config.version_id, metric_codes={setup.metric.pk: setup.metric.code},
        version_configs={setup.metric.pk: setup.metric_config.config},
    )
    built.period_start = start
    rate.run(built)
    assert kinds(built) == [("usage", Decimal(0)), ("late_usage", Decimal(0)), ("base", Decimal("49.00"))]
    interim = context(setup, kind="interim", aggregates=aggregates[:1])
    rate.run(interim)
    assert [k for k, _ in kinds(interim)] == ["usage"]  # base charges belong to the final run only


@pytest.mark.django_db
def test_commit_true_up_counts_interim_invoices_and_only_on_the_final_run():
    setup = priced_setup()
    setup.subscription.min_commitment = Decimal(100)
    built = context(setup, lines=[usage("30")], previously_invoiced=Decimal(50))
    commit.run(built)
    assert kinds(built)[-1] == ("commitment", Decimal("20.00"))  # 100 − (50 invoiced + 30)
    interim = context(setup, kind="interim", lines=[usage("30")])
    commit.run(interim)
    assert kinds(interim) == [("usage", Decimal("30.00"))]


@pytest.mark.django_db
def test_cap_never_takes_more_than_this_invoice_charges():
    setup = priced_setup()
    setup.subscription.spend_cap = Decimal(60)
    built = context(setup, lines=[usage("25")], previously_invoiced=Decimal(70))  # already 10 over before this invoice
    commit.run(built)
    assert kinds(built) == [("usage", Decimal("25.00")), ("cap", Decimal("-25.00"))]


@pytest.mark.django_db
def test_discounts_in_position_order_fixed_only_on_the_final_run():
    setup = priced_setup()
    discounts = [Discount(kind="percent", value=Decimal("12.5")), Discount(kind="fixed", value=Decimal(5))]  # in order
    built = context(setup, lines=[usage("40")], discounts=discounts)
    discount.run(built)
    assert kinds(built) == [("usage", Decimal("40.00")), ("discount", Decimal("-5.00")), ("discount", Decimal("-5.00"))]
    interim = context(setup, kind="interim", lines=[usage("40")], discounts=discounts)
    discount.run(interim)
    assert kinds(interim) == [("usage", Decimal("40.00")), ("discount", Decimal("-5.00"))]


@pytest.mark.django_db
def test_tax_rates_side_by_side_on_the_discounted_subtotal():
    setup = priced_setup()
    rates = [TaxRate(name="State", percent=Decimal(6)), TaxRate(name="City", percent=Decimal("2.25"))]
    built = context(setup, lines=[usage("80"), Line(kind="discount", description="d", amount_unrounded=Decimal(-10))], tax_rates=rates)
    tax.run(built)
    # 6% and 2.25% of 70, not compounding: 4.20 and 1.575 → 1.58
    assert kinds(built)[-2:] == [("tax", Decimal("4.20")), ("tax", Decimal("1.58"))]


@pytest.mark.django_db
def test_route_postpaid_is_due_and_never_touches_a_wallet():
    setup = priced_setup()
    built = context(setup, lines=[usage("12.34")])
    route.run(built)
    assert (built.amount_due, built.wallet_now, built.wallet_realtime) == (Decimal("12.34"), 0, 0)


def bare(*, kind="final", subscription=None, **inputs) -> SettlementContext:
    """A context for period P1 of an unsaved USD subscription: for the stages that read no row."""
    return SettlementContext(
        subscription=subscription or SubscriptionTerms(currency="USD"), period_start=P1, period_end=P2, kind=kind,
        watermark=10**9, now=NOW, inputs=SettlementInputs(**{"metric_codes": CODES, **inputs}),
    )


# --- SettlementInputs: ranges, final_run, interim_count, previous_final ---------------------------


def prior(*runs: tuple) -> SettlementInputs:
    """SettlementInputs with these (period_start, kind, watermark) runs, ids 1, 2, … in that order."""
    return SettlementInputs(runs=[PriorRun(n, start, kind, mark) for n, (start, kind, mark) in enumerate(runs, start=1)])


def test_an_interim_run_settles_only_its_own_period_above_its_earlier_interim_runs():
    inputs = prior((P0, "final", 10), (P1, "interim", 15), (P1, "interim", 25))
    assert inputs.ranges(P1, final=False) == {P1: 25}  # P0's late events wait for P1's final run
    assert inputs.ranges(P2, final=False) == {P2: 0}
    assert (inputs.interim_count(P1), inputs.interim_count(P0)) == (2, 0)
    assert inputs.final_run(P1) is None and inputs.final_run(P0) == PriorRun(1, P0, "final", 10)


def test_a_final_run_also_takes_the_late_events_of_earlier_settled_periods():
    inputs = prior((P0, "final", 10), (P1, "interim", 20), (P1, "final", 30), (P2, "interim", 40))
    # P2 above its interim's 40; P0 above 30 (its final took it to 10, P1's final run its late
    # events up to 30); P1 above the highest of its own runs, 30.
    assert inputs.ranges(P2, final=True) == {P2: 40, P0: 30, P1: 30}
    assert inputs.final_run(P1) == PriorRun(3, P1, "final", 30)
    assert inputs.previous_final(P2) == PriorRun(3, P1, "final", 30) and inputs.previous_final(P0) is None
    # A gap period (P1) settled after a later one: P1's final run (60) took P0's late events, not P2's.
    out_of_order = prior((P0, "final", 10), (P2, "final", 50), (P1, "final", 60))
    assert out_of_order.ranges(P3, final=True) == {P3: 0, P0: 60, P1: 60, P2: 50}
    assert out_of_order.previous_final(P3) == PriorRun(2, P2, "final", 50)  # the latest period's, not the latest run



def test_a_gap_period_settled_after_a_later_one_skips_the_late_events_that_run_took():
    inputs = prior((P0, "final", 10), (P2, "final", 50))  # P1 skipped; P2's final took P0's late events up to 50
    assert inputs.ranges(P1, final=True) == {P1: 0, P0: 50}


# --- QuotaCheck ------------------------------------------------------------------------------------


def quota_run(*, units: dict, configs: dict, kind="final", **inputs) -> SettlementContext:
    """QuotaCheck over `units` {(metric, key): units}; each key's latest snapshot is its metric's config."""
    built = bare(kind=kind, **inputs)
    built.period_units = {key: Decimal(value) for key, value in units.items()}
    built.key_configs = {key: configs[key[0]] for key in units}
    quota_check.run(built)
    return built


def test_quota_check_reports_included_units_and_whether_they_are_exceeded():
    configs = {
        1: {"model": "per_unit", "rate": "1", "included_free": "10"},
        2: {"model": "graduated", "tiers": [{"up_to": "100", "unit_amount": "0"}, {"up_to": None, "unit_amount": "0.01"}]},
        3: {"model": "included_quota", "quota": "5", "overage_rate": "2"},
        4: {"model": "per_unit", "rate": "1"},  # nothing included: not reported
    }
    built = quota_run(units={(1, ""): "12", (2, ""): "40", (3, ""): "5", (4, ""): "3"}, configs=configs)
    assert built.quota == [
        {"metric": "calls", "dimension_key": "", "included": "10", "used": "12", "over": True},
        {"metric": "tokens", "dimension_key": "", "included": "100", "used": "40", "over": False},  # a free first tier
        {"metric": "storage", "dimension_key": "", "included": "5", "used": "5", "over": False},  # exactly used up
    ]
    assert built.lines == [] and built.stages == [{"stage": "quota_check", "allowances": built.quota, "limits": []}]


LIMITED = {  # 50 units at 0.01 plus a flat 5, then 0.02
    "model": "graduated",
    "tiers": [{"up_to": "50", "unit_amount": "0.01", "flat_amount": "5"}, {"up_to": None, "unit_amount": "0.02"}],
}


@pytest.mark.parametrize(
    ("kind", "overage", "used", "over"),
    [("final", "block", "130.25", "30.25"), ("final", "bill", "130.25", "30.25"),
     ("interim", "block", "130.25", "30.25"), ("final", "block", "100", "0")],
)
def test_a_hard_limit_is_reported_and_takes_nothing_back(kind, overage, used, over):
    """Units past a "block" limit were rated at zero as they came (billing.rating.Model.rate_limited):
    QuotaCheck reports them as blocked and adds no line, on any run."""
    config = {**LIMITED, "limit": {"units": "100", "overage": overage}}
    built = quota_run(units={(1, ""): used}, configs={1: config}, kind=kind)
    limit = {"metric": "calls", "dimension_key": "", "limit": "100", "overage": overage, "used": used, "over": over}
    if overage == "block" and over != "0":
        limit["blocked"] = over
    assert built.lines == []
    assert built.stages[-1]["limits"] == [limit]


def test_a_limit_inside_an_override_price_applies_to_that_dimension_key_only():
    limited_eu = {"model": "per_unit", "rate": "2", "limit": {"units": "10", "overage": "block"}}
    config = {"model": "per_unit", "rate": "1", "overrides": [{"match": {"region": "eu"}, "price": limited_eu}]}
    built = quota_run(units={(1, ""): "50", (1, "region=eu"): "15"}, configs={1: config})
    # eu: 5 units over 10 (blocked as they came); the base price (50 units) has no limit
    assert built.lines == []
    assert [(limit["dimension_key"], limit["over"], limit.get("blocked")) for limit in built.stages[-1]["limits"]] == [
        ("region=eu", "5", "5")
    ]


@pytest.mark.django_db
def test_quota_check_prices_a_key_by_its_latest_snapshot_over_the_version_config():
    setup = priced_setup(config={"model": "per_unit", "rate": "1", "limit": {"units": "10", "overage": "block"}})
    metric = setup.metric.pk
    inputs = {
        "version_id": setup.metric_config.version_id, "version_configs": {metric: setup.metric_config.config},
        "metric_codes": {metric: setup.metric.code},
    }
    snapshot = {"model": "per_unit", "rate": "1"}  # the events were rated before the limit existed
    with_snapshot = bare(**inputs)
    with_snapshot.period_units, with_snapshot.key_configs = {(metric, ""): Decimal(12)}, {(metric, ""): snapshot}
    quota_check.run(with_snapshot)
    assert with_snapshot.lines == [] and with_snapshot.stages[-1]["limits"] == []
    # Without a snapshot (a running total only, nothing settled): the version's config and its limit.
    from_version = bare(totals=[Total(metric, "", Decimal(12), Decimal(12))], **inputs)
    from_version.period_units = {(metric, ""): Decimal(12)}
    quota_check.run(from_version)
    assert from_version.lines == []
    assert [(limit["over"], limit["blocked"]) for limit in from_version.stages[-1]["limits"]] == [("2", "2")]
    only_total = bare(totals=[Total(metric, "", Decimal(12), Decimal(12))], kind="interim", **inputs)
    quota_check.run(only_total)  # nothing up to the watermark yet: used 0
    assert only_total.stages[-1]["limits"] == [
        {"metric": setup.metric.code, "dimension_key": "", "limit": "10", "overage": "block", "used": "0", "over": "0"}
    ]


# --- Allowance -------------------------------------------------------------------------------------

TIERED_EU = {  # base: 10 units at 0.5, then 0.25; eu: 1.5 a unit
    "model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "0.5"}, {"up_to": None, "unit_amount": "0.25"}],
    "overrides": [{"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "1.5"}}],
}


def settled(key: str, units: str, amount: str, config: dict, *, late=False) -> Aggregate:
    return Aggregate(P0 if late else P1, 1, "calls", key, Decimal(units), Decimal(amount), 1, 0, 9, config, late=late)


def allowance_lines(built):
    return [(line.kind, line.dimension_key, line.amount, line.units) for line in built.lines]


def test_allowance_applies_rolled_over_then_granted_units_per_key_in_key_order():
    built = bare(grants=[Grant(7, 1, Decimal(6), "goodwill")])
    built.aggregates = [
        settled("region=eu", "5", "7.5", TIERED_EU), settled("", "12.5", "5.625", TIERED_EU),
        settled("", "4", "2", TIERED_EU, late=True),  # late events of P0 take no allowance
    ]
    built.period_units = {(1, ""): Decimal("12.5"), (1, "region=eu"): Decimal(5)}
    built.allowances = {1: Decimal(8)}  # drawn by Rollover
    allowance.run(built)
    # 8 + 6 = 14 units: "" first, all its 12.5: quote(12.5) − quote(0) = 10 × 0.5 + 2.5 × 0.25 = 5.625 → 5.63;
    # then 1.5 of eu's 5: quote(5) − quote(3.5) = 1.5 × 1.5 = 2.25
    assert allowance_lines(built) == [
        ("allowance", "", Decimal("-5.63"), Decimal("12.5")), ("allowance", "region=eu", Decimal("-2.25"), Decimal("1.5"))
    ]
    assert -built.lines[0].amount_unrounded == quote(TIERED_EU, "12.5") - quote(TIERED_EU, "0") == Decimal("5.625")
    eu = {"region": "eu"}
    assert -built.lines[1].amount_unrounded == quote(TIERED_EU, "5", dimensions=eu) - quote(TIERED_EU, "3.5", dimensions=eu)
    assert built.lines[0].description == "calls: 12.5 free units applied (8 rolled over + 6 granted)"
    assert built.stages == [{"stage": "allowance", "applied": [
        {"metric_id": 1, "rolled_over": "8", "granted": "6", "units": "14", "unapplied": "0", "credit": "7.875", "skipped": [],
         "limited": []}
    ]}]


def test_granted_units_alone_never_credit_more_than_the_keys_usage_line_and_skip_percentage_keys():
    config = {"model": "per_unit", "rate": "1", "overrides": [
        {"match": {"kind": "card"}, "price": {"model": "percentage", "rate": "2"}},
        {"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "1"}},
    ]}
    grants = [Grant(1, 1, Decimal("7.5"), ""), Grant(2, 1, Decimal("2.5"), "")]
    built = bare(grants=grants)
    built.aggregates = [settled("kind=card", "100", "2", config), settled("region=eu", "4", "4", config)]
    # eu: 10 units in the period, 6 of them on an interim invoice; this run settles 4 (amount 4)
    built.period_units = {(1, "kind=card"): Decimal(100), (1, "region=eu"): Decimal(10)}
    allowance.run(built)
    # eu: quote(10) − quote(0) = 10, but never more than this invoice's usage line of 4
    assert allowance_lines(built) == [("allowance", "region=eu", Decimal("-4.00"), Decimal(10))]
    assert built.lines[0].description == (
        "calls (region=eu): 10 free units applied (10 granted); credit 4 of 10, limited to this invoice's usage"
    )
    [applied] = built.stages[-1]["applied"]
    assert (applied["rolled_over"], applied["granted"], applied["credit"], applied["skipped"], applied["limited"]) == (
        "0", "10", "4", ["kind=card"], ["region=eu"]
    )
    interim = bare(kind="interim", grants=grants)
    interim.aggregates, interim.period_units = built.aggregates, built.period_units
    allowance.run(interim)
    assert interim.lines == [] and interim.stages == []  # granted units belong to the final run



def test_free_units_never_credit_units_a_block_limit_rated_at_zero():
    config = {"model": "per_unit", "rate": "1", "limit": {"units": "100", "overage": "block"}}
    built = bare(grants=[Grant(1, 1, Decimal(120), "")])
    built.aggregates = [settled("", "130", "100", config)]  # 130 used, 30 blocked: rated 100
    built.period_units, built.key_configs = {(1, ""): Decimal(130)}, {(1, ""): config}
    for stage in (quota_check, allowance, rate):
        stage.run(built)
    # the 100 charged units all free (−100), the 30 blocked never charged: nothing to pay.
    assert sorted((line.kind, line.amount_unrounded) for line in built.lines) == [
        ("allowance", Decimal(-100)), ("usage", Decimal(100))
    ]
    assert built.total() == 0



def test_the_spend_cap_counts_what_a_block_limit_took_back():
    built = bare(subscription=SubscriptionTerms(currency="USD", spend_cap=Decimal(100)))
    built.add(usage("130"))
    built.add(Line(kind="overage", description="blocked", amount_unrounded=Decimal(-30)))
    commit.run(built)
    assert built.total() == Decimal(100)  # 130 − 30 is at the cap already: no cap line

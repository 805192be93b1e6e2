"""Each settlement stage alone, the ones that read rows on real PostgreSQL: inputs_load (the one
round trip), Rollover (RolloverPolicy, RolloverGrant), Aggregate (the rated ledger and its
watermark), Route prepaid and hybrid (real-time wallet debits of rated events), Settle (the
invoice, its lines, the run, the wallet's part)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import (
    AllowanceGrant,
    Discount,
    Invoice,
    InvoiceLine,
    RatedEvent,
    RolloverGrant,
    RolloverPolicy,
    RunningTotal,
    SettlementRun,
    TaxRate,
)
from billing.periods import period_for
from billing.settlement import aggregate, rollover, route, settle
from billing.settlement.context import Aggregate, CarriedLot, Line, SettlementContext
from billing.settlement.inputs import Grant, Lot, PriorRun, RolloverTerms, SettlementInputs, SubscriptionTerms, Total, inputs_load
from catalog import services
from tests.billing.test_settlement import rate
from tests.factories import MetricFactory, priced_setup
from wallets.models import Wallet, WalletEntry
from wallets.services import wallet_create, wallet_top_up
from wallets.holds import hold_place

DAY = timedelta(days=1)


def period(setup, at=None):
    subscription = setup.subscription
    return period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at or timezone.now())


def ledger_context(setup, *, kind="final", now=None, watermark=0, **inputs) -> SettlementContext:
    """The current period of `setup`'s subscription, with these SettlementInputs fields."""
    start, end = period(setup)
    inputs = {"metric_codes": {setup.metric.pk: setup.metric.code}, "tenant_slug": setup.tenant.slug, **inputs}
    return SettlementContext(
        subscription=SubscriptionTerms.of(setup.subscription), period_start=start, period_end=end, kind=kind, watermark=watermark,
        now=now or timezone.now(), inputs=SettlementInputs(**inputs),
    )


def add_lines(built, *lines):
    for kind, amount in lines:
        built.add(Line(kind=kind, description=f"{kind} line", amount_unrounded=Decimal(amount)))


def top_up(setup, amount):
    wallet = wallet_create(customer=setup.customer, currency="USD")
    wallet_top_up(tenant_id=setup.tenant.pk, wallet_id=wallet.pk, amount=Decimal(amount), idempotency_key="top-up")
    return wallet


def hold(setup, wallet, amount):
    hold_place(
        tenant_id=setup.tenant.pk, wallet_id=wallet.pk, amount=Decimal(amount), ttl_seconds=600, reference="session",
        idempotency_key="hold",
    )


# --- inputs_load -----------------------------------------------------------------------------------


def interim_invoice(setup, start, end):
    """An interim run of the period whose invoice has three usage lines and a base line."""
    invoice = Invoice.objects.create(
        tenant=setup.tenant, customer=setup.customer, subscription=setup.subscription, number="T-1", currency="USD",
        period_start=start, period_end=end, subtotal=Decimal("12.88"), total=Decimal("12.88"), amount_due=Decimal("12.88"),
    )
    lines = [("usage", "", "3", "2.125"), ("usage", "region=eu", "4", "4.5"), ("usage", "", "1.5", "1.25"), ("base", "", None, "5")]
    for position, (kind, key, units, amount) in enumerate(lines, 1):
        InvoiceLine.objects.create(
            invoice=invoice, position=position, kind=kind, description=kind, metric=setup.metric, dimension_key=key,
            units=units and Decimal(units), amount_unrounded=Decimal(amount), amount=Decimal(amount),
        )
    return SettlementRun.objects.create(
        tenant=setup.tenant, subscription=setup.subscription, period_start=start, period_end=end, kind="interim",
        sequence=1, watermark=7, invoice=invoice,
    )


@pytest.mark.django_db
def test_inputs_load_reads_every_input_of_the_period():
    setup = priced_setup(rate="1")
    tenant, subscription, metric = setup.tenant, setup.subscription, setup.metric
    other_metric = MetricFactory(tenant=tenant, product=metric.product)
    start, end = period(setup)
    before = period(setup, start - DAY)[0]
    later = services.rate_plan_version_create(rate_plan=setup.rate_plan, effective_from=start + DAY)
    services.metric_config_set(version=later, metric=metric, config={"model": "per_unit", "rate": "2"})
    services.rate_plan_version_publish(version=later)  # in force only after the period's start
    Discount.objects.create(tenant=tenant, subscription=subscription, kind="fixed", value=5, position=2, description="loyalty")
    Discount.objects.create(tenant=tenant, subscription=subscription, kind="percent", value=Decimal("12.5"), position=1)
    for name, percent in (("VAT", "20"), ("City", "1.5")):
        TaxRate.objects.create(tenant=tenant, customer=setup.customer, name=name, percent=Decimal(percent))
    grant = AllowanceGrant.objects.create(
        tenant=tenant, subscription=subscription, metric=metric, period_start=start + DAY, units=7, description="trial"
    )  # stored as the period's start
    AllowanceGrant.objects.create(tenant=tenant, subscription=subscription, metric=metric, period_start=before, units=99)
    RolloverPolicy.objects.create(tenant=tenant, subscription=subscription, metric=metric, included_units=10)
    wallet = top_up(setup, "50")
    hold(setup, wallet, "8")
    previous = SettlementRun.objects.create(
        tenant=tenant, subscription=subscription, period_start=before, period_end=start, watermark=3
    )
    interim = interim_invoice(setup, start, end)
    for period_start, key, units, last in ((start, "", 4, 40), (start, "region=eu", 6, None), (before, "", 100, 30)):
        RunningTotal.objects.create(
            tenant=tenant, subscription=subscription, customer=setup.customer, metric=metric, dimension_key=key,
            period_start=period_start, period_end=end, currency="USD", units=units, amount=2 * units, event_count=units,
            last_rated_id=last, pricing_snapshot_id=last and last + 1, updated_at=start,
        )

    inputs = inputs_load(SubscriptionTerms.of(subscription), start)
    assert inputs.runs == [PriorRun(previous.pk, before, "final", 3), PriorRun(interim.pk, start, "interim", 7)]
    assert inputs.version_id == setup.version.pk
    assert sorted(inputs.totals, key=lambda t: t.dimension_key) == [
        Total(metric.pk, "", Decimal(4), Decimal(8), 4, 40, 41, start),
        Total(metric.pk, "region=eu", Decimal(6), Decimal(12), 6, None, None, start),
    ]
    assert inputs.totals_complete and inputs.period_newest == {before: 30}  # the earlier settled period's newest event
    assert [(d.kind, d.value, d.description) for d in inputs.discounts] == [
        ("percent", Decimal("12.5"), ""), ("fixed", Decimal(5), "loyalty")  # position order, not creation order
    ]
    assert [(t.name, t.percent) for t in inputs.tax_rates] == [("VAT", Decimal(20)), ("City", Decimal("1.5"))]
    assert inputs.grants == [Grant(grant.pk, metric.pk, Decimal(7), "trial")]
    assert inputs.has_rollover is True
    assert inputs.rollover_policies == [RolloverTerms(metric.pk, metric.code, Decimal(10), None, 1)]
    assert inputs.version_configs == {metric.pk: setup.metric_config.config}  # the version in force at the start
    assert (inputs.wallet.pk, inputs.wallet.balance, inputs.wallet.held) == (wallet.pk, Decimal(50), Decimal(8))
    # the interim invoice: its subtotal; its usage lines' rated amounts 2.125 + 4.5 + 1.25; their units per key
    assert (inputs.interim_subtotal, inputs.interim_usage) == (Decimal("12.88"), Decimal("7.875"))
    assert inputs.interim_units == {(metric.pk, ""): Decimal("4.5"), (metric.pk, "region=eu"): Decimal(4)}
    assert inputs.metric_codes == {metric.pk: metric.code, other_metric.pk: other_metric.code}
    assert inputs.metric_names == {metric.pk: metric.name, other_metric.pk: other_metric.name}
    assert inputs.interim_metric == {metric.pk: Decimal("12.875")}  # the metric's interim charges: usage and base lines
    assert inputs.tenant_slug == tenant.slug
    plain = priced_setup(rate="1")  # none of it: the defaults
    assert inputs_load(SubscriptionTerms.of(plain.subscription), period(plain)[0]) == SettlementInputs(
        version_id=plain.version.pk, version_configs={plain.metric.pk: plain.metric_config.config},
        metric_codes={plain.metric.pk: plain.metric.code}, metric_names={plain.metric.pk: plain.metric.name},
        tenant_slug=plain.tenant.slug, totals_complete=True,
    )


# --- Rollover --------------------------------------------------------------------------------------


def with_policy(setup, *, metric=None, included="10", cap=None, expires=1) -> RolloverTerms:
    """A RolloverPolicy as the stage sees it (read by inputs_load: see the test below)."""
    metric = metric or setup.metric
    return RolloverTerms(metric.pk, metric.code, Decimal(included), cap and Decimal(cap), expires)


def lots_of_the_previous_final_run(setup):
    """The previous period's final run left three lots, created latest-expiring first: A (5 units,
    usable up to the next period), C (3, expired) and B (4, usable up to this period)."""
    start, end = period(setup)
    m1 = period(setup, start - DAY)[0]
    m2 = period(setup, m1 - DAY)[0]
    m3 = period(setup, m2 - DAY)[0]
    run = SettlementRun.objects.create(
        tenant=setup.tenant, subscription=setup.subscription, period_start=m1, period_end=start, watermark=0
    )
    for earned, last, units in ((m2, end, 5), (m3, m1, 3), (m1, start, 4)):
        RolloverGrant.objects.create(
            tenant=setup.tenant, run=run, subscription=setup.subscription, metric=setup.metric,
            earned_period_start=earned, last_period_start=last, units=units,
        )
    RolloverPolicy.objects.create(tenant=setup.tenant, subscription=setup.subscription, metric=setup.metric, included_units=10)
    lots = inputs_load(SubscriptionTerms.of(setup.subscription), start).carried_lots  # as the pipeline reads them
    assert lots == [
        Lot(setup.metric.pk, m3, m1, Decimal(3)), Lot(setup.metric.pk, m1, start, Decimal(4)), Lot(setup.metric.pk, m2, end, Decimal(5))
    ]  # soonest-expiring first
    return PriorRun(run.pk, m1, "final", 0), m2, lots


def rollover_log(setup, built):
    [logged] = built.stages[0]["metrics"]
    assert built.stages[0]["stage"] == "rollover" and logged.pop("metric") == setup.metric.code
    return logged


@pytest.mark.django_db
def test_rollover_draws_the_soonest_expiring_lots_first():
    setup = priced_setup(rate="1")
    policy = with_policy(setup)
    previous, m2, lots = lots_of_the_previous_final_run(setup)
    built = ledger_context(setup, runs=[previous], has_rollover=True, rollover_policies=[policy], carried_lots=lots)
    metric = setup.metric.pk
    built.period_units = {(metric, ""): Decimal(9), (metric, "region=eu"): Decimal(7)}
    rollover.run(built)
    # 16 used, 6 over the included 10: B's 4 (expiring now) first, then 2 of A's 5; C had expired
    assert built.allowances == {metric: Decimal(6)}
    assert built.carry_forward == [CarriedLot(metric, m2, built.period_end, Decimal(3))]
    assert rollover_log(setup, built) == {
        "included": "10", "used": "16", "carried_in": "9", "expired": "3", "drawn": "6", "unused": "0", "earned": "0",
        "carried_forward": "3",
    }


@pytest.mark.django_db
def test_rollover_lets_lots_expire_and_caps_the_carried_balance():
    setup = priced_setup(rate="1")
    policy = with_policy(setup, cap="6", expires=2)
    previous, m2, lots = lots_of_the_previous_final_run(setup)
    built = ledger_context(setup, runs=[previous], has_rollover=True, rollover_policies=[policy], carried_lots=lots)
    built.period_units = {(setup.metric.pk, ""): Decimal(7)}
    rollover.run(built)
    # 7 used, within the included 10: nothing drawn; B (last usable this period) expires unused, A's
    # 5 carry on; 3 unused, but only 6 − 5 = 1 fits under the cap, usable for the next 2 periods
    two_periods_on = period(setup, built.period_end)[1]
    assert built.allowances == {}
    assert built.carry_forward == [
        CarriedLot(setup.metric.pk, m2, built.period_end, Decimal(5)),
        CarriedLot(setup.metric.pk, built.period_start, two_periods_on, Decimal(1)),
    ]
    assert rollover_log(setup, built) == {
        "included": "10", "used": "7", "carried_in": "9", "expired": "3", "drawn": "0", "unused": "3", "earned": "1",
        "carried_forward": "6",
    }


@pytest.mark.django_db
def test_rollover_of_a_gap_period_settled_after_a_later_one_draws_and_earns_nothing():
    setup = priced_setup(rate="1")
    policy = with_policy(setup, expires=2)
    previous, _, lots = lots_of_the_previous_final_run(setup)
    _, end = period(setup)
    later = PriorRun(previous.id + 1, end, "final", 0)  # the next period's final run came first
    built = ledger_context(setup, runs=[previous, later], has_rollover=True, rollover_policies=[policy], carried_lots=lots)
    built.period_units = {(setup.metric.pk, ""): Decimal(16)}  # 6 over: lots would pay for them
    rollover.run(built)
    assert (built.allowances, built.carry_forward) == ({}, [])
    assert built.stages == [{
        "stage": "rollover",
        "skipped": f"the period from {end:%Y-%m-%d} was settled first and carried the balance past this one: "
        "it neither draws carried units nor carries any forward",
    }]


@pytest.mark.django_db
def test_rollover_earns_included_minus_used_never_below_zero_and_is_silent_without_a_policy(django_assert_num_queries):
    setup = priced_setup(rate="1")
    second = MetricFactory(tenant=setup.tenant, product=setup.metric.product)
    policies = [with_policy(setup), with_policy(setup, metric=second)]
    built = ledger_context(setup, has_rollover=True, rollover_policies=policies)  # no earlier final run: nothing carried in
    built.period_units = {(setup.metric.pk, ""): Decimal(12), (second.pk, ""): Decimal(4)}
    rollover.run(built)
    # first metric: 12 used of 10 included, earns 0 (not −2); second: 4 used, earns 6 for the next period
    assert built.allowances == {}
    assert built.carry_forward == [CarriedLot(second.pk, built.period_start, built.period_end, Decimal(6))]
    assert [(m["metric"], m["drawn"], m["unused"], m["earned"], m["carried_forward"]) for m in built.stages[0]["metrics"]] == [
        (setup.metric.code, "0", "0", "0", "0"), (second.code, "0", "6", "6", "6")
    ]
    plain = priced_setup(rate="1")
    for silent in (ledger_context(plain, has_rollover=False), ledger_context(setup, kind="interim", has_rollover=True, rollover_policies=policies)):
        silent.period_units = {(setup.metric.pk, ""): Decimal(4)}
        with django_assert_num_queries(0):
            rollover.run(silent)
        assert (silent.stages, silent.allowances, silent.carry_forward) == ([], {}, [])


# --- Aggregate: ledger_read and run ------------------------------------------------------------------


def rated_ago(now, *rated_and_seconds):
    for record, seconds in rated_and_seconds:
        RatedEvent.objects.filter(pk=record.rated_event_id).update(rated_at=now - timedelta(seconds=seconds))


def read(built, *, lag_s):
    built.ranges = built.inputs.ranges(built.period_start, final=built.final)
    aggregate.ledger_read(built, lag_s=lag_s)


@pytest.mark.django_db
def test_the_watermark_is_the_highest_event_rated_at_least_lag_seconds_ago():
    setup = priced_setup(rate="1")
    now = timezone.now()
    a, b, c = (rate(setup, name, quantity) for name, quantity in (("a", "2"), ("b", "3"), ("c", "5")))
    rated_ago(now, (a, 300), (b, 120), (c, 10))
    built = ledger_context(setup, now=now)
    read(built, lag_s=60)
    assert built.watermark == b.rated_event_id  # c, rated 10 s ago, is left for the next run
    start, metric, config = built.period_start, setup.metric.pk, setup.metric_config.config
    assert built.ledger_rows == [(start, metric, "", Decimal(5), Decimal(5), 2, b.rated_event_id, config, False)]  # (…, trial)
    assert built.period_units == {(metric, ""): Decimal(5)} and built.key_configs == {(metric, ""): config}
    aggregate.run(built)
    assert built.aggregates == [
        Aggregate(start, metric, setup.metric.code, "", Decimal(5), Decimal(5), 2, 0, b.rated_event_id, config)
    ]
    assert built.stages == [{"stage": "aggregate", "watermark": b.rated_event_id, "groups": 1, "events": 2, "late_groups": 0}]


@pytest.mark.django_db
def test_with_nothing_new_the_watermark_stays_and_period_units_count_the_interim_invoices():
    setup = priced_setup(rate="1")
    now = timezone.now()
    a, b = rate(setup, "a", "2"), rate(setup, "b", "3")
    rated_ago(now, (a, 300), (b, 10))
    key = (setup.metric.pk, "")
    interim = {"runs": [PriorRun(1, period(setup)[0], "interim", a.rated_event_id)], "interim_units": {key: Decimal(2)}}
    built = ledger_context(setup, now=now, **interim)
    read(built, lag_s=60)  # a was settled by the interim run; b is too new
    assert (built.watermark, built.ledger_rows, built.period_units) == (a.rated_event_id, [], {key: Decimal(2)})
    aggregate.run(built)
    assert built.aggregates == [] and built.stages[-1]["watermark"] == a.rated_event_id
    later = ledger_context(setup, now=now + timedelta(seconds=60), **interim)
    read(later, lag_s=60)
    assert later.watermark == b.rated_event_id and later.period_units == {key: Decimal(5)}  # 2 invoiced + 3


@pytest.mark.django_db
def test_events_rated_after_their_period_was_settled_come_back_as_late_groups():
    setup = priced_setup(rate="1")
    start = period(setup)[0]
    before = period(setup, start - DAY)[0]
    rate(setup, "old", "2", at=before + DAY)
    current = rate(setup, "current", "4")
    settled_before = PriorRun(1, before, "final", current.rated_event_id)  # the previous period's final run
    late = rate(setup, "late", "3", at=before + 2 * DAY)
    more = rate(setup, "more", "1")
    built = ledger_context(setup, runs=[settled_before])
    read(built, lag_s=0)
    assert built.ranges == {start: 0, before: current.rated_event_id}
    aggregate.run(built)
    assert [(a.period_start, a.units, a.event_count, a.rated_from_id, a.rated_to_id, a.late) for a in built.aggregates] == [
        (before, Decimal(3), 1, current.rated_event_id, late.rated_event_id, True),
        (start, Decimal(5), 2, 0, more.rated_event_id, False),
    ]
    assert built.period_units == {(setup.metric.pk, ""): Decimal(5)}  # late events are not this period's usage
    assert built.stages[-1] == {"stage": "aggregate", "watermark": more.rated_event_id, "groups": 2, "events": 3, "late_groups": 1}


# --- Route: prepaid and hybrid -----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("total", "wallet_now"), [("6", "0"), ("8.5", "2.5"), ("5.25", "-0.75")])
def test_prepaid_wallet_takes_only_what_real_time_debits_did_not(total, wallet_now):
    setup = priced_setup(rate="1", billing_mode="prepaid")
    wallet = top_up(setup, "50")
    a, b, _ = rate(setup, "a", "4"), rate(setup, "b", "6"), rate(setup, "c", "5")  # each debited in real time
    built = ledger_context(setup, watermark=b.rated_event_id, wallet=Wallet.objects.get(pk=wallet.pk))
    built.ranges = {built.period_start: a.rated_event_id}  # a settled by an earlier run; c above the watermark
    add_lines(built, ("usage", total))
    route.realtime_debits_read(built)  # with the ledger, before the stages
    route.run(built)
    # of the debits 4, 6 and 5 only b's 6 paid for what this run settles: the wallet takes the
    # rest of the total now (6 − 6 = 0, 8.5 − 6 = 2.5), or gives back what real time over-took (−0.75)
    assert (built.wallet_realtime, built.wallet_now, built.amount_due) == (Decimal(6), Decimal(wallet_now), 0)
    assert built.stages[-1]["billing_mode"] == "prepaid" and Decimal(built.stages[-1]["wallet_now"]) == Decimal(wallet_now)


@pytest.mark.django_db
@pytest.mark.parametrize(("total", "wallet_now", "amount_due"), [("11", "3", "4"), ("3", "-1", "0")])
def test_hybrid_wallet_pays_what_is_available_not_held_and_the_rest_is_due(total, wallet_now, amount_due):
    setup = priced_setup(rate="1", billing_mode="hybrid")
    wallet = top_up(setup, "20")
    paid = rate(setup, "a", "4")  # paid in real time: balance 16
    hold(setup, wallet, "13")
    built = ledger_context(setup, watermark=paid.rated_event_id, wallet=Wallet.objects.get(pk=wallet.pk))
    built.ranges = {built.period_start: 0}
    add_lines(built, ("usage", total))
    route.realtime_debits_read(built)
    route.run(built)
    # 11: the rest is 11 − 4 = 7, available 16 − 13 held = 3: the wallet pays 3 and 4 is due.
    # 3: the rest is 3 − 4 = −1: given back, nothing due.
    assert (built.wallet_realtime, built.wallet_now, built.amount_due) == (Decimal(4), Decimal(wallet_now), Decimal(amount_due))


# --- Settle ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_settle_persists_the_invoice_its_lines_in_line_order_and_the_run():
    setup = priced_setup(rate="1")
    now = timezone.now()
    built = ledger_context(setup, now=now, watermark=41)
    built.log("rate", usage_lines=1)
    added = (("tax", "1.305"), ("discount", "-1.5"), ("usage", "10.004"), ("allowance", "-2"), ("base", "5"), ("overage", "-1"))
    add_lines(built, *added)
    built.amount_due = Decimal("4.005")  # exact (real-time debits): rounded once, here
    run = settle.run(built)
    invoice = Invoice.objects.get(pk=run.invoice.pk)
    number = f"{setup.tenant.slug.upper()[:12]}-000001"
    # total 10.00 + 5.00 − 1.00 − 2.00 − 1.50 + 1.31 = 11.81; subtotal the charges 10 + 5;
    # due 4.005 → 4.01; the wallet's part 11.81 − 4.01 = 7.80
    assert (invoice.number, invoice.subtotal, invoice.discount_total, invoice.tax_total, invoice.total) == (
        number, Decimal(15), Decimal("1.5"), Decimal("1.31"), Decimal("11.81")
    )
    assert (invoice.amount_due, invoice.wallet_applied, invoice.issued_at) == (Decimal("4.01"), Decimal("7.80"), now)
    assert [(line.position, line.kind, line.amount_unrounded, line.amount) for line in invoice.lines.all()] == [
        (1, "usage", Decimal("10.004"), Decimal("10.00")), (2, "base", Decimal(5), Decimal(5)),
        (3, "overage", Decimal(-1), Decimal(-1)), (4, "allowance", Decimal(-2), Decimal(-2)),
        (5, "discount", Decimal("-1.5"), Decimal("-1.5")), (6, "tax", Decimal("1.305"), Decimal("1.31")),
    ]
    saved = SettlementRun.objects.get(pk=run.pk)
    assert (saved.kind, saved.sequence, saved.watermark, saved.invoice_id, saved.period_start) == (
        "final", 0, 41, invoice.pk, built.period_start
    )
    assert saved.stages == [
        {"stage": "rate", "usage_lines": 1},
        {"stage": "settle", "invoice": number, "total": "11.81", "wallet_taken": "0", "amount_due": "4.01"},
    ]
    # The tenant's next invoice, an interim run after two others of the period: number 2, sequence 3.
    two_interims = [PriorRun(90, built.period_start, "interim", 20), PriorRun(91, built.period_start, "interim", 30)]
    interim = ledger_context(setup, kind="interim", now=now, watermark=50, runs=two_interims)
    add_lines(interim, ("usage", "2"))
    second = settle.run(interim)
    assert (second.invoice.number, second.kind, second.sequence) == (f"{setup.tenant.slug.upper()[:12]}-000002", "interim", 3)
    other = priced_setup(rate="1")  # another tenant counts from 1
    add_lines(elsewhere := ledger_context(other, now=now), ("usage", "1"))
    assert settle.run(elsewhere).invoice.number == f"{other.tenant.slug.upper()[:12]}-000001"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "kind", "funds", "wallet_now", "taken", "due"),
    [("hybrid", "final", "3", "7", "3", "7"),  # the wallet holds only 3 of the 7: 3 + 4 more due
     ("prepaid", "interim", "50", "2.5", "2.5", "0"),
     ("prepaid", "final", "50", "-0.75", "-0.75", "0")],  # given back
)
def test_settle_takes_the_wallets_part_under_a_key_of_period_kind_and_sequence(mode, kind, funds, wallet_now, taken, due):
    setup = priced_setup(rate="1", billing_mode=mode)
    wallet = top_up(setup, funds)
    start = period(setup)[0]
    built = ledger_context(setup, kind=kind, runs=[PriorRun(90, start, "interim", 20)] if kind == "interim" else [])
    add_lines(built, ("usage", "10"))
    built.amount_due, built.wallet_now = Decimal(3 if mode == "hybrid" else 0), Decimal(wallet_now)
    run = settle.run(built)
    key = f"settlement:{setup.subscription.pk}:{start:%Y-%m-%dT%H:%M}:{kind}:{2 if kind == 'interim' else 0}"
    entry = WalletEntry.objects.get(wallet=wallet, idempotency_key=key)
    reference = f"settlement of the period from {start:%Y-%m-%d}" + (" (interim 2)" if kind == "interim" else "")
    assert (entry.kind, entry.amount, entry.reference) == ("debit", -Decimal(taken), reference)
    assert (run.invoice.amount_due, run.invoice.wallet_applied) == (Decimal(due), 10 - Decimal(due))
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal(funds) - Decimal(taken)
    assert Decimal(run.stages[-1]["wallet_taken"]) == Decimal(taken)

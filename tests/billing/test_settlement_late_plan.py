"""The Commit stage's plan for late usage, pure (no database): hand-built contexts settle a run of
periods in order, each invoice carrying its own usage and the late usage of earlier periods, each
late period's billed state read back from the invoices before (as late_periods_read does).
Whatever the split of events between on time and late, every period is charged max(minimum,
usage) — min(cap, …) when capped — over all its invoices, and each period's own true-up and cap
are what they would be without the late usage it carries."""

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.settlement import commit
from billing.settlement.commit import CHARGES, late_adjustment
from billing.settlement.context import Line, SettlementContext
from billing.settlement.inputs import LatePeriod, SubscriptionTerms

STARTS = [datetime(2026, month, 1, tzinfo=UTC) for month in range(7, 13)]
NOW = datetime(2027, 1, 1, tzinfo=UTC)
CENTS = Decimal("0.01")


def settle_in_order(terms: SubscriptionTerms, events: list[tuple[int, int, Decimal]], periods: int):
    """events: (period, the period whose final run takes it, amount). Returns {invoice period: lines}."""
    invoices: dict[datetime, list[Line]] = {}
    for index in range(periods):
        start = STARTS[index]
        context = SettlementContext(
            subscription=terms, period_start=start, period_end=STARTS[index + 1], kind="final", watermark=0, now=NOW
        )
        for period, settled_by, amount in events:
            if settled_by == index:
                late = period != index
                context.add(Line(kind="late_usage" if late else "usage", description="", amount_unrounded=amount,
                                 period_start=STARTS[period]))
        context.late_periods = {
            STARTS[period]: billed(invoices, STARTS[period], terms)
            for period, settled_by, _ in events if settled_by == index and period != index
        }
        commit.run(context)
        invoices[start] = context.lines
    return invoices


def billed(invoices: dict[datetime, list[Line]], period: datetime, terms: SubscriptionTerms) -> LatePeriod:
    """What late_periods_read reads: the period's lines on every invoice so far, by kind."""
    mine = [line for start, lines in invoices.items() for line in lines if (line.period_start or start) == period]
    return LatePeriod(
        period_start=period, charged=sum((line.amount for line in mine if line.kind in CHARGES), Decimal(0)),
        committed=sum((line.amount for line in mine if line.kind == "commitment"), Decimal(0)),
        capped=sum((line.amount for line in mine if line.kind == "cap"), Decimal(0)),
        min_commitment=terms.min_commitment, spend_cap=terms.spend_cap, spend_cap_action=terms.spend_cap_action,
    )


def charged_for(invoices, period: datetime) -> Decimal:
    return sum(
        (line.amount for start, lines in invoices.items() for line in lines if (line.period_start or start) == period),
        Decimal(0),
    )


def clamp(usage: Decimal, terms: SubscriptionTerms) -> Decimal:
    charged = usage if terms.min_commitment is None else max(usage, terms.min_commitment)
    return charged if terms.spend_cap is None or terms.spend_cap_action != "cap" else min(charged, terms.spend_cap)


@st.composite
def scenarios(draw):
    periods = draw(st.integers(2, 5))
    minimum = draw(st.none() | st.integers(0, 300).map(lambda c: Decimal(c) * 10 * CENTS))
    cap = draw(st.none() | st.integers(0, 400).map(lambda c: Decimal(c) * 10 * CENTS))
    if cap is not None and minimum is not None and cap < minimum:
        cap = minimum  # a cap below the minimum is no contract
    terms = SubscriptionTerms(currency="USD", min_commitment=minimum, spend_cap=cap,
                              spend_cap_action=draw(st.sampled_from(["cap", "alert"])))
    events = []
    for _ in range(draw(st.integers(1, 12))):
        period = draw(st.integers(0, periods - 1))
        settled_by = draw(st.integers(period, periods - 1))  # on time, or late onto a later invoice
        # volume pricing rates some events negative: late usage can lower a period's charge
        amount = Decimal(draw(st.integers(-2000, 8000))) * CENTS
        events.append((period, settled_by, amount))
    return terms, events, periods


@given(scenarios())
def test_every_period_is_charged_its_minimum_or_usage_whatever_arrives_late(scenario):
    terms, events, periods = scenario
    invoices = settle_in_order(terms, events, periods)
    for index in range(periods):
        usage = sum((amount for period, _, amount in events if period == index), Decimal(0))
        assert charged_for(invoices, STARTS[index]) == clamp(usage, terms)
    assert sum(charged_for(invoices, start) for start in STARTS[:periods]) == sum(
        clamp(sum((a for p, _, a in events if p == index), Decimal(0)), terms) for index in range(periods)
    )


@given(scenarios())
def test_a_periods_own_true_up_and_cap_ignore_the_late_usage_its_invoice_carries(scenario):
    terms, events, periods = scenario
    on_time_only = [(period, settled_by, amount) for period, settled_by, amount in events if period == settled_by]
    with_late, without = settle_in_order(terms, events, periods), settle_in_order(terms, on_time_only, periods)
    for start in STARTS[:periods]:
        own = [(line.kind, line.amount) for line in with_late[start] if line.period_start == start]
        assert own == [(line.kind, line.amount) for line in without[start]]


def period(**terms) -> LatePeriod:
    return LatePeriod(period_start=STARTS[0], **terms)


def test_late_usage_fills_the_shortfall_its_true_up_billed_and_no_more():
    below = period(charged=Decimal(40), committed=Decimal(60), min_commitment=Decimal(100))
    assert late_adjustment(below, Decimal(5)).commitment == Decimal(-5)  # the case: net 0
    assert late_adjustment(below, Decimal(70)).commitment == Decimal(-60)  # past the minimum: 10 billed
    above = period(charged=Decimal(120), min_commitment=Decimal(100))
    assert late_adjustment(above, Decimal(5)).commitment == 0  # billed in full


def test_negative_late_usage_reopens_the_shortfall():
    met = period(charged=Decimal(103), min_commitment=Decimal(100))
    assert late_adjustment(met, Decimal(-5)).commitment == Decimal(2)  # 98: a 2 true-up


def test_an_adjustment_never_moves_a_period_more_than_its_late_usage():
    """Terms that differ from those the period's lines were billed under (its minimum was 50 and
    is 150; its cap was 95 and is 90): its late usage is never turned into a larger charge, nor
    a larger credit, than itself."""
    settled_low = period(charged=Decimal(60), committed=Decimal(0), min_commitment=Decimal(150))
    assert late_adjustment(settled_low, Decimal(5)).commitment == 0  # not +85
    capped = period(charged=Decimal(100), capped=Decimal(-5), spend_cap=Decimal(90))
    assert late_adjustment(capped, Decimal(5)).cap == Decimal(-5)  # not −10


def test_an_alert_only_cap_adjusts_nothing_and_reports_the_excess():
    alert = period(charged=Decimal(108), spend_cap=Decimal(110), spend_cap_action="alert")
    adjustment = late_adjustment(alert, Decimal(5))
    assert (adjustment.cap, adjustment.over_cap) == (0, True)


def invoice_with_late(terms: SubscriptionTerms, late: str, billed: LatePeriod) -> SettlementContext:
    context = SettlementContext(subscription=terms, period_start=STARTS[1], period_end=STARTS[2], kind="final",
                                watermark=0, now=NOW)
    context.add(Line(kind="late_usage", description="", amount_unrounded=Decimal(late), period_start=STARTS[0]))
    context.late_periods = {STARTS[0]: billed}
    commit.run(context)
    return context


def test_the_adjustment_lines_say_which_period_and_why():
    monthly = SubscriptionTerms(currency="EUR", min_commitment=Decimal(100))
    lowered = invoice_with_late(monthly, "-5", period(charged=Decimal(103), min_commitment=Decimal(100)))
    [adjustment] = [line for line in lowered.lines if line.kind == "commitment" and line.period_start == STARTS[0]]
    assert (adjustment.amount, adjustment.period_start) == (Decimal(2), STARTS[0])
    assert adjustment.description == (
        "July commitment adjustment (period from 2026-07-01): its late usage takes it 2.00 EUR below its "
        "100.00 EUR minimum commitment"
    )
    weekly = SubscriptionTerms(currency="JPY", billing_cadence="weekly", spend_cap=Decimal(1000))
    capped = invoice_with_late(weekly, "500", period(charged=Decimal(900), spend_cap=Decimal(1000)))
    assert [(line.kind, line.amount, line.description) for line in capped.lines][-1] == (
        "cap", Decimal(-400),
        "Week of 2026-07-01 spend cap adjustment (period from 2026-07-01): 400 JPY of its 500 JPY late usage above "
        "its 1,000 JPY spend cap",
    )
    [log] = capped.stages
    assert log["late_periods"][0]["cap_adjustment"] == "-400" and log["spend_cap"] == "1000"


def test_the_terms_a_period_was_settled_with_are_its_latest_reissues():
    from billing.settlement.late_periods import settled_terms

    first = {"stage": "commit", "charges": "40", "min_commitment": "100", "spend_cap": None, "spend_cap_action": "cap"}
    reissued = {**first, "min_commitment": "80"}
    assert settled_terms([{"stage": "rate"}, first]) == first
    assert settled_terms([first, {"stage": "reissue", "stages": [{"stage": "rate"}, reissued]}]) == reissued
    assert settled_terms([{"stage": "commit", "charges": "40"}]) is None  # logged before the terms were: None

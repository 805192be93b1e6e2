"""Per-metric minimums in the Commit stage's plan, pure (no database): hand-built contexts settle a
run of periods in order, each invoice carrying its own usage of two metrics and the late usage of
earlier periods, each late period's billed state read back from the invoices before (as
late_periods_read does, a commitment line of a metric being its metric minimum's). Whatever
arrives late, every period is charged max(commitment, Σ max(metric minimum, metric usage)) over
all its invoices, and a period's own lines never depend on the late usage its invoice carries."""

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing.settlement import commit
from billing.settlement.commit import CHARGES, late_adjustment
from billing.settlement.context import Line, SettlementContext
from billing.settlement.inputs import LatePeriod, SettlementInputs, SubscriptionTerms

STARTS = [datetime(2026, month, 1, tzinfo=UTC) for month in range(7, 13)]
NOW = datetime(2027, 1, 1, tzinfo=UTC)
CENTS = Decimal("0.01")
ZERO = Decimal(0)
CODES = {1: "calls", 2: "tokens"}
INPUTS = SettlementInputs(metric_codes=CODES, metric_names={1: "API calls", 2: "Tokens"})


def settle_in_order(terms: SubscriptionTerms, events: list[tuple[int, int, int, Decimal]], periods: int):
    """events: (period, the period whose final run takes it, metric id, amount). Returns {invoice period: lines}."""
    invoices: dict[datetime, list[Line]] = {}
    for index in range(periods):
        start = STARTS[index]
        context = SettlementContext(subscription=terms, period_start=start, period_end=STARTS[index + 1], kind="final",
                                    watermark=0, now=NOW, inputs=INPUTS)
        for period, settled_by, metric_id, amount in events:
            if settled_by == index:
                kind = "late_usage" if period != index else "usage"
                context.add(Line(kind=kind, description="", amount_unrounded=amount, metric_id=metric_id,
                                 period_start=STARTS[period]))
        context.late_periods = {
            STARTS[period]: billed(invoices, STARTS[period], terms)
            for period, settled_by, _, _ in events if settled_by == index and period != index
        }
        commit.run(context)
        invoices[start] = context.lines
    return invoices


def billed(invoices: dict[datetime, list[Line]], period: datetime, terms: SubscriptionTerms) -> LatePeriod:
    mine = [line for start, lines in invoices.items() for line in lines if (line.period_start or start) == period]
    ids = {code: metric_id for metric_id, code in CODES.items()}

    def by_metric(kinds) -> dict[int, Decimal]:
        sums: dict[int, Decimal] = {}
        for line in mine:
            if line.metric_id is not None and line.kind in kinds:
                sums[line.metric_id] = sums.get(line.metric_id, ZERO) + line.amount
        return sums

    return LatePeriod(
        period_start=period, charged=sum((line.amount for line in mine if line.kind in CHARGES), ZERO),
        committed=sum((line.amount for line in mine if line.kind == "commitment" and line.metric_id is None), ZERO),
        capped=sum((line.amount for line in mine if line.kind == "cap"), ZERO),
        min_commitment=terms.min_commitment, spend_cap=terms.spend_cap, spend_cap_action=terms.spend_cap_action,
        metric_charged=by_metric(CHARGES), metric_committed=by_metric(("commitment",)),
        metric_minimums={ids[code]: amount for code, amount in terms.metric_minimums},  # zeros too: the plan skips them
    )


def charged_for(invoices, period: datetime) -> Decimal:
    return sum((line.amount for start, lines in invoices.items() for line in lines if (line.period_start or start) == period), ZERO)


def expected(terms: SubscriptionTerms, usage: dict[int, Decimal]) -> Decimal:
    # a minimum of 0 is none (it never trues up a negative charge)
    minimums = {m: amount for m, code in CODES.items() for c, amount in terms.metric_minimums if c == code and amount}
    floored = sum(
        (usage.get(m, ZERO) if m not in minimums else max(minimums[m], usage.get(m, ZERO)) for m in CODES), ZERO
    )
    return floored if terms.min_commitment is None else max(floored, terms.min_commitment)


amounts = st.integers(0, 300).map(lambda c: Decimal(c) * 10 * CENTS)


@st.composite
def scenarios(draw):
    periods = draw(st.integers(2, 4))
    minimums = tuple(sorted((code, draw(amounts)) for code in draw(st.sets(st.sampled_from(sorted(CODES.values()))))))
    terms = SubscriptionTerms(currency="USD", min_commitment=draw(st.none() | amounts), metric_minimums=minimums)
    events = []
    for _ in range(draw(st.integers(1, 12))):
        period = draw(st.integers(0, periods - 1))
        settled_by = draw(st.integers(period, periods - 1))
        # volume pricing rates some events negative: late usage can lower a metric's charge
        events.append((period, settled_by, draw(st.sampled_from(sorted(CODES))), Decimal(draw(st.integers(-2000, 8000))) * CENTS))
    return terms, events, periods


@given(scenarios())
def test_every_period_is_charged_its_floors_whatever_arrives_late(scenario):
    terms, events, periods = scenario
    invoices = settle_in_order(terms, events, periods)
    for index in range(periods):
        usage: dict[int, Decimal] = {}
        for period, _, metric_id, amount in events:
            if period == index:
                usage[metric_id] = usage.get(metric_id, ZERO) + amount
        assert charged_for(invoices, STARTS[index]) == expected(terms, usage)


@given(scenarios())
def test_a_periods_own_lines_ignore_the_late_usage_its_invoice_carries(scenario):
    terms, events, periods = scenario
    on_time = [event for event in events if event[0] == event[1]]
    with_late, without = settle_in_order(terms, events, periods), settle_in_order(terms, on_time, periods)
    for start in STARTS[:periods]:
        own = [(line.kind, line.metric_id, line.amount) for line in with_late[start] if line.period_start == start]
        assert own == [(line.kind, line.metric_id, line.amount) for line in without[start]]


def test_the_metric_adjustment_comes_first_and_the_commitment_takes_what_it_left():
    october = LatePeriod(
        period_start=STARTS[0], charged=Decimal(10), committed=Decimal(20), min_commitment=Decimal(50),
        metric_charged={1: Decimal(10)}, metric_committed={1: Decimal(20)}, metric_minimums={1: Decimal(30)},
    )
    within = late_adjustment(october, Decimal(5), {1: Decimal(5)})
    assert (within.metric, within.commitment) == ({1: Decimal(-5)}, ZERO)  # the metric's shortfall absorbs it
    past = late_adjustment(october, Decimal(35), {1: Decimal(35)})
    assert (past.metric, past.commitment) == ({1: Decimal(-20)}, Decimal(-15))  # 45 of calls: the commitment's 20 shrinks by 15
    other = late_adjustment(october, Decimal(5), {2: Decimal(5)})
    assert (other.metric, other.commitment) == ({}, Decimal(-5))  # a metric without a minimum: the commitment's


def test_the_lines_name_the_metric_and_the_log_keeps_the_terms():
    terms = SubscriptionTerms(currency="EUR", metric_minimums=(("calls", Decimal(30)),), terms_version_id=7)
    context = SettlementContext(subscription=terms, period_start=STARTS[1], period_end=STARTS[2], kind="final",
                                watermark=0, now=NOW, inputs=INPUTS)
    context.add(Line(kind="usage", description="", amount_unrounded=Decimal(4), metric_id=1, period_start=STARTS[1]))
    context.add(Line(kind="late_usage", description="", amount_unrounded=Decimal(5), metric_id=1, period_start=STARTS[0]))
    context.late_periods = {STARTS[0]: LatePeriod(
        period_start=STARTS[0], charged=Decimal(10), metric_charged={1: Decimal(10)}, metric_committed={1: Decimal(20)},
        metric_minimums={1: Decimal(30)},
    )}
    commit.run(context)
    assert [(line.kind, line.metric_id, line.amount, line.period_start, line.description) for line in context.lines[2:]] == [
        ("commitment", 1, Decimal(26), STARTS[1], "Minimum for API calls 30: true-up"),
        ("commitment", 1, Decimal(-5), STARTS[0],
         "July minimum for API calls adjustment (period from 2026-07-01): 5.00 EUR of its 5.00 EUR late API calls usage "
         "within its 30.00 EUR minimum"),
    ]
    [log] = context.stages
    assert (log["metric_true_ups"], log["metric_minimums"], log["terms_version"]) == ({"calls": "26.00"}, {"calls": "30"}, 7)
    assert log["late_periods"][0]["metric_adjustments"] == {"calls": "-5.00"}


def test_an_interim_run_trues_up_no_metric_minimum():
    terms = SubscriptionTerms(currency="USD", metric_minimums=(("calls", Decimal(30)),))
    context = SettlementContext(subscription=terms, period_start=STARTS[1], period_end=STARTS[2], kind="interim",
                                watermark=0, now=NOW, inputs=INPUTS)
    context.add(Line(kind="usage", description="", amount_unrounded=Decimal(4), metric_id=1, period_start=STARTS[1]))
    commit.run(context)
    assert [line.kind for line in context.lines] == ["usage"]

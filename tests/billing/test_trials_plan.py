"""The trial plan, pure (billing.trials.plan): which events are free and when a trial converts —
at its end date, or after the event whose units reach the usage threshold (the last free one);
whatever the arrival order and batch boundaries, every free event is timestamped before the
conversion and every billed one at or after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.trials.plan import TICK, TrialEvent, TrialTerms, conversion_cause, conversion_instant, trials_plan

T0 = datetime(2026, 10, 1, tzinfo=UTC)
CALLS, OTHER = 1, 2


def event(quantity: str, minutes: int, metric: int = CALLS, event_id: str = "") -> TrialEvent:
    return TrialEvent(7, metric, Decimal(quantity), T0 + timedelta(minutes=minutes), None, event_id)


def usage_trial(threshold: str = "10", **kwargs) -> dict[int, TrialTerms]:
    return {7: TrialTerms(7, metric_id=CALLS, threshold=Decimal(threshold), **kwargs)}


def test_the_event_that_reaches_the_threshold_exactly_is_the_last_free_one():
    free, after, conversions = trials_plan([event("4", 1), event("6", 2, event_id="crossing"), event("1", 3)], usage_trial())
    assert free == [True, True, False]
    [conversion] = conversions
    assert (conversion.cause, conversion.event_id, conversion.units_used) == ("usage", "crossing", Decimal(10))
    assert conversion.converted_at == T0 + timedelta(minutes=2) + TICK == after[7].converted_at
    assert after[7].units == Decimal(10) and after[7].free_events == 2


def test_an_event_crossing_the_threshold_is_free_in_full_and_other_metrics_do_not_count():
    free, after, conversions = trials_plan(
        [event("5", 1, OTHER), event("9", 2), event("500", 3), event("1", 4, OTHER)], usage_trial()
    )
    assert free == [True, True, True, False]
    assert after[7].units == Decimal(509) and conversions[0].units_used == Decimal(509)


def test_late_events_before_the_conversion_are_free_and_later_ones_billed():
    # Out of order: the crossing event is timestamped 10:05; one from 10:02 arrives after it.
    free, after, _ = trials_plan([event("6", 5), event("6", 10), event("3", 2), event("1", 12)], usage_trial())
    assert free == [True, True, True, False]
    assert after[7].converted_at == T0 + timedelta(minutes=10) + TICK


def test_a_conversion_is_after_every_free_event_even_one_stamped_later_that_arrived_first():
    free, after, _ = trials_plan([event("6", 30), event("6", 10), event("1", 20)], usage_trial())
    assert free == [True, True, True]  # 10:20 is before the conversion, which follows 10:30
    assert after[7].converted_at == T0 + timedelta(minutes=30) + TICK


def test_a_date_trial_bills_from_its_end_date_with_no_sweep():
    ends = T0 + timedelta(minutes=10)
    terms = {7: TrialTerms(7, ends_at=ends)}
    free, after, conversions = trials_plan([event("1", 9), event("1", 10), event("1", 3)], terms)
    assert free == [True, False, True] and conversions == [] and after[7].free_events == 2


def test_no_trial_bills_everything():
    free, _, conversions = trials_plan([event("1", 1)], {7: TrialTerms(7)})
    assert free == [False] and conversions == []


def test_conversion_instant_is_never_before_a_free_event_nor_after_the_end_date():
    ends = T0 + timedelta(days=10)
    future_free = T0 + timedelta(days=2, minutes=3)  # an event stamped minutes ahead, rated free
    trial = TrialTerms(7, ends_at=ends, latest_free_at=future_free)
    assert conversion_instant(trial, now=T0 + timedelta(days=2)) == future_free + TICK
    assert conversion_instant(trial, now=T0 + timedelta(days=3)) == T0 + timedelta(days=3)
    assert conversion_instant(trial, now=T0 + timedelta(days=30)) == ends
    assert conversion_cause(trial, at=ends, requested="operator") == "date"
    assert conversion_cause(trial, at=ends - TICK, requested="operator") == "operator"


events = st.lists(
    st.tuples(st.integers(0, 50), st.integers(1, 8), st.sampled_from([CALLS, OTHER])), min_size=1, max_size=30
)


@settings(max_examples=150, deadline=None)
@given(events=events, threshold=st.integers(1, 60), ends=st.none() | st.integers(1, 50), cuts=st.lists(st.integers(0, 30)))
def test_free_events_precede_the_conversion_and_billed_ones_follow_it_whatever_the_batches(events, threshold, ends, cuts):
    rows = [TrialEvent(7, metric, Decimal(q), T0 + timedelta(minutes=m), None, str(i)) for i, (m, q, metric) in enumerate(events)]
    ends_at = None if ends is None else T0 + timedelta(minutes=ends)
    terms = {7: TrialTerms(7, ends_at=ends_at, metric_id=CALLS, threshold=Decimal(threshold))}
    whole, after, conversions = trials_plan(rows, terms)
    # The same events in batches (state carried from one to the next) decide the same.
    state, in_parts, parts_conversions = dict(terms), [], []
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    for start, end in zip(bounds, bounds[1:]):
        decided, state, made = trials_plan(rows[start:end], state)
        in_parts += decided
        parts_conversions += made
    assert in_parts == whole and state == after and parts_conversions == conversions
    assert len(conversions) <= 1
    converted = after[7].converted_at
    boundary = min((t for t in (ends_at, converted) if t is not None), default=None)
    for row, is_free in zip(rows, whole):
        assert is_free == (boundary is None or row.timestamp < boundary)
    free_units = sum((r.quantity for r, f in zip(rows, whole) if f and r.metric_id == CALLS), Decimal(0))
    assert after[7].units == free_units
    if conversions:
        # The threshold was reached by the crossing event, not before it.
        index = next(i for i, r in enumerate(rows) if r.event_id == conversions[0].event_id)
        before = sum((r.quantity for r, f in zip(rows[:index], whole) if f and r.metric_id == CALLS), Decimal(0))
        assert before < threshold <= before + rows[index].quantity and whole[index]
    else:
        assert free_units < threshold

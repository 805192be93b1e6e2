"""billing.leases.plan, pure (no database): hypothesis drives a lease through any sequence of
consumption, reports, top-ups and a close (return or expiry) followed by late events, and checks
the accounting laws: used + returned + expired == leased once closed, nothing negative, nothing
reserved beyond what is granted, and a limit never over-granted."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.leases import plan

ZERO = Decimal(0)
units = st.decimals(min_value=0, max_value=500, places=3)
positive = st.decimals(min_value=Decimal("0.001"), max_value=500, places=3)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("consume"), units),
        st.tuples(st.just("report"), units),
        st.tuples(st.just("top_up"), st.tuples(units, units)),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(
    granted=positive, before=steps, closing=st.sampled_from([plan.RETURNED, plan.EXPIRED]),
    reported=units, after=st.lists(units, max_size=4),
)
def test_every_leased_unit_is_used_returned_or_expired(granted, before, closing, reported, after):
    state = plan.LeaseState(leased=granted)
    for step, value in before:
        if step == "consume":
            state = plan.consume(state, value)
        elif step == "report":
            state = plan.report(state, value)
        else:
            remaining, available = value
            grown = plan.top_up(state, remaining=remaining, available_units=available)
            assert state.leased <= grown.leased <= state.leased + available  # never past what is free
            left = available - (grown.leased - state.leased)  # a retry sees the first top-up reserved
            assert plan.top_up(grown, remaining=remaining, available_units=left).leased == grown.leased
            state = grown
        assert state.reserved == max(state.leased - state.consumed, ZERO)
    reported_before = state.reported
    state = plan.close(plan.report(state, reported), status=closing)
    assert plan.balanced(state) and state.used + state.returned + state.expired == state.leased
    assert min(state.used, state.returned, state.expired) >= 0
    assert (state.returned if closing == plan.EXPIRED else state.expired) == 0
    assert state.used == min(max(reported_before, reported, state.consumed), state.leased)
    for late in after:  # events still in flight, then beyond what was used: ordinary usage, flagged
        state = plan.consume(state, late)
        assert plan.balanced(state)
        assert state.reserved == max(state.used - state.consumed, ZERO)
        assert state.overrun == max(state.consumed - state.used, ZERO)


@settings(max_examples=300, deadline=None)
@given(limit=units, rated=units, requests=st.lists(st.tuples(positive, units), min_size=1, max_size=8))
def test_grants_never_share_a_unit(limit, rated, requests):
    """Successive grants against one limit (as the service makes them, one at a time under the
    subscription's lock) never reserve more than limit − rated."""
    reserved = ZERO
    for requested, minimum in requests:
        got = plan.grant(
            requested=requested, minimum=min(minimum, requested),
            available=plan.available(limit=limit, rated=rated, reserved=reserved),
        )
        if got is not None:
            assert ZERO < got <= requested and got >= min(minimum, requested)
            reserved += got
    assert reserved <= max(limit - rated, ZERO)


def test_grant_gives_what_is_left_or_nothing_below_the_minimum():
    assert plan.grant(requested=Decimal(100), minimum=ZERO, available=Decimal(30)) == 30
    assert plan.grant(requested=Decimal(100), minimum=Decimal(40), available=Decimal(30)) is None
    assert plan.grant(requested=Decimal(10), minimum=ZERO, available=ZERO) is None


def test_a_return_keeps_unrated_reported_units_reserved_until_rated():
    state = plan.consume(plan.LeaseState(leased=Decimal(100)), Decimal(30))
    closed = plan.close(plan.report(state, Decimal(50)), status=plan.RETURNED)
    assert (closed.used, closed.returned, closed.reserved) == (50, 50, 20)
    assert plan.consume(closed, Decimal(25)).reserved == 0 and plan.consume(closed, Decimal(25)).overrun == 5


def test_closing_twice_is_refused():
    closed = plan.close(plan.LeaseState(leased=Decimal(1)), status=plan.EXPIRED)
    with pytest.raises(AssertionError):
        plan.close(closed, status=plan.RETURNED)

"""Credit grants in the pure debit plan (wallets.plan): hypothesis drives batches of prepaid and
hybrid charges over wallets with grants of every priority, start and expiry, and checks that a
grant never pays more than it has, never after its expiry, in (priority, expiry, age) order,
and that the wallet still pays exactly what the rules say."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from wallets.plan import GrantState, RatedCharge, WalletState, debits_plan, grant_order, grants_allocate

ZERO = Decimal(0)
AT = datetime(2026, 11, 24, 12, tzinfo=dt_timezone.utc)
HOUR = timedelta(hours=1)


def grant(grant_id, *, priority=100, expires=None, starts=-HOUR, amount="10", remaining=None, wallet=1):
    return GrantState(
        grant_id, wallet, priority, AT + starts, None if expires is None else AT + expires, Decimal(amount),
        Decimal(remaining if remaining is not None else amount),
    )


@st.composite
def grants_of(draw, wallet_id: int, first_id: int):
    result = []
    for number in range(draw(st.integers(min_value=0, max_value=4))):
        amount = draw(st.decimals(min_value=1, max_value=40, places=2))
        result.append(GrantState(
            first_id + number, wallet_id, draw(st.integers(min_value=0, max_value=3)),
            AT + draw(st.sampled_from([-2 * HOUR, -HOUR, HOUR])),  # HOUR: not started yet
            draw(st.sampled_from([None, AT - HOUR, AT, AT + HOUR, AT + 2 * HOUR])),  # AT: expires now
            amount, draw(st.decimals(min_value=0, max_value=amount, places=3)),
        ))
    return [g for g in result if g.expires_at is None or g.expires_at > g.starts_at]


@st.composite
def batches(draw):
    grants = {1: draw(grants_of(1, 10)), 2: draw(grants_of(2, 20))}
    wallets = {}
    for wallet_id in (1, 2):
        in_grants = sum((g.remaining for g in grants[wallet_id]), ZERO)
        wallets[(wallet_id, "USD")] = WalletState(wallet_id, 7, in_grants + draw(st.decimals(min_value=-5, max_value=30, places=2)), ZERO)
    charges = [
        RatedCharge(n, 7, draw(st.sampled_from([1, 2])), "USD", draw(st.sampled_from(["prepaid", "hybrid"])),
                    draw(st.decimals(min_value=-15, max_value=40, places=3)))
        for n in range(1, draw(st.integers(min_value=0, max_value=10)) + 1)
    ]
    return charges, wallets, grants


@settings(max_examples=400, deadline=None)
@given(batches())
def test_grants_pay_first_in_order_never_more_than_they_have_nor_after_expiry(batch):
    charges, wallets, grants = batch
    plan = debits_plan(charges, wallets, {}, grants, AT)
    without = debits_plan(charges, wallets, {})
    by_id = {g.id: g for wallet_grants in grants.values() for g in wallet_grants}
    current = dict(by_id)
    draws_by_entry: dict[int, list] = {}
    for draw in plan.draws:
        draws_by_entry.setdefault(draw.entry, []).append(draw)
    for index, entry in enumerate(plan.entries):
        draws = draws_by_entry.get(index, [])
        debit = -entry.amount
        assert abs(sum((d.amount for d in draws), ZERO)) <= abs(debit)  # the grants pay at most the debit
        for d in draws:
            g = current[d.grant_id]
            assert g.wallet_id == entry.wallet_id and g.usable(AT)  # never a grant not started or expired
            assert (d.amount > 0) == (debit > 0)
            current[d.grant_id] = g._replace(remaining=g.remaining - d.amount)
            assert ZERO <= current[d.grant_id].remaining <= g.amount  # never more than it has, nor back beyond it
        if debit > 0 and draws:
            # order: every usable grant before the last one drawn is empty after this entry
            last = max(grant_order(current[d.grant_id]) for d in draws)
            for g in current.values():
                if g.wallet_id == entry.wallet_id and g.usable(AT) and grant_order(g) < last:
                    assert g.remaining == 0
        if debit > 0 and sum((d.amount for d in draws), ZERO) < debit:
            assert all(g.remaining == 0 for g in current.values() if g.wallet_id == entry.wallet_id and g.usable(AT))
    assert {i: g.remaining for i, g in plan.grants.items()} == {i: current[i].remaining for i in plan.grants}
    # prepaid: the wallet pays each charge exactly, grants or not
    prepaid = {c.rated_event_id for c in charges if c.billing_mode == "prepaid" and c.amount}
    assert sorted((e.rated_event_id, e.amount) for e in plan.entries if e.rated_event_id in prepaid) == sorted(
        (c.rated_event_id, -c.amount) for c in charges if c.rated_event_id in prepaid
    )
    # hybrid never spends what grants not usable now hold: it pays at most what it did without them
    for wallet in plan.wallets.values():
        unusable = sum((g.remaining for g in grants[wallet.id] if not g.usable(AT)), ZERO)
        hybrid_paid = -sum((e.amount for e in plan.entries if e.wallet_id == wallet.id and e.rated_event_id not in prepaid), ZERO)
        hybrid_without = -sum((e.amount for e in without.entries if e.wallet_id == wallet.id and e.rated_event_id not in prepaid), ZERO)
        assert hybrid_paid <= hybrid_without
        if not unusable:
            assert hybrid_paid == hybrid_without


def test_consumed_by_priority_then_soonest_expiry_then_age_never_expired_or_future():
    grants = [
        grant(1, priority=10, expires=2 * HOUR),
        grant(2, priority=10, expires=HOUR),  # same priority, expires sooner: before 1
        grant(3, priority=5),  # never expires but the lowest priority number: first
        grant(4, priority=0, expires=timedelta(0)),  # expires exactly now: unusable, swept or not
        grant(5, priority=0, starts=HOUR),  # not started
        grant(6, priority=10),  # never expires: after 1 and 2
    ]
    assert grants_allocate(grants, Decimal("25"), AT) == [(3, Decimal(10)), (2, Decimal(10)), (1, Decimal(5))]
    assert grants_allocate(grants, Decimal("45"), AT) == [(3, Decimal(10)), (2, Decimal(10)), (1, Decimal(10)), (6, Decimal(10))]


def test_a_negative_delta_gives_back_in_reverse_order_up_to_what_each_had_consumed():
    grants = [grant(1, priority=1, remaining="0"), grant(2, priority=2, remaining="6"), grant(3, priority=3)]
    assert grants_allocate(grants, Decimal("-7"), AT) == [(2, Decimal(-4)), (1, Decimal(-3))]
    assert grants_allocate(grants, Decimal("-20"), AT) == [(2, Decimal(-4)), (1, Decimal(-10))]  # the rest: paid balance


def test_prepaid_batch_drains_grants_then_the_paid_balance():
    wallets = {(1, "USD"): WalletState(1, 7, Decimal(15), ZERO)}  # 10 in the grant, 5 paid
    charges = [RatedCharge(1, 7, 1, "USD", "prepaid", Decimal(8)), RatedCharge(2, 7, 1, "USD", "prepaid", Decimal(6))]
    plan = debits_plan(charges, wallets, {}, {1: [grant(1)]}, AT)
    assert [(e.amount, e.balance_after) for e in plan.entries] == [(Decimal(-8), 7), (Decimal(-6), 1)]
    assert [(d.entry, d.grant_id, d.amount) for d in plan.draws] == [(0, 1, Decimal(8)), (1, 1, Decimal(2))]
    assert plan.grants[1].remaining == 0


def test_hybrid_cannot_spend_an_expired_unswept_grant():
    wallets = {(1, "USD"): WalletState(1, 7, Decimal(10), ZERO)}  # all of it an expired, unswept grant
    plan = debits_plan([RatedCharge(1, 7, 1, "USD", "hybrid", Decimal(4))], wallets, {}, {1: [grant(1, expires=-timedelta(seconds=1), starts=-2 * HOUR)]}, AT)
    assert plan.entries == [] and plan.draws == []

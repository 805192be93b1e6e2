"""wallets.plan.debits_plan, pure (no database): hypothesis drives batches of prepaid and
hybrid charges — positive and negative deltas, sessions with and without holds — over wallets
with thresholds, and checks the rules against a one-charge-at-a-time model of them."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from wallets.plan import HoldState, RatedCharge, WalletState, debits_plan

ZERO = Decimal(0)
amounts = st.decimals(min_value=-20, max_value=60, places=2)
money = st.decimals(min_value=0, max_value=200, places=2)
CUSTOMERS = [1, 2]


@st.composite
def batches(draw):
    wallets = {}
    holds = {}
    for index, customer in enumerate(CUSTOMERS):
        balance = draw(money)
        hold_amounts = draw(st.lists(st.decimals(min_value=0, max_value=50, places=2), max_size=2))
        for number, amount in enumerate(hold_amounts):
            drawn = draw(st.decimals(min_value=0, max_value=amount, places=2))
            holds[(index + 1, f"s{number}")] = HoldState(100 * (index + 1) + number, amount, drawn)
        held = sum((h.amount - h.drawn for (w, _), h in holds.items() if w == index + 1), ZERO)
        thresholds = tuple(sorted(draw(st.sets(st.decimals(min_value=0, max_value=150, places=0), max_size=3))))
        wallets[(customer, "USD")] = WalletState(index + 1, 7, balance + held, held, thresholds)
    charges = [
        RatedCharge(
            rated_event_id=n, tenant_id=7, customer_id=draw(st.sampled_from(CUSTOMERS)), currency="USD",
            billing_mode=draw(st.sampled_from(["prepaid", "hybrid"])), amount=draw(amounts),
            session=draw(st.sampled_from(["", "s0", "s1", "s9"])), event_id=f"e{n}",
        )
        for n in range(1, draw(st.integers(min_value=0, max_value=12)) + 1)
    ]
    return charges, wallets, holds


@settings(max_examples=400, deadline=None)
@given(batches())
def test_debits_follow_the_rules_one_charge_at_a_time(batch):
    charges, wallets, holds = batch
    plan = debits_plan(charges, wallets, holds)

    # the model: one charge at a time, by the rules of the module's docstring
    balance = {w.id: w.balance for w in wallets.values()}
    held = {w.id: w.held for w in wallets.values()}
    drawn = {h.id: h.drawn for h in holds.values()}
    expected_entries, expected_alerts = [], []
    for charge in charges:
        wallet = wallets[(charge.customer_id, "USD")]
        available = balance[wallet.id] - held[wallet.id]
        if charge.billing_mode == "prepaid":
            debit = charge.amount  # exactly, negative deltas credited, may go negative
        else:
            debit = min(charge.amount, max(available, ZERO)) if charge.amount > 0 else ZERO
            assert ZERO <= debit <= max(charge.amount, ZERO)
        if debit == 0:
            continue
        hold = holds.get((wallet.id, charge.session)) if charge.session else None
        draw = min(debit, hold.amount - drawn[hold.id]) if hold is not None and debit > 0 else ZERO
        if draw:
            drawn[hold.id] += draw
        balance[wallet.id] -= debit
        held[wallet.id] -= draw
        expected_entries.append((wallet.id, -debit, -draw, balance[wallet.id], held[wallet.id], hold.id if draw else None))
        after = balance[wallet.id] - held[wallet.id]
        expected_alerts += [(len(expected_entries) - 1, t) for t in wallet.thresholds if available >= t > after]

    assert [(e.wallet_id, e.amount, e.held_change, e.balance_after, e.held_after, e.hold_id) for e in plan.entries] == expected_entries
    assert [(a.entry, a.threshold) for a in plan.alerts] == expected_alerts
    assert {i: (w.balance, w.held) for i, w in plan.wallets.items()} == {i: (balance[i], held[i]) for i in balance}
    assert {i: h.drawn for i, h in plan.holds.items()} == drawn
    for hold in plan.holds.values():
        assert ZERO <= hold.drawn <= hold.amount  # a hold never pays more than it holds
    for entry in plan.entries:
        assert entry.idempotency_key == f"rated:{entry.rated_event_id}" and entry.tenant_id == 7


def test_hybrid_pays_first_then_accrues_and_prepaid_goes_negative():
    wallets = {(1, "USD"): WalletState(1, 7, Decimal(10), ZERO, (Decimal(5),)), (2, "USD"): WalletState(2, 7, Decimal(3), ZERO)}
    charges = [
        RatedCharge(1, 7, 1, "USD", "hybrid", Decimal(8)),
        RatedCharge(2, 7, 1, "USD", "hybrid", Decimal(8)),  # only 2 left: the wallet pays 2
        RatedCharge(3, 7, 1, "USD", "hybrid", Decimal(8)),  # empty: nothing debited
        RatedCharge(4, 7, 2, "USD", "prepaid", Decimal(5)),  # 3 → −2
    ]
    plan = debits_plan(charges, wallets, {})
    assert [(e.rated_event_id, e.amount, e.balance_after) for e in plan.entries] == [
        (1, Decimal(-8), Decimal(2)), (2, Decimal(-2), Decimal(0)), (4, Decimal(-5), Decimal(-2)),
    ]
    assert [(a.entry, a.threshold, a.available_before, a.available_after) for a in plan.alerts] == [(0, Decimal(5), 10, 2)]

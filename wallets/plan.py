"""Real-time wallet debits of a batch of rated events, as a pure plan (no database, no Django).

wallets.debits.wallet_charges_record locks and reads the wallets and the sessions' active
holds, hands them here with the batch's charges in rating order, and writes what comes back.
The rules (tests/wallets/test_plan.py checks them with hypothesis):

- **prepaid**: the wallet pays each rated amount exactly — a negative delta (a tier that got
  cheaper) credits it back; a wallet that cannot cover a charge goes negative (the shortfall
  stays visible);
- **hybrid**, "wallet pays first": a positive amount is paid up to the available balance (never
  below zero), the rest accrues for the invoice; a negative delta is settlement's business;
- **hold draw-down**: an active hold whose reference is the event's session pays first, up to what
  is left of it, moving that much from held to spent;
- **thresholds**: each low-balance threshold the available balance falls below with an entry fires
  once, on that entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import NamedTuple

ZERO = Decimal(0)


class RatedCharge(NamedTuple):
    """A rated event of a prepaid or hybrid subscription, to settle against the wallet now."""

    rated_event_id: int
    tenant_id: int
    customer_id: int
    currency: str
    billing_mode: str  # "prepaid" | "hybrid"
    amount: Decimal
    session: str = ""  # the event's session_id dimension: an active hold with that reference pays first
    event_id: str = ""


class WalletState(NamedTuple):
    id: int
    tenant_id: int
    balance: Decimal
    held: Decimal
    thresholds: tuple[Decimal, ...] = ()

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


class HoldState(NamedTuple):
    id: int
    amount: Decimal
    drawn: Decimal


class PlannedEntry(NamedTuple):
    """One debit entry of the wallet ledger, with the running figures after it."""

    tenant_id: int
    wallet_id: int
    amount: Decimal  # −debit
    held_change: Decimal  # −draw
    balance_after: Decimal
    held_after: Decimal
    hold_id: int | None
    rated_event_id: int
    reference: str
    idempotency_key: str


class PlannedAlert(NamedTuple):
    entry: int  # index in DebitPlan.entries
    tenant_id: int
    wallet_id: int
    threshold: Decimal
    available_before: Decimal
    available_after: Decimal


class DebitPlan(NamedTuple):
    entries: list[PlannedEntry]
    alerts: list[PlannedAlert]
    wallets: dict[int, WalletState]  # every wallet read, after the batch (moved or not)
    holds: dict[int, HoldState]  # every hold read, after the batch


def crossed(thresholds: Sequence[Decimal], before: Decimal, after: Decimal) -> list[Decimal]:
    """Thresholds the available balance fell below with this change (once per crossing)."""
    return [t for t in thresholds if before >= t > after]


def debits_plan(
    charges: Sequence[RatedCharge],
    wallets: Mapping[tuple[int, str], WalletState],
    holds: Mapping[tuple[int, str], HoldState],
) -> DebitPlan:
    """`wallets` by (customer, currency), each charge's wallet among them; `holds` by (wallet id,
    reference): the oldest active hold of each session the charges name."""
    state = {w.id: w for w in wallets.values()}
    hold_state = {h.id: h for h in holds.values()}
    entries: list[PlannedEntry] = []
    alerts: list[PlannedAlert] = []
    for charge in charges:
        wallet = state[wallets[(charge.customer_id, charge.currency)].id]
        available = wallet.balance - wallet.held
        if charge.billing_mode == "prepaid":
            debit = charge.amount
        else:  # hybrid: the wallet pays first until it is empty; negative deltas are settlement's
            debit = min(charge.amount, max(available, ZERO)) if charge.amount > 0 else ZERO
        if not debit:
            continue
        hold = None
        if charge.session:
            found = holds.get((wallet.id, charge.session))
            hold = hold_state[found.id] if found is not None else None
        draw = min(debit, hold.amount - hold.drawn) if hold is not None and debit > 0 else ZERO
        if draw:
            hold_state[hold.id] = hold._replace(drawn=hold.drawn + draw)
        balance, held = wallet.balance - debit, wallet.held - draw
        state[wallet.id] = wallet = wallet._replace(balance=balance, held=held)
        entries.append(
            PlannedEntry(
                wallet.tenant_id, wallet.id, -debit, -draw, balance, held, hold.id if draw else None,
                charge.rated_event_id, charge.event_id[:200], f"rated:{charge.rated_event_id}",
            )
        )
        for threshold in crossed(wallet.thresholds, available, balance - held):
            alerts.append(PlannedAlert(len(entries) - 1, wallet.tenant_id, wallet.id, threshold, available, balance - held))
    return DebitPlan(entries, alerts, state, hold_state)


class AdjustmentPlan(NamedTuple):
    """An operator's adjustment of a wallet, before it is written: the figures either side and
    whether the negative-balance rule refuses it."""

    balance_before: Decimal
    balance_after: Decimal
    available_after: Decimal
    goes_negative: bool  # a debit that leaves the balance below zero
    refused: bool  # goes_negative and the operator did not explicitly allow a negative balance


def adjustment_plan(*, balance: Decimal, held: Decimal, amount: Decimal, allow_negative_balance: bool) -> AdjustmentPlan:
    """The rule: an adjustment that takes the balance below zero (a debit ending under zero) is
    refused unless a negative balance is explicitly allowed; a credit is never refused, even if
    the balance stays negative after it (it only reduces a shortfall)."""
    after = balance + amount
    goes_negative = amount < 0 and after < 0
    return AdjustmentPlan(balance, after, after - held, goes_negative, goes_negative and not allow_negative_balance)

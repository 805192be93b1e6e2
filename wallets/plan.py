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
  once, on that entry;
- **credit grants** (grants_allocate): a debit is paid by the wallet's grants usable at the
  batch's time first — priority, then soonest expiry (never last), then oldest — each up to its
  remaining, the rest by the paid balance; a negative delta gives back to the usable grants in
  the reverse order, each up to what it has had consumed, the rest to the paid balance (so a
  cheaper tier never turns promotional credit into paid money while the grant can take it
  back). Hybrid's "available" leaves out what grants not usable now still hold (not started,
  or expired and not yet swept): money the wallet cannot spend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
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


class GrantState(NamedTuple):
    """A credit grant of a wallet, active (or consumed: remaining 0), as the batch reads it."""

    id: int
    wallet_id: int
    priority: int
    starts_at: datetime
    expires_at: datetime | None
    amount: Decimal
    remaining: Decimal

    def usable(self, at: datetime) -> bool:
        """[starts_at, expires_at): from its expiry on, nothing may draw on it, swept or not."""
        return self.starts_at <= at and (self.expires_at is None or at < self.expires_at)


class PlannedDraw(NamedTuple):
    entry: int  # index in DebitPlan.entries
    tenant_id: int
    grant_id: int
    amount: Decimal  # > 0 taken from the grant, < 0 given back


class DebitPlan(NamedTuple):
    entries: list[PlannedEntry]
    alerts: list[PlannedAlert]
    wallets: dict[int, WalletState]  # every wallet read, after the batch (moved or not)
    holds: dict[int, HoldState]  # every hold read, after the batch
    draws: list[PlannedDraw] = []
    grants: dict[int, GrantState] = {}  # the grants the batch moved, after it


def grant_order(grant: GrantState) -> tuple:
    """Consumption order: priority (lower first), soonest expiry (never-expiring last), oldest."""
    return (grant.priority, grant.expires_at is None, grant.expires_at or grant.starts_at, grant.id)


def grants_unusable(grants: Sequence[GrantState], at: datetime) -> Decimal:
    """What grants hold that cannot be spent at `at` (not started, or expired and not yet swept)."""
    return sum((g.remaining for g in grants if not g.usable(at)), ZERO)


def grants_allocate(grants: Sequence[GrantState], debit: Decimal, at: datetime) -> list[tuple[int, Decimal]]:
    """The grants' parts of a wallet debit (−: of a credit), as (grant id, part): a positive
    debit takes from the usable grants in grant_order, each at most its remaining; a negative
    one gives back in the reverse order, each at most what it has had consumed (amount −
    remaining). What the parts do not cover is the paid balance's. Pure and exact: no rounding."""
    parts: list[tuple[int, Decimal]] = []
    usable = sorted((g for g in grants if g.usable(at)), key=grant_order)
    if debit > 0:
        left = debit
        for grant in usable:
            if left <= 0:
                break
            take = min(grant.remaining, left)
            if take > 0:
                parts.append((grant.id, take))
                left -= take
    elif debit < 0:
        left = -debit
        for grant in reversed(usable):
            if left <= 0:
                break
            back = min(grant.amount - grant.remaining, left)
            if back > 0:
                parts.append((grant.id, -back))
                left -= back
    return parts


def crossed(thresholds: Sequence[Decimal], before: Decimal, after: Decimal) -> list[Decimal]:
    """Thresholds the available balance fell below with this change (once per crossing)."""
    return [t for t in thresholds if before >= t > after]


def debits_plan(
    charges: Sequence[RatedCharge],
    wallets: Mapping[tuple[int, str], WalletState],
    holds: Mapping[tuple[int, str], HoldState],
    grants: Mapping[int, Sequence[GrantState]] | None = None,
    at: datetime | None = None,
) -> DebitPlan:
    """`wallets` by (customer, currency), each charge's wallet among them; `holds` by (wallet id,
    reference): the oldest active hold of each session the charges name; `grants` by wallet id:
    its active and consumed grants, usable or not at `at` (the batch's time)."""
    state = {w.id: w for w in wallets.values()}
    hold_state = {h.id: h for h in holds.values()}
    grant_state = {wallet_id: {g.id: g for g in wallet_grants} for wallet_id, wallet_grants in (grants or {}).items()}
    entries: list[PlannedEntry] = []
    alerts: list[PlannedAlert] = []
    draws: list[PlannedDraw] = []
    moved: dict[int, GrantState] = {}
    for charge in charges:
        wallet = state[wallets[(charge.customer_id, charge.currency)].id]
        available = wallet.balance - wallet.held
        own_grants = grant_state.get(wallet.id, {})
        if charge.billing_mode == "prepaid":
            debit = charge.amount
        else:  # hybrid: the wallet pays first until it is empty; negative deltas are settlement's
            spendable = available - (grants_unusable(list(own_grants.values()), at) if own_grants and at else ZERO)
            debit = min(charge.amount, max(spendable, ZERO)) if charge.amount > 0 else ZERO
        if not debit:
            continue
        if own_grants and at is not None:
            for grant_id, part in grants_allocate(list(own_grants.values()), debit, at):
                grant = own_grants[grant_id]
                own_grants[grant_id] = moved[grant_id] = grant._replace(remaining=grant.remaining - part)
                draws.append(PlannedDraw(len(entries), wallet.tenant_id, grant_id, part))
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
    return DebitPlan(entries, alerts, state, hold_state, draws, moved)


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

"""The invoice status lifecycle, decided by one pure function over a table of allowed moves (no
Django, no database: billing.invoices.services locks the invoice row, asks `transition_plan`,
then writes what it says).

    draft ──finalize──► finalized ──pay──────────────► paid
      │                    │  └──mark_uncollectible──► uncollectible ──pay (a late payment)──► paid
      └──void──► void ◄────┴──void────────────────────────┘

A paid or void invoice takes no further move. Retries are no-ops, never errors: finalizing an
invoice that was finalized already (finalized, paid, uncollectible), paying a paid invoice with
the same reference, marking uncollectible again with the same reason. A retry that disagrees
with what happened (paid with another reference, uncollectible for another reason) is refused
with its own code (`invoice_already_paid`, `invoice_already_uncollectible`). Every other
refusal's code names the state that refused it: `invoice_draft` (pay or write off a draft),
`invoice_paid` (void or write off a paid invoice), `invoice_void` (anything on a void one).

Voiding a document the customer was issued (finalized or uncollectible) issues a credit note
for it; voiding a draft (never issued) does not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DRAFT, FINALIZED, PAID, VOID, UNCOLLECTIBLE = "draft", "finalized", "paid", "void", "uncollectible"
STATUSES = (DRAFT, FINALIZED, PAID, VOID, UNCOLLECTIBLE)

FINALIZE, PAY, MARK_UNCOLLECTIBLE, VOID_ACTION = "finalize", "pay", "mark_uncollectible", "void"
ACTIONS = (FINALIZE, PAY, MARK_UNCOLLECTIBLE, VOID_ACTION)

# (from, action) → to. Anything not here (and not a no-op below) is refused.
MOVES: dict[tuple[str, str], str] = {
    (DRAFT, FINALIZE): FINALIZED,
    (DRAFT, VOID_ACTION): VOID,
    (FINALIZED, PAY): PAID,
    (FINALIZED, MARK_UNCOLLECTIBLE): UNCOLLECTIBLE,
    (FINALIZED, VOID_ACTION): VOID,
    (UNCOLLECTIBLE, PAY): PAID,
    (UNCOLLECTIBLE, VOID_ACTION): VOID,
}
# A void of these issues a credit note: the customer holds the document.
ISSUED = frozenset({FINALIZED, UNCOLLECTIBLE})
# Statuses with money still owed; past due_at they are overdue.
OPEN = frozenset({FINALIZED, UNCOLLECTIBLE})

_WHY = {
    DRAFT: "it is a draft: finalize it first",
    PAID: "it is paid (a paid invoice is never voided or written off; correct it with a new document)",
    VOID: "it is void",
}
_VERB = {FINALIZE: "finalize", PAY: "mark paid", MARK_UNCOLLECTIBLE: "mark uncollectible", VOID_ACTION: "void"}


@dataclass(frozen=True)
class InvoiceState:
    """What the plan needs of the invoice, read under its row lock."""

    status: str
    payment_reference: str = ""
    uncollectible_reason: str = ""


@dataclass(frozen=True)
class Transition:
    """The plan's answer. `to` is None for a no-op (the invoice already is what was asked);
    `refused` carries a stable code and a message when the move is not allowed."""

    to: str | None = None
    credit_note: bool = False
    refused: str = ""
    message: str = ""

    @property
    def is_noop(self) -> bool:
        return self.to is None and not self.refused


def transition_plan(state: InvoiceState, *, action: str, reference: str = "", reason: str = "") -> Transition:
    """The move `action` makes from `state`: a target status, a no-op, or a refusal. `reference`
    is the payment's (action pay), `reason` the write-off's (mark_uncollectible)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown invoice action {action!r}")
    status = state.status
    if action == FINALIZE and status in (FINALIZED, PAID, UNCOLLECTIBLE):
        return Transition()
    if action == PAY and status == PAID:
        if state.payment_reference == reference:
            return Transition()
        return Transition(
            refused="invoice_already_paid",
            message=f"It was marked paid already with reference {state.payment_reference!r}, not {reference!r}.",
        )
    if action == MARK_UNCOLLECTIBLE and status == UNCOLLECTIBLE:
        if state.uncollectible_reason == reason:
            return Transition()
        return Transition(
            refused="invoice_already_uncollectible",
            message=f"It was marked uncollectible already, for {state.uncollectible_reason!r}.",
        )
    target = MOVES.get((status, action))
    if target is None:
        return Transition(refused=f"invoice_{status}", message=f"Cannot {_VERB[action]} the invoice: {_WHY[status]}.")
    return Transition(to=target, credit_note=action == VOID_ACTION and status in ISSUED)


def is_overdue(*, status: str, due_at: datetime | None, now: datetime) -> bool:
    """Finalized or uncollectible, and past its due date (derived, never stored)."""
    return status in OPEN and due_at is not None and now > due_at


def payment_status(*, status: str, due_at: datetime | None, now: datetime) -> str:
    """What the customer reads: draft, due, overdue, paid, void or uncollectible (past due →
    overdue, whether finalized or written off)."""
    if is_overdue(status=status, due_at=due_at, now=now):
        return "overdue"
    return "due" if status == FINALIZED else status


def due_date(*, finalized_at: datetime, net_terms_days: int) -> datetime:
    """Net terms: due `net_terms_days` after finalization (0: due on issue)."""
    return finalized_at + timedelta(days=net_terms_days)


def finalize_after(*, settled_at: datetime, grace_hours: int) -> datetime | None:
    """When a settled invoice stops being a draft: None (finalized at once) for no grace."""
    return settled_at + timedelta(hours=grace_hours) if grace_hours > 0 else None

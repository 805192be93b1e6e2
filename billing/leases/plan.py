"""The accounting of a unit budget lease, as pure functions over frozen state (no database, no
Django). billing.leases.services locks and reads, calls these, and writes what comes back;
tests/billing/test_lease_plan.py states their laws with hypothesis.

A lease grants `leased` units of a metric's hard limit to a gateway (a money lease: an amount of
a prepaid wallet, held by a wallet hold whose `drawn` is its `consumed`; the same arithmetic). Rated events that carry
the lease's id add their units to `consumed` (the rating batch); the gateway reports `reported`
(the most it has said it used: it never shrinks). Closing it — return, or expiry at its TTL —
fixes how the grant ends, once:

    used     = min(max(reported, consumed), leased)
    returned = leased − used            (return)      expired = leased − used   (expiry)

so **used + returned + expired == leased**, always (the other of returned/expired is zero).
Units rated under the lease beyond `used` after it closed are ordinary usage, kept as `overrun`.

What a lease holds back from others (`reserved`): while active, the part not yet consumed,
leased − consumed; once closed, the part the gateway said it used that is not rated yet (events
in flight), used − consumed. Never negative. available = limit − rated units − Σ reserved.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

ZERO = Decimal(0)
ACTIVE, RETURNED, EXPIRED = "active", "returned", "expired"


class LeaseState(NamedTuple):
    status: str = ACTIVE
    leased: Decimal = ZERO
    consumed: Decimal = ZERO
    reported: Decimal = ZERO
    used: Decimal = ZERO  # fixed at close
    returned: Decimal = ZERO
    expired: Decimal = ZERO
    overrun: Decimal = ZERO  # consumed beyond `used` (closed leases only)

    @property
    def reserved(self) -> Decimal:
        if self.status == ACTIVE:
            return max(self.leased - self.consumed, ZERO)
        return max(self.used - self.consumed, ZERO)


def grant(*, requested: Decimal, minimum: Decimal, available: Decimal) -> Decimal | None:
    """Units to grant: min(requested, available), or None when that is below `minimum`."""
    granted = min(requested, max(available, ZERO))
    if granted <= 0 or granted < minimum:
        return None
    return granted


def available(*, limit: Decimal, rated: Decimal, reserved: Decimal) -> Decimal:
    """What a new lease (or a top-up) may take: limit − rated − reserved, never negative."""
    return max(limit - rated - reserved, ZERO)


def report(state: LeaseState, used: Decimal) -> LeaseState:
    """The gateway says it used `used` so far (a lower figure than before changes nothing)."""
    return state._replace(reported=max(state.reported, used))


def top_up(state: LeaseState, *, remaining: Decimal, available_units: Decimal) -> LeaseState:
    """Renewal: grant more so that leased − max(reported, consumed) reaches `remaining`, as far
    as `available_units` allows; never takes anything back. Idempotent for the same figures."""
    spent = max(state.reported, state.consumed)
    wanted = remaining - (state.leased - spent)
    extra = min(max(wanted, ZERO), max(available_units, ZERO))
    return state._replace(leased=state.leased + extra)


def close(state: LeaseState, *, status: str) -> LeaseState:
    """Return (status RETURNED) or expire (status EXPIRED) an active lease."""
    assert state.status == ACTIVE and status in (RETURNED, EXPIRED)
    used = min(max(state.reported, state.consumed), state.leased)
    rest = state.leased - used
    return state._replace(
        status=status, used=used, returned=rest if status == RETURNED else ZERO,
        expired=rest if status == EXPIRED else ZERO, overrun=max(state.consumed - used, ZERO),
    )


def consume(state: LeaseState, units: Decimal) -> LeaseState:
    """Rated units attributed to the lease (the rating batch; the same arithmetic in SQL there)."""
    consumed = state.consumed + units
    overrun = ZERO if state.status == ACTIVE else max(consumed - state.used, ZERO)
    return state._replace(consumed=consumed, overrun=overrun)


def balanced(state: LeaseState) -> bool:
    """The accounting invariant: closed, used + returned + expired == leased."""
    return state.status == ACTIVE or state.used + state.returned + state.expired == state.leased

"""Commercial terms (billing.models.terms): saving and removing discounts and tax rates so that a
settled period keeps the terms it was settled with.

A term is *in use* once an invoice was issued under it: an invoice of its subscription (a
discount) or of its customer (a tax rate) issued after the term was created. A term in use is
never edited in place — only ended (`ends_at`, not in the past: every period already settled
started before now, so each keeps it) — and never deleted: end it and create another. Checked
under the subscription's (or customer's subscriptions') row lock, the lock settlement holds, so
a settlement either sees the term as it was or the change, never half of it."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from catalog.models import Subscription

from .models import Discount, Invoice, TaxRate

EDITABLE_IN_USE = frozenset({"ends_at"})


class TermInUse(Exception):
    """The term was applied to an issued invoice: it can only be ended, not changed or removed."""

    def __init__(self, term: Model, fields: list[str] | None = None) -> None:
        self.term = term
        what = f"its {', '.join(sorted(fields))} cannot change" if fields else "it cannot be deleted"
        super().__init__(
            f"{type(term).__name__} {term.pk} was applied to an issued invoice, so {what}: set ends_at (now or later) "
            "and create a new one, so that settled periods keep the terms they were settled with."
        )


def _lock(term: Discount | TaxRate) -> None:
    if isinstance(term, Discount):
        Subscription.objects.select_for_update().filter(pk=term.subscription_id).first()
    else:
        list(Subscription.objects.select_for_update().filter(customer_id=term.customer_id).order_by("pk").values_list("pk"))


def term_in_use(term: Discount | TaxRate) -> bool:
    if term.pk is None:
        return False
    invoices = Invoice.objects.filter(issued_at__gte=term.created_at)
    if isinstance(term, Discount):
        return invoices.filter(subscription_id=term.subscription_id).exists()
    return invoices.filter(customer_id=term.customer_id).exists()


def term_save(
    *, term: Discount | TaxRate, changed: dict[str, object] | None = None, retroactive: bool = False,
    now: datetime | None = None,
) -> Discount | TaxRate:
    """Create `term` (unsaved), or apply `changed` (field → value) to a saved one. Raises
    TermInUse for a change other than `ends_at` to a term in use, ValidationError for an invalid
    term or an `ends_at` in the past on a term in use — unless `retroactive` (a correction: the
    issued invoices stay as they are; a void and reissue of a period after the new end then
    leaves the term out)."""
    now = now or timezone.now()
    with transaction.atomic():
        _lock(term)
        if term.pk is not None and changed:
            current = type(term).objects.get(pk=term.pk)
            really = {name for name, value in changed.items() if getattr(current, name) != value}
            if term_in_use(current):
                if really - EDITABLE_IN_USE:
                    raise TermInUse(current, sorted(really - EDITABLE_IN_USE))
                ends_at = changed.get("ends_at")
                if "ends_at" in really and (ends_at is None or (ends_at < now and not retroactive)):
                    raise ValidationError({"ends_at": "The term is in use: it can end now or later, not in the past "
                                                      "(a settled period keeps its terms; to correct one, send "
                                                      "retroactive: true, then void and reissue), and not be reopened."})
            for name, value in changed.items():
                setattr(term, name, value)
        term.full_clean()
        term.save()
    return term


def term_delete(*, term: Discount | TaxRate) -> None:
    with transaction.atomic():
        _lock(term)
        current = type(term).objects.get(pk=term.pk)
        if term_in_use(current):
            raise TermInUse(current)
        current.delete()

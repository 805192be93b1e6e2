"""Credit notes: the document a void of an issued invoice leaves behind (billing.invoicing).
Numbered gapless per tenant like invoices (CN-<SLUG>-000001), from their own counter row."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from catalog.models import Customer, Tenant

from .settlement import Invoice


class CreditNote(models.Model):
    """Credits `amount` (the voided invoice's total, in its currency) against `invoice`. At most
    one per invoice (an invoice is voided once): the unique invoice is the idempotency of the void."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_notes")
    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, related_name="credit_note")
    number = models.CharField(max_length=40)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=24, decimal_places=6)
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="credit_note_number_unique_per_tenant")]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="credit_note_tenant_created")]

    def __str__(self) -> str:
        return self.number


class CreditNoteCounter(models.Model):
    """The tenant's next credit note number, taken under a row lock (gapless per tenant)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.PROTECT, related_name="+", primary_key=True)
    next_number = models.PositiveIntegerField(default=1)

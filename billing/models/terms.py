"""The commercial terms settlement applies per period: discounts (a subscription's) and tax rates
(a customer's). Both are effective-dated: a term applies to the periods from the one containing
`starts_at` (empty: from the subscription's first) to the last one starting before `ends_at`
(empty: open-ended); a discount to at most `periods` of them (empty: forever). A term is never
edited once an invoice was issued under it (billing.terms): it is ended and a new one created, so
a settled period — and its reissue — keeps the terms it was settled with."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from catalog.models import Customer, Metric, Subscription, Tenant, same_tenant_check

HUNDRED = Decimal(100)


class Term(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    metric = models.ForeignKey(
        Metric, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="Only this metric's lines (empty: the whole invoice).",
    )
    starts_at = models.DateTimeField(
        null=True, blank=True, help_text="Applies from the billing period containing this instant (empty: from the first)."
    )
    ends_at = models.DateTimeField(
        null=True, blank=True, help_text="Applies to periods starting before this instant (empty: open-ended)."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        abstract = True

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "Must be after starts_at."
        if errors:
            raise ValidationError(errors)


class TaxRate(Term):
    """A tax the customer pays on the discounted subtotal; several apply side by side (not
    compounding). With a metric, the rate applies to that metric's lines instead of the
    customer's general rates (a jurisdiction taxing one service differently); invoice-wide
    discounts are shared among the taxed parts in proportion to their amounts."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="tax_rates")
    name = models.CharField(max_length=100)
    percent = models.DecimalField(max_digits=7, decimal_places=4, help_text="20 = 20 %; from 0 to 100.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} {self.percent}%"

    def clean(self) -> None:
        super().clean()
        same_tenant_check(self, ("customer", "metric"))
        if self.percent is not None and not (Decimal(0) <= self.percent <= HUNDRED):
            raise ValidationError({"percent": "Must be from 0 to 100."})
        if not (self.name or "").strip():
            raise ValidationError({"name": "Is required (it is printed on the invoice)."})


class Discount(Term):
    """A subscription's discount, applied in `position` order, never taking what it discounts
    below zero: a percentage of what remains (of the invoice, or of its metric's lines), or a
    fixed amount once per period (on the final run)."""

    class Kind(models.TextChoices):
        PERCENT = "percent"
        FIXED = "fixed"

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="discounts")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.DecimalField(max_digits=20, decimal_places=6, help_text="Percent (10 = 10%), or an amount.")
    position = models.PositiveIntegerField(default=0, help_text="Discounts apply in this order (then by id).")
    description = models.CharField(max_length=200, blank=True)
    periods = models.PositiveIntegerField(
        null=True, blank=True, help_text="For this many billing periods from its first (empty: forever)."
    )

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.value}{'%' if self.kind == self.Kind.PERCENT else ''} off"

    def clean(self) -> None:
        super().clean()
        same_tenant_check(self, ("subscription", "metric"))
        if self.value is not None:
            if self.value <= 0:
                raise ValidationError({"value": "Must be more than zero."})
            if self.kind == self.Kind.PERCENT and self.value > HUNDRED:
                raise ValidationError({"value": "A percentage must be at most 100."})
        if self.periods is not None and self.periods < 1:
            raise ValidationError({"periods": "Must be at least 1 (empty: forever)."})


class Coupon(models.Model):
    """A customer's coupon: an amount in one currency, taken off the customer's invoices (after
    the discounts, before tax) until it is used up or expires — what one invoice does not use
    carries over to the next. What it gave is recorded per invoice (CouponRedemption); a void
    invoice gives its part back (its reissue takes it again)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="coupons")
    code = models.CharField(max_length=64, blank=True, default="", help_text="Printed on the invoice (e.g. WELCOME50).")
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=20, decimal_places=6, help_text="What it is worth in all.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="No invoice issued from then on uses it (empty: never).")
    description = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="coupon_amount_positive")]
        indexes = [models.Index(fields=["customer", "currency"])]

    def __str__(self) -> str:
        return self.code or f"coupon {self.pk}"

    def clean(self) -> None:
        super().clean()
        same_tenant_check(self, ("customer",))
        if self.amount is not None and self.amount <= 0:
            raise ValidationError({"amount": "Must be more than zero."})


class CouponRedemption(models.Model):
    """What a coupon gave one invoice (written with the invoice, in settlement's transaction)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="redemptions")
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT, related_name="coupon_redemptions")
    amount = models.DecimalField(max_digits=20, decimal_places=6)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["coupon", "invoice"], name="coupon_redemption_once_per_invoice"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="coupon_redemption_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of {self.coupon_id} on {self.invoice_id}"

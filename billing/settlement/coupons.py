"""Coupons in settlement: the read (under the coupons' row locks, so two subscriptions of one
customer never spend the same balance) and the write of what this invoice took. The Discount
stage applies them (discount.apply_coupons)."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Q, Sum

from ..models import Coupon, CouponRedemption, Invoice
from .context import ZERO, CouponBalance, SettlementContext
from .discount import apply_coupons


def coupons_read(context: SettlementContext, *, excluding_invoice: int | None = None) -> None:
    """The customer's coupons in the invoice's currency that have not expired by the settlement's
    time, locked, with what they have left: their amount less what invoices not void took
    (less `excluding_invoice`'s: the one a reissue replaces gives its part back)."""
    subscription = context.subscription
    coupons = list(
        Coupon.objects.select_for_update()
        .filter(customer_id=subscription.customer_id, currency=context.currency)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=context.now))
        .order_by("id")
    )
    if not coupons:
        return
    taken = CouponRedemption.objects.filter(coupon__in=coupons).exclude(invoice__status=Invoice.Status.VOID)
    if excluding_invoice is not None:
        taken = taken.exclude(invoice_id=excluding_invoice)
    used = dict(taken.values("coupon_id").annotate(total=Sum("amount")).values_list("coupon_id", "total"))
    far = context.now.replace(year=9999)
    for coupon in sorted(coupons, key=lambda c: (c.expires_at or far, c.pk)):
        remaining = coupon.amount - (used.get(coupon.pk) or ZERO)
        if remaining > ZERO:
            context.coupons.append(CouponBalance(coupon.pk, coupon.code or f"#{coupon.pk}", remaining))


def run(context: SettlementContext) -> None:
    """The coupon stage of a combined invoice (pipeline.INVOICE_STAGES): the customer's coupons
    once, over all its parts' lines after each part's discounts. (A one-part invoice takes them
    in its Discount stage, with the same arithmetic.)"""
    remaining = apply_coupons(context, context.total())
    context.log("coupons", coupons=[f"{c} from {i}" for i, c in context.coupon_redemptions], subtotal=remaining)


def coupon_redemptions_write(context: SettlementContext, invoice: Invoice) -> None:
    CouponRedemption.objects.bulk_create(
        CouponRedemption(tenant_id=invoice.tenant_id, coupon_id=coupon_id, invoice=invoice, amount=amount, created_at=context.now)
        for coupon_id, amount in context.coupon_redemptions
    )


def coupon_remaining(coupon: Coupon) -> Decimal:
    """What a coupon has left now (the API and the admin)."""
    taken = coupon.redemptions.exclude(invoice__status=Invoice.Status.VOID).aggregate(total=Sum("amount"))["total"]
    return coupon.amount - (taken or ZERO)

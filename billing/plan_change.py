"""A plan change (upgrade or downgrade) at an instant: the subscription ends there and its
successor — the same customer, billing mode, cadence, anchor, currency and terms, on the new rate
plan — starts there (`changed_from` links them). Events before the instant rate on the old plan's
version, events from it on the new one's: enrichment resolves the subscription active at each
event's timestamp, so running totals split at the instant. The period it falls in is settled
once, into one invoice in two parts (billing.settlement.parts: when the period is over for the
successor), each part with its fixed fees and minimum commitment prorated by time
(SettlementContext.prorated: to the microsecond, as Stripe prorates by the second); usage is
charged as rated on each side. Open discounts move to the successor with their start, so a
"10 % for 3 periods" keeps counting from where it began.

Never backdated: events already rated on the old plan would have to be re-rated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog import services as catalog_services
from catalog.models import Offering, RatePlan, Subscription
from catalog.terms import terms_versions_carry_over

from .models import Discount

COPIED_TERMS = (
    "billing_mode", "billing_cadence", "billing_anchor", "currency", "min_commitment", "spend_cap", "spend_cap_action",
    "invoice_threshold", "net_terms_days", "invoice_grace_hours", "customer_may_change_plan",
)  # the settlement terms then come from the versions in effect at the change (catalog.terms)


class PlanChangeRefused(ValidationError):
    """Refused: the subscription cannot change (ended, canceled) — `__all__` — or a field is
    wrong (the plan, its offering or currency, the instant)."""


@dataclass(frozen=True)
class PlanChange:
    ended: Subscription
    started: Subscription


def plan_change(
    *, subscription: Subscription, rate_plan: RatePlan, at: datetime | None = None, offering: Offering | None = None,
    reason: str = "", now: datetime | None = None,
) -> PlanChange:
    """Change `subscription` to `rate_plan` (of `offering`, default the current one) at `at`
    (default now; never before now). One transaction under the subscription's row lock."""
    now = now or timezone.now()
    at = at or now
    offering = offering or subscription.offering
    with transaction.atomic():
        old = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if old.status == Subscription.Status.CANCELED or (old.ended_at is not None and old.ended_at <= now):
            raise PlanChangeRefused({"__all__": f"Subscription {old.pk} has ended or is canceled: start a new one."})
        errors: dict[str, str] = {}
        if rate_plan.tenant_id != old.tenant_id or offering.tenant_id != old.tenant_id:
            errors["rate_plan"] = "Must belong to the same tenant."
        elif rate_plan.offering_id != offering.pk:
            errors["rate_plan"] = f"Must be a plan of the offering {offering.code}."
        elif rate_plan.pk == old.rate_plan_id and offering.pk == old.offering_id:
            errors["rate_plan"] = "Is the subscription's plan already."
        elif rate_plan.currency != old.currency:
            errors["rate_plan"] = f"Must be in the subscription's currency ({old.currency}), not {rate_plan.currency}."
        if at < now:
            errors["at"] = "Must be now or later: a plan change is never backdated (events rated on the old plan stay so)."
        elif at <= old.started_at:
            errors["at"] = f"Must be after the subscription's start ({old.started_at:%Y-%m-%d %H:%M} UTC)."
        elif old.ended_at is not None and at >= old.ended_at:
            errors["at"] = f"Must be before the subscription's end ({old.ended_at:%Y-%m-%d %H:%M} UTC)."
        if errors:
            raise PlanChangeRefused(errors)
        successor_end = old.ended_at
        text = (reason or "").strip()[:300]
        old.status = Subscription.Status.CANCELED
        old.ended_at = at
        old.canceled_at = now
        old.canceled_reason = f"Plan change to {rate_plan.code}" + (f": {text}" if text else "")
        catalog_services.catalog_object_save(instance=old)
        new = Subscription(
            tenant_id=old.tenant_id, customer_id=old.customer_id, offering=offering, rate_plan=rate_plan,
            started_at=at, ended_at=successor_end, changed_from=old,
            **{name: getattr(old, name) for name in COPIED_TERMS},
        )
        catalog_services.catalog_object_save(instance=new)
        terms_versions_carry_over(old=old, new=new, at=at, now=now)
        for discount in Discount.objects.filter(subscription=old).filter(Q(ends_at__isnull=True) | Q(ends_at__gt=at)):
            Discount.objects.create(
                tenant_id=discount.tenant_id, subscription=new, kind=discount.kind, value=discount.value,
                metric=discount.metric, position=discount.position, description=discount.description,
                periods=discount.periods, starts_at=discount.starts_at or old.started_at, ends_at=discount.ends_at,
            )
    return PlanChange(ended=old, started=new)

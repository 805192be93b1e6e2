"""The customer's own plan change, on the dashboard, where the operator allows it
(Subscription.customer_may_change_plan): the offering's other plans in the subscription's
currency, each with its prices, switched to now or at the end of the current period
(billing.plan_change — the same change, proration and events split as the operator's)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from aforo.params import parse_id
from catalog.models import RatePlan, Subscription

from .periods import period_for
from .plan_change import PlanChangeRefused, plan_change
from .views import dashboard_customer


def _plans(subscription: Subscription):
    return (
        RatePlan.objects.filter(offering_id=subscription.offering_id, currency=subscription.currency,
                                versions__status="published")
        .exclude(pk=subscription.rate_plan_id).distinct().order_by("name")
    )


@never_cache
@login_required
def plan_page(request: HttpRequest, subscription_id: int):
    customer = dashboard_customer(request)
    if customer is None:
        raise Http404("Pick a customer first.")
    subscription = Subscription.objects.select_related("rate_plan", "offering").filter(
        pk=subscription_id, customer=customer, status=Subscription.Status.ACTIVE, customer_may_change_plan=True,
    ).first()
    if subscription is None:
        raise Http404("No plan change is offered for this subscription.")
    now = timezone.now()
    period_end = period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=max(now, subscription.started_at))[1]
    plans = list(_plans(subscription))
    error = ""
    if request.method == "POST":
        chosen = next((plan for plan in plans if plan.pk == parse_id(request.POST.get("rate_plan"))), None)
        when = request.POST.get("when")
        if chosen is None or when not in ("now", "period_end"):
            error = "Choose one of the plans below, and when the change takes effect."
        else:
            try:
                change = plan_change(
                    subscription=subscription, rate_plan=chosen, at=period_end if when == "period_end" else now,
                    reason=f"by the customer ({request.user.get_username()})", now=now,
                )
            except PlanChangeRefused as refused:
                error = " ".join(message for messages_ in refused.message_dict.values() for message in messages_)
            else:
                messages.success(request, f"Your plan changes to {chosen.name} on {change.started.started_at:%Y-%m-%d %H:%M} UTC.")
                query = request.GET.urlencode()
                return HttpResponseRedirect(reverse("dashboard-usage") + (f"?{query}" if query else ""))
    return render(request, "dashboard/plan.html", {
        "customer": customer, "subscription": subscription, "plans": plans, "period_end": period_end, "error": error,
        "query": request.GET.urlencode(),
    }, status=400 if error else 200)

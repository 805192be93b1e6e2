"""The admin's "Change plan" (a button on the subscription's page): a confirmation page that
shows the subscription, asks for the new plan (the tenant's plans in its currency), the instant
(now or later) and an optional reason, and says what will happen — then billing.plan_change."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import reverse

from aforo.admin_pages import admin_page_register
from catalog.admin import is_unscoped, operator_tenant
from catalog.admin.confirm import confirmation_page, is_confirmed
from catalog.models import RatePlan, Subscription

from .plan_change import PlanChangeRefused, plan_change

CONSEQUENCES = (
    "This subscription ends at the instant you give and a new one on the chosen plan starts there, with the same "
    "billing anchor, mode, currency and terms; open discounts move to it and keep counting their periods.",
    "Events before the instant rate on this plan, events from it on the new one.",
    "The period the instant falls in is invoiced in two parts, each with its fixed fees and minimum commitment "
    "prorated by time (to the second); usage is charged as rated.",
)


class PlanChangeForm(forms.Form):
    rate_plan = forms.ModelChoiceField(queryset=RatePlan.objects.none(), label="New plan")
    at = forms.DateTimeField(
        required=False, label="From (UTC)", help_text="Empty: now. Never in the past (YYYY-MM-DD HH:MM).",
        widget=forms.DateTimeInput(attrs={"placeholder": "2026-12-15 00:00"}),
    )
    reason = forms.CharField(required=False, max_length=300, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))

    def __init__(self, *args, subscription: Subscription, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rate_plan"].queryset = (
            RatePlan.objects.filter(tenant_id=subscription.tenant_id, currency=subscription.currency)
            .exclude(pk=subscription.rate_plan_id).select_related("offering").order_by("offering__code", "code")
        )


def plan_change_page(request: HttpRequest, subscription_id: int):
    subscriptions = Subscription.objects.select_related("customer", "rate_plan", "offering")
    if not is_unscoped(request):
        tenant = operator_tenant(request)
        subscriptions = subscriptions.filter(tenant_id=getattr(tenant, "pk", None))
    subscription = subscriptions.filter(pk=subscription_id).first()
    if subscription is None:
        raise Http404("No such subscription in your tenant.")
    model_admin = admin.site._registry[Subscription]
    if not model_admin.has_change_permission(request, subscription):
        raise PermissionDenied("Changing a plan needs the change permission on subscriptions.")
    change_url = reverse("admin:catalog_subscription_change", args=[subscription.pk])
    form = PlanChangeForm(request.POST if is_confirmed(request) else None, subscription=subscription)
    if is_confirmed(request) and form.is_valid():
        data = form.cleaned_data
        try:
            change = plan_change(
                subscription=subscription, rate_plan=data["rate_plan"], offering=data["rate_plan"].offering,
                at=data["at"], reason=data["reason"],
            )
        except PlanChangeRefused as refused:
            for field, errors in refused.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            text = f"Plan changed to {change.started.rate_plan} from {change.started.started_at:%Y-%m-%d %H:%M:%S} UTC"
            model_admin.log_change(request, change.ended, text)
            model_admin.message_user(request, f"{text}: subscription {change.started.pk}.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:catalog_subscription_change", args=[change.started.pk]))
    return confirmation_page(
        model_admin, request, title=f"Change plan · {subscription}", original=subscription, confirm_label="Change the plan",
        cancel_url=change_url, form=form, intro="Nothing has changed yet.",
        subject_headers=("customer", "plan now", "mode", "currency", "started"),
        subject_rows=[(subscription.customer.name, str(subscription.rate_plan), subscription.get_billing_mode_display(),
                       subscription.currency, f"{subscription.started_at:%Y-%m-%d %H:%M} UTC")],
        consequences=CONSEQUENCES,
    )


admin_page_register(route="subscriptions/<int:subscription_id>/change-plan/", view=plan_change_page, name="subscription_change_plan")

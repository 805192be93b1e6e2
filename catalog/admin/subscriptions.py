"""Admin for subscriptions, with "Cancel subscription" behind its confirmation step.

Cancellation is destructive (events after the end no longer rate), so it is never a field edit:
the change form refuses setting the status to canceled and shows the end read-only once the
subscription exists; the "Cancel subscription" button opens a page that shows the subscription,
what will happen, and asks for the reason and the end (now, or a later instant), then calls
`subscription_cancel`, which stores canceled_at and canceled_reason on the subscription."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse

from .. import services
from ..models import Subscription
from .confirm import ReasonForm, confirmation_page, is_confirmed
from .scoping import TenantScopedModelAdmin
from .subscription_form import SubscriptionAdminForm

CANCEL_CONSEQUENCES = (
    "The status becomes canceled now, and the subscription ends at the end you choose: events timestamped from then "
    "on no longer rate against it (they are kept as unmatched usage).",
    "Its last, partial period is settled after the end, by the settlement sweep, like any period that is over.",
    "Your reason and the time of the cancellation are stored on the subscription; a cancellation cannot be undone "
    "(start a new subscription instead).",
)


class SubscriptionForm(SubscriptionAdminForm):  # + the backdated start's confirmation
    class Meta:
        model = Subscription
        fields = "__all__"

    def clean_status(self) -> str:
        status = self.cleaned_data["status"]
        was = self.instance.status if self.instance.pk else None
        if status == Subscription.Status.CANCELED and was != Subscription.Status.CANCELED:
            raise ValidationError(
                "Use “Cancel subscription” (on this page once saved): it asks for the reason and the end.",
                code="cancel_through_the_button",
            )
        if was == Subscription.Status.CANCELED and status != was:
            raise ValidationError("A canceled subscription stays canceled: start a new one.", code="canceled")
        return status


class SubscriptionCancelForm(ReasonForm):
    when = forms.ChoiceField(
        choices=[("now", "Now"), ("at", "At the end given below")], initial="now", widget=forms.RadioSelect,
        label="Ends",
    )
    ended_at = forms.DateTimeField(
        required=False, label="End (UTC)", widget=forms.DateTimeInput(attrs={"placeholder": "2026-12-31 23:59"}),
        help_text="Only with “At the end given below”: an instant from now on, in UTC (YYYY-MM-DD HH:MM).",
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("when") == "at" and not cleaned.get("ended_at") and "ended_at" not in self.errors:
            self.add_error("ended_at", "Give the end, or choose “Now”.")
        return cleaned


@admin.register(Subscription)
class SubscriptionAdmin(TenantScopedModelAdmin):
    form = SubscriptionForm
    change_form_template = "admin/catalog/subscription/change_form.html"
    list_display = (
        "customer", "rate_plan", "billing_mode", "billing_cadence", "status", "currency", "started_at", "ended_at",
    )
    list_select_related = ("customer", "rate_plan")
    list_filter = ("status", "billing_mode", "billing_cadence", ("rate_plan", admin.RelatedOnlyFieldListFilter))
    search_fields = ("customer__name", "customer__external_id", "rate_plan__name", "rate_plan__code")
    date_hierarchy = "started_at"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ["ended_at", "canceled_at", "canceled_reason"]  # ended through the button
        fields.append("trial_converted_at")
        if obj is not None and obj.trial_converted_at is not None:
            fields += ["trial_ends_at", "trial_metric", "trial_units"]  # a converted trial is history
        return fields

    def get_urls(self):
        name = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        return [
            path("<path:object_id>/cancel/", self.admin_site.admin_view(self.cancel_view), name=f"{name}_cancel"),
            *super().get_urls(),
        ]

    def _change_url(self, subscription: Subscription) -> str:
        return reverse(f"{self.admin_site.name}:catalog_subscription_change", args=[subscription.pk])

    def cancel_view(self, request: HttpRequest, object_id: str):
        subscription = self.get_object(request, object_id)  # confined to the operator's tenant
        if subscription is None:
            raise PermissionDenied("No such subscription in your tenant.")
        if not self.has_change_permission(request, subscription):
            raise PermissionDenied("Canceling needs the change permission on subscriptions.")
        form = SubscriptionCancelForm(request.POST if is_confirmed(request) else None)
        if is_confirmed(request) and form.is_valid():
            data = form.cleaned_data
            try:
                canceled = services.subscription_cancel(
                    subscription=subscription, reason=data["reason"],
                    ended_at=data["ended_at"] if data["when"] == "at" else None,
                )
            except ValidationError as refused:
                for field, errors in refused.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                change = f"Canceled, ending {canceled.ended_at:%Y-%m-%d %H:%M:%S} UTC: {canceled.canceled_reason}"
                self.log_change(request, canceled, change)
                self.message_user(request, f"{canceled}: {change}.", messages.SUCCESS)
                return HttpResponseRedirect(self._change_url(canceled))
        return confirmation_page(
            self, request, title=f"Cancel subscription · {subscription}", original=subscription,
            confirm_label="Cancel the subscription", cancel_url=self._change_url(subscription), form=form,
            intro="Nothing has changed yet.", subject_headers=("customer", "rate plan", "mode", "started", "status"),
            subject_rows=[(
                subscription.customer.name, str(subscription.rate_plan), subscription.get_billing_mode_display(),
                f"{subscription.started_at:%Y-%m-%d %H:%M} UTC", _status_text(subscription),
            )],
            consequences=CANCEL_CONSEQUENCES,
        )


def _status_text(subscription: Subscription) -> str:
    if subscription.status == Subscription.Status.CANCELED:
        return f"canceled already ({subscription.canceled_reason or 'no reason recorded'})"
    return subscription.get_status_display()

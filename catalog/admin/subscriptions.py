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
from django.db import transaction
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone

from .. import services
from ..models import TERMS_FIELDS, Subscription, SubscriptionTermsVersion
from ..terms import current_period_start, metric_minimums_clean, terms_version_add, terms_version_baseline
from .confirm import ReasonForm, confirmation_page, is_confirmed
from .scoping import TenantScopedModelAdmin, TenantScopedTabularInline, operator_tenant
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
        help_texts = {
            "min_commitment": "Minimum spend per period. A change to the terms is a new terms version effective now: "
            "it governs from the next billing period (add a version below to choose when).",
        }

    def clean(self):
        data = super().clean()
        if data.get("metric_minimums") is None and "metric_minimums" not in self.errors:
            data["metric_minimums"] = {}  # left empty: none
        rate_plan = data.get("rate_plan")
        if "metric_minimums" in self.changed_data and rate_plan is not None and "metric_minimums" not in self.errors:
            try:
                data["metric_minimums"] = metric_minimums_clean(rate_plan_id=rate_plan.pk, value=data.get("metric_minimums"))
            except ValidationError as refused:
                self.add_error("metric_minimums", refused.message_dict["metric_minimums"])
        return data

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


class TermsVersionForm(forms.ModelForm):
    retroactive_correction = forms.BooleanField(
        required=False, label="Retroactive",
        help_text="Tick to add a correction effective before the current billing period (then void and reissue the "
        "invoices it should change).",
    )

    class Meta:
        model = SubscriptionTermsVersion
        fields = (*TERMS_FIELDS, "effective_from", "reason")

    def clean(self):
        data = super().clean()
        subscription = self.instance.subscription
        if data.get("effective_from") and not data.get("retroactive_correction"):
            start = current_period_start(subscription=subscription, now=timezone.now())
            if data["effective_from"] < start:
                self.add_error("effective_from", f"Before the current billing period (from {start:%Y-%m-%d %H:%M} "
                                                 "UTC): the periods before keep their terms. Tick Retroactive to correct them.")
        if "metric_minimums" not in self.errors:
            try:
                data["metric_minimums"] = metric_minimums_clean(rate_plan_id=subscription.rate_plan_id,
                                                                value=data.get("metric_minimums") or {})
            except ValidationError as refused:
                self.add_error("metric_minimums", refused.message_dict["metric_minimums"])
        return data


class TermsVersionInline(TenantScopedTabularInline):
    """The versions of the subscription's terms, oldest first: read-only (append-only, like a
    published price); a new row adds a version (catalog.terms.terms_version_add). A billing
    period settles under the version in effect at its start."""

    model = SubscriptionTermsVersion
    form = TermsVersionForm
    fk_name = "subscription"
    extra = 0
    verbose_name = "terms version"
    verbose_name_plural = "Terms versions (a period settles under the version in effect at its start)"
    fields = ("effective_from", *TERMS_FIELDS, "reason", "retroactive_correction", "retroactive", "created_at")
    readonly_fields = ("retroactive", "created_at")
    ordering = ("effective_from", "id")

    def get_fields(self, request, obj=None):
        return self.fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # existing versions are shown read-only

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request, obj=None) -> bool:
        return obj is not None and super().has_add_permission(request, obj)


@admin.register(Subscription)
class SubscriptionAdmin(TenantScopedModelAdmin):
    form = SubscriptionForm
    inlines = (TermsVersionInline,)
    change_form_template = "admin/catalog/subscription/change_form.html"
    list_display = (
        "customer", "rate_plan", "billing_mode", "billing_cadence", "status", "currency", "started_at", "ended_at",
    )
    list_select_related = ("customer", "rate_plan")
    list_filter = ("status", "billing_mode", "billing_cadence", ("rate_plan", admin.RelatedOnlyFieldListFilter))
    search_fields = ("customer__name", "customer__external_id", "rate_plan__name", "rate_plan__code")
    date_hierarchy = "started_at"

    def get_inline_instances(self, request, obj=None):
        return super().get_inline_instances(request, obj) if obj is not None else []  # versions: once it exists

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ["ended_at", "canceled_at", "canceled_reason"]  # ended through the button
        fields.append("trial_converted_at")
        if obj is not None and obj.trial_converted_at is not None:
            fields += ["trial_ends_at", "trial_metric", "trial_units"]  # a converted trial is history
        return fields

    def get_changeform_initial_data(self, request):
        """A new subscription starts with the operator's tenant's default invoice terms."""
        initial = super().get_changeform_initial_data(request)
        tenant = operator_tenant(request)
        if tenant is not None:
            initial.setdefault("net_terms_days", tenant.default_net_terms_days)
            initial.setdefault("invoice_grace_hours", tenant.default_invoice_grace_hours)
        return initial

    def save_model(self, request, obj, form, change):
        """A change of the terms fields is a new terms version effective now (catalog.terms): the
        subscription is saved with its terms as they were, then the version copies them in."""
        if not change:
            with transaction.atomic():
                super().save_model(request, obj, form, change)
                terms_version_baseline(subscription=obj)
            return
        changed = {name: getattr(obj, name) for name in TERMS_FIELDS if name in form.changed_data}
        if changed:
            stored = Subscription.objects.get(pk=obj.pk)
            for name in changed:
                setattr(obj, name, getattr(stored, name))
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if changed:
                terms_version_add(subscription=obj, values=changed, reason=f"Changed in the admin by {request.user}")
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change):
        if formset.model is not SubscriptionTermsVersion:
            return super().save_formset(request, form, formset, change)
        for version_form in formset.extra_forms:
            if not version_form.has_changed() or not version_form.cleaned_data:
                continue
            data = version_form.cleaned_data
            terms_version_add(
                subscription=form.instance, values={name: data.get(name) for name in TERMS_FIELDS},
                effective_from=data["effective_from"], reason=data.get("reason") or f"Added in the admin by {request.user}",
                retroactive=bool(data.get("retroactive_correction")),
            )
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

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

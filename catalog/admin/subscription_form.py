"""The subscription's admin form: a start in the past whose periods are already over invoices them
at once (the settlement sweep), so the form asks the operator to confirm, naming the periods —
the admin's side of the API's 409 `backdated_confirmation_required`."""

from __future__ import annotations

from django import forms
from django.utils import timezone

from aforo.periods import periods_ended

from ..models import Subscription
from .scoping import TenantScopedModelForm


class SubscriptionAdminForm(TenantScopedModelForm):
    confirm_backdated = forms.BooleanField(
        required=False, label="Confirm backdated start",
        help_text="Tick to go ahead when the start lies before billing periods that are already over: they are invoiced at once.",
    )

    class Meta:
        model = Subscription
        fields = "__all__"

    def clean(self):
        data = super().clean()
        started_at, anchor = data.get("started_at"), data.get("billing_anchor")
        cadence = data.get("billing_cadence") or Subscription.Cadence.MONTHLY
        if started_at is None or anchor is None or anchor > started_at or data.get("confirm_backdated"):
            return data
        changed = self.instance.pk is None or {"started_at", "billing_anchor", "billing_cadence"} & set(self.changed_data)
        if not changed:
            return data
        now = timezone.now()
        periods = periods_ended(cadence=cadence, anchor=anchor, started_at=started_at, now=now, ended_at=data.get("ended_at"), limit=61)
        if self.instance.pk is not None:
            before = periods_ended(
                cadence=self.instance.billing_cadence, anchor=self.instance.billing_anchor,
                started_at=self.instance.started_at, now=now, ended_at=self.instance.ended_at, limit=61,
            )
            if len(periods) <= len(before):
                return data
        if periods:
            more = " or more" if len(periods) > 60 else ""
            self.add_error(
                "confirm_backdated",
                f"The start is in the past: {min(len(periods), 60)}{more} billing period(s) already over will be invoiced "
                f"at once, from {periods[0][0]:%Y-%m-%d} to {periods[-1][1]:%Y-%m-%d}. Tick to confirm.",
            )
        return data

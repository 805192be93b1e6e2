"""The wallet admin's money forms: a top-up, and the first step of an adjustment."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django import forms

from ..services import MAX_PLACES, MAX_REASON


class MoneyForm(forms.Form):
    """A top-up or an adjustment. `idempotency_key` is set once when the blank form is built
    and travels hidden with it: submitting the same rendered form twice moves money once."""

    amount = forms.DecimalField(decimal_places=MAX_PLACES)
    reference = forms.CharField(max_length=200, required=False)
    idempotency_key = forms.CharField(max_length=100, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4().hex)


class TopUpForm(MoneyForm):
    amount = forms.DecimalField(
        decimal_places=MAX_PLACES, min_value=Decimal(0),
        help_text="More than zero, in whole minor units of the wallet's currency (e.g. 0.01 USD, 1 JPY).",
    )
    reference = forms.CharField(
        max_length=200, required=False, help_text="Optional: a payment or invoice reference, shown in the ledger."
    )


class AdjustForm(MoneyForm):
    """The first step of an adjustment; the second shows the balance before and after and asks
    to confirm (wallets.admin.adjust)."""

    amount = forms.DecimalField(
        decimal_places=MAX_PLACES,
        help_text="Positive to credit the wallet, negative to debit it; not zero; in whole minor units of the "
        "wallet's currency.",
    )
    reason = forms.CharField(
        max_length=MAX_REASON, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        error_messages={"required": "A reason is required: it is stored on the ledger entry."},
        help_text="Required: why the balance is corrected. Stored on the ledger entry.",
    )
    reference = forms.CharField(
        max_length=200, required=False, help_text="Optional: a ticket, refund or payment reference."
    )
    allow_negative_balance = forms.BooleanField(
        required=False, label="Allow a negative balance",
        help_text="Tick only if this debit may take the balance below zero (the customer then owes the difference). "
        "Without it such a debit is refused.",
    )


class GrantForm(MoneyForm):
    """A credit grant given from the wallet's page (wallets.grants.credit_grant_create): consumed
    before the paid balance, in priority then expiry order."""

    name = forms.CharField(max_length=200, help_text="Shown to the customer and on invoices, e.g. “Welcome credit”.")
    kind = forms.ChoiceField(choices=[("promotional", "Promotional"), ("paid", "Paid")], initial="promotional")
    amount = forms.DecimalField(
        decimal_places=MAX_PLACES, min_value=Decimal("0.000001"),
        help_text="More than zero, in whole minor units of the wallet's currency.",
    )
    priority = forms.IntegerField(
        min_value=0, max_value=1000, initial=100, help_text="Lower is consumed first (0–1000); then the soonest expiry."
    )
    starts_at = forms.DateTimeField(
        required=False, label="Starts (UTC)", help_text="Optional: usable from then on (default: now). YYYY-MM-DD HH:MM.",
        widget=forms.DateTimeInput(attrs={"placeholder": "2026-12-01 00:00"}),
    )
    expires_at = forms.DateTimeField(
        required=False, label="Expires (UTC)", help_text="Optional: what is left then expires (a ledger entry). Empty: never.",
        widget=forms.DateTimeInput(attrs={"placeholder": "2027-03-01 00:00"}),
    )
    reason = forms.CharField(
        max_length=MAX_REASON, required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Optional: why it is granted (a campaign, a goodwill gesture), stored on the grant.",
    )
    reference = None

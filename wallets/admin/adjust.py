"""The wallet admin's "Adjust": an operator's correction of a wallet's balance, in two steps.

1. The form: amount, the required reason (stored on the ledger entry), an optional reference and
   the "allow a negative balance" box. Submitting it changes nothing: the service's preview
   checks it (minor unit, the negative-balance rule) and refusals show as form errors.
2. The confirmation: the balance and available amount before and after, the reason, what will
   happen; only its confirm button moves money (`wallet_adjust`, which re-checks the rule under
   the wallet's lock). The form's one-time idempotency key travels through both steps, so a
   confirmation submitted twice adjusts once.
"""

from __future__ import annotations

from decimal import Decimal

from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path

from aforo.money import decimal_text, money_display
from catalog.admin.confirm import confirmation_page, is_confirmed

from ..models import Wallet
from ..plan import AdjustmentPlan
from ..services import WalletError, wallet_adjust, wallet_adjustment_preview
from .forms import AdjustForm

EDIT = "_edit"


def money_text(amount: Decimal, currency: str) -> str:
    """To the currency's minor unit, with the currency; the exact figure too when it is finer (a
    balance can hold fractions of a cent from rated usage)."""
    rounded = money_display(amount, currency)
    shown = f"{rounded} {currency}"
    if Decimal(rounded.replace(",", "")) != amount:
        shown += f" (exactly {decimal_text(amount)})"
    return shown


def signed_money_text(amount: Decimal, currency: str) -> str:
    return ("+" if amount > 0 else "−") + money_text(abs(amount), currency)


class WalletAdjustAdminMixin:
    """Adds the adjust URL and view to WalletAdmin (which provides `_wallet_to_move`,
    `_money_form_page`, `_form_error` and `_report_move`)."""

    def get_urls(self):
        name = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        return [
            path("<path:object_id>/adjust/", self.admin_site.admin_view(self.adjust_view), name=f"{name}_adjust"),
            *super().get_urls(),
        ]

    def adjust_view(self, request: HttpRequest, object_id: str):
        wallet = self._wallet_to_move(request, object_id)
        form = AdjustForm(request.POST or None)
        if request.method == "POST" and EDIT not in request.POST and form.is_valid():
            data = form.cleaned_data
            try:
                if not is_confirmed(request):
                    plan = wallet_adjustment_preview(
                        tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=data["amount"], reason=data["reason"],
                        allow_negative_balance=data["allow_negative_balance"],
                    )
                    return self._adjust_confirmation(request, wallet, form, plan)
                entry, created = wallet_adjust(
                    tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=data["amount"], reason=data["reason"],
                    reference=data["reference"], allow_negative_balance=data["allow_negative_balance"],
                    idempotency_key=f"admin:{data['idempotency_key']}",
                )
            except WalletError as error:
                form.add_error(*self._form_error(form, error))
            else:
                self._report_move(request, wallet, entry, created)
                return HttpResponseRedirect(self._action_url(wallet, "change"))
        return self._money_form_page(request, wallet, form, title="Adjust", submit_label="Review the adjustment…")

    def _adjust_confirmation(self, request: HttpRequest, wallet: Wallet, form: AdjustForm, plan: AdjustmentPlan):
        data, currency = form.cleaned_data, wallet.currency
        amount = data["amount"]
        rows = [
            ("balance", money_text(plan.balance_before, currency), signed_money_text(amount, currency),
             money_text(plan.balance_after, currency)),
            ("available", money_text(wallet.available, currency), signed_money_text(amount, currency),
             money_text(plan.available_after, currency)),
        ]
        consequences = [
            f"One adjustment of {signed_money_text(amount, currency)} is appended to the wallet's ledger, with the "
            f"reason “{data['reason']}”" + (f" and the reference “{data['reference']}”." if data["reference"] else "."),
            "The ledger is append-only: to undo it, make an opposite adjustment.",
        ]
        if plan.goes_negative:
            consequences.append(
                f"The balance goes below zero ({money_text(plan.balance_after, currency)}): you allowed a negative "
                "balance, so the customer will owe the difference."
            )
        if plan.available_after < 0 <= wallet.available:
            consequences.append("The available balance goes below zero: active holds are no longer covered.")
        carry = [
            ("amount", decimal_text(amount)), ("reason", data["reason"]), ("reference", data["reference"]),
            ("idempotency_key", data["idempotency_key"]),
        ]
        if data["allow_negative_balance"]:
            carry.append(("allow_negative_balance", "on"))
        return confirmation_page(
            self, request, title=f"Confirm the adjustment · {wallet}", original=wallet,
            confirm_label=f"Confirm: adjust by {signed_money_text(amount, currency)}",
            cancel_url=self._action_url(wallet, "change"), intro="Nothing has changed yet. Check the figures:",
            subject_headers=("", "before", "change", "after"), subject_rows=rows, consequences=consequences,
            carry=carry, back=(EDIT, "Change the figures"),
        )


"""Credit grants in the operator admin: a read-only list (granting and voiding go through the
services: the API, or "Void selected" here, which records its reason), each grant with its
draws — which ledger entry, rated event or invoice took what from it."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from aforo.money import decimal_text
from catalog.admin.ledger import written_date_filter
from metering.admin import LedgerAdmin, admin_link, exact_decimal

from ..grants import credit_grant_void
from ..models import CreditGrant
from ..services import WalletError
from .ledger import WalletCurrencyFilter, _wallet_link

SHOWN_DRAWS = 50


class VoidReasonForm(admin.helpers.ActionForm):
    reason = forms.CharField(required=False, max_length=500, help_text="Why (required to void).")


@admin.register(CreditGrant)
class CreditGrantAdmin(LedgerAdmin):
    list_display = (
        "id", "wallet_link", "name", "kind", "status", "priority", "amount_exact", "remaining_exact", "starts_at",
        "expires_at", "created_at",
    )
    list_select_related = ("wallet__customer",)
    list_filter = ("status", "kind", WalletCurrencyFilter, written_date_filter("created_at", "created"))
    search_fields = ("=name", "=idempotency_key", "=wallet__customer__external_id")
    ordering = ("-id",)
    readonly_fields = ("wallet_link", "amount_exact", "remaining_exact", "draws")
    fields = (
        "wallet_link", "name", "kind", "status", "priority", "amount_exact", "remaining_exact", "starts_at", "expires_at",
        "reason", "void_reason", "idempotency_key", "created_at", "resolved_at", "draws",
    )
    action_form = VoidReasonForm
    actions = ("void_selected",)
    amount_exact = exact_decimal("amount")
    remaining_exact = exact_decimal("remaining")

    @admin.display(description="wallet")
    def wallet_link(self, grant: CreditGrant) -> str:
        return _wallet_link(self, grant.wallet)

    @admin.display(description="draws (newest first)")
    def draws(self, grant: CreditGrant) -> str:
        draws = list(grant.draws.order_by("-id")[:SHOWN_DRAWS])
        if not draws:
            return "None."
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((admin_link(self.admin_site, "wallets_walletentry", d.entry_id, f"#{d.entry_id}"), decimal_text(d.amount),
              d.rated_event_id or "", d.invoice_id or "") for d in draws),
        )
        return format_html("<table><thead><tr><th>entry</th><th>taken (−: given back)</th><th>rated event</th>"
                           "<th>invoice</th></tr></thead><tbody>{}</tbody></table>", rows)

    def has_void_permission(self, request) -> bool:
        return request.user.has_perm("wallets.change_wallet")

    @admin.action(description="Void selected grants (what they have left leaves the wallet)", permissions=["void"])
    def void_selected(self, request, queryset) -> None:
        reason = request.POST.get("reason", "")
        for grant in queryset.order_by("id")[:50]:
            try:
                _, changed = credit_grant_void(tenant_id=grant.tenant_id, grant_id=grant.pk, reason=reason)
            except WalletError as error:
                self.message_user(request, f"Grant #{grant.pk}: {error.message}", messages.ERROR)
                continue
            self.message_user(request, f"Grant #{grant.pk} {'voided' if changed else 'was already void'}.", messages.SUCCESS)

"""The wallet ledger, holds and low-balance alerts: read-only lists, and "release selected"
on holds (`hold_release`)."""

from __future__ import annotations

from django.contrib import admin, messages

from aforo.money import decimal_text
from catalog.admin import is_unscoped, operator_tenant, tenant_confine
from metering.admin import LedgerAdmin, admin_link, exact_decimal

from ..models import Hold, LowBalanceAlert, Wallet, WalletEntry
from ..holds import hold_release
from ..services import WalletError

REPORTED_HOLDS = 50  # per-hold messages of one "release selected" (then a summary only)


class WalletCurrencyFilter(admin.SimpleListFilter):
    """Rows by their wallet's currency; the choices come from the (small) wallet table of the
    operator's tenant, never from a DISTINCT over the ledger."""

    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        wallets = Wallet.objects.all()
        if not is_unscoped(request):
            wallets = tenant_confine(wallets, tenant=operator_tenant(request))
        return [(code, code) for code in wallets.order_by("currency").values_list("currency", flat=True).distinct()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(wallet__currency=self.value())
        return queryset


def _wallet_link(model_admin: admin.ModelAdmin, wallet: Wallet) -> str:
    return admin_link(model_admin.admin_site, "wallets_wallet", wallet.pk, f"{wallet.customer.name} · {wallet.currency}")


@admin.register(WalletEntry)
class WalletEntryAdmin(LedgerAdmin):
    list_display = (
        "id", "created_at", "wallet_link", "kind", "amount_exact", "held_change_exact", "balance_after_exact",
        "hold_link", "rated_event_link", "reference", "idempotency_key",
    )
    list_select_related = ("wallet__customer",)
    list_filter = ("kind", WalletCurrencyFilter)
    search_fields = ("=reference", "idempotency_key", "=wallet__customer__external_id")
    date_hierarchy = "created_at"
    ordering = ("-id",)
    readonly_fields = (
        "wallet_link", "amount_exact", "held_change_exact", "balance_after_exact", "held_after_exact", "hold_link",
        "rated_event_link",
    )
    fields = (
        "wallet_link", "kind", "amount_exact", "held_change_exact", "balance_after_exact", "held_after_exact",
        "hold_link", "rated_event_link", "reference", "idempotency_key", "created_at",
    )
    amount_exact = exact_decimal("amount")
    held_change_exact = exact_decimal("held_change")
    balance_after_exact = exact_decimal("balance_after")
    held_after_exact = exact_decimal("held_after")

    @admin.display(description="wallet", ordering="wallet__customer__name")
    def wallet_link(self, entry: WalletEntry) -> str:
        return _wallet_link(self, entry.wallet)

    @admin.display(description="hold")
    def hold_link(self, entry: WalletEntry) -> str:
        return admin_link(self.admin_site, "wallets_hold", entry.hold_id, f"hold #{entry.hold_id}") if entry.hold_id else "—"

    @admin.display(description="rated event")
    def rated_event_link(self, entry: WalletEntry) -> str:
        if entry.rated_event_id is None:
            return "—"
        return admin_link(self.admin_site, "billing_ratedevent", entry.rated_event_id, f"rated #{entry.rated_event_id}")


@admin.register(Hold)
class HoldAdmin(LedgerAdmin):
    """Holds change only through the services (API, rated events, the expiry sweep) and the
    "release selected" action here."""

    list_display = (
        "id", "wallet_link", "status", "amount_exact", "drawn_exact", "remaining_exact", "committed_amount_exact",
        "reference", "expires_at", "resolved_at",
    )
    list_select_related = ("wallet__customer",)
    list_filter = ("status", WalletCurrencyFilter)
    search_fields = ("=reference", "=idempotency_key", "=wallet__customer__external_id")
    date_hierarchy = "created_at"
    ordering = ("-id",)
    readonly_fields = ("wallet_link", "amount_exact", "drawn_exact", "remaining_exact", "committed_amount_exact")
    fields = (
        "wallet_link", "status", "reference", "idempotency_key", "amount_exact", "drawn_exact", "remaining_exact",
        "committed_amount_exact", "expires_at", "created_at", "resolved_at",
    )
    actions = ("release_selected",)
    amount_exact = exact_decimal("amount")
    drawn_exact = exact_decimal("drawn")

    @admin.display(description="wallet", ordering="wallet__customer__name")
    def wallet_link(self, hold: Hold) -> str:
        return _wallet_link(self, hold.wallet)

    @admin.display(description="remaining")
    def remaining_exact(self, hold: Hold) -> str:
        return decimal_text(hold.remaining)

    @admin.display(description="committed", ordering="committed_amount")
    def committed_amount_exact(self, hold: Hold) -> str:
        return "—" if hold.committed_amount is None else decimal_text(hold.committed_amount)

    def has_release_permission(self, request) -> bool:
        return request.user.has_perm("wallets.change_hold")

    @admin.action(description="Release selected holds (give their reservation back, charge nothing)", permissions=["release"])
    def release_selected(self, request, queryset):
        # `queryset` is already confined to the operator's tenant; each hold names its own.
        holds = list(queryset.select_related("wallet").order_by("id"))
        released = 0
        for index, hold in enumerate(holds):
            level, text = self._release(hold)
            released += level == messages.SUCCESS
            if index < REPORTED_HOLDS:
                self.message_user(request, text, level)
        summary = f"Released {released} of {len(holds)} selected hold(s)."
        if len(holds) > REPORTED_HOLDS:
            summary += f" (Messages for the first {REPORTED_HOLDS} only.)"
        self.message_user(request, summary, messages.INFO)

    def _release(self, hold: Hold) -> tuple[int, str]:
        name = f"Hold #{hold.pk} ({hold.reference})"
        try:
            released, changed = hold_release(tenant_id=hold.tenant_id, hold_id=hold.pk)
        except WalletError as error:
            if error.code == "hold_expired":
                return messages.WARNING, f"{name} was past its expiry: expired, not released (its reservation is back either way)."
            return messages.ERROR, f"{name} not released: {error.message}"
        if not changed:
            return messages.WARNING, f"{name} was already released."
        back = decimal_text(released.amount - released.drawn)
        return messages.SUCCESS, f"{name} released: {back} {hold.wallet.currency} back to the available balance."


@admin.register(LowBalanceAlert)
class LowBalanceAlertAdmin(LedgerAdmin):
    list_display = (
        "created_at", "wallet_link", "threshold_exact", "available_before_exact", "available_after_exact", "entry_link",
    )
    list_select_related = ("wallet__customer",)
    list_filter = (WalletCurrencyFilter,)
    search_fields = ("wallet__customer__name", "=wallet__customer__external_id")
    date_hierarchy = "created_at"
    ordering = ("-id",)
    readonly_fields = ("wallet_link", "threshold_exact", "available_before_exact", "available_after_exact", "entry_link")
    fields = readonly_fields + ("created_at",)
    threshold_exact = exact_decimal("threshold")
    available_before_exact = exact_decimal("available_before")
    available_after_exact = exact_decimal("available_after")

    @admin.display(description="wallet", ordering="wallet__customer__name")
    def wallet_link(self, alert: LowBalanceAlert) -> str:
        return _wallet_link(self, alert.wallet)

    @admin.display(description="entry")
    def entry_link(self, alert: LowBalanceAlert) -> str:
        return admin_link(self.admin_site, "wallets_walletentry", alert.entry_id, f"entry #{alert.entry_id}")

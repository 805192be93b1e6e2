"""The wallet ledger, holds and low-balance alerts: read-only lists, and "release selected"
on holds (`hold_release`)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Q

from aforo.money import decimal_text
from catalog.admin import is_unscoped, operator_tenant, tenant_confine
from catalog.admin.ledger import tenant_ids, written_date_filter
from catalog.models import Customer
from metering.admin import LedgerAdmin, admin_link, exact_decimal
from metering.models import RawEvent

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
    list_prefetch_related = ("wallet__customer",)
    list_filter = ("kind", WalletCurrencyFilter, written_date_filter("created_at", "created"))
    search_fields = (
        "rated_event_id", "wallet__customer__external_id", "wallet__customer__name", "reference", "idempotency_key",
    )
    search_help_text = (
        "A rated event's id or its event id (its debit), a customer's external id or exact name (their wallets), "
        "or the reference or idempotency key of a top-up, hold or adjustment."
    )
    ordering = ("-id",)
    readonly_fields = (
        "wallet_link", "amount_exact", "held_change_exact", "balance_after_exact", "held_after_exact", "hold_link",
        "rated_event_link",
    )
    fields = (
        "wallet_link", "kind", "amount_exact", "held_change_exact", "balance_after_exact", "held_after_exact",
        "hold_link", "rated_event_link", "reference", "reason", "idempotency_key", "created_at",
    )
    amount_exact = exact_decimal("amount")
    held_change_exact = exact_decimal("held_change")
    balance_after_exact = exact_decimal("balance_after")
    held_after_exact = exact_decimal("held_after")

    def search_filter(self, request, term: str) -> Q:
        """The first kind of identifier `term` is, each found through an index: a rated event's id
        or an event id (the debit, by its rated_event index), a customer (their wallets'
        (wallet, -id) index, the customer resolved in the catalog first), else a reference or an
        idempotency key of the entries that are not debits (the partial (tenant, id) index of non-debits; a debit's
        reference is its event id, found the first way)."""
        tenants = tenant_ids(request)
        if term.isdigit() and len(term) < 19:
            return Q(rated_event_id=int(term))
        raw_ids = list(RawEvent.objects.filter(tenant_id__in=tenants, event_id=term).values_list("pk", flat=True))
        if raw_ids:  # through the rated event's unique raw_event_id (billing's model, by relation only)
            return Q(rated_event__raw_event_id__in=raw_ids)
        customers = Customer.objects.filter(Q(external_id=term) | Q(name__iexact=term), tenant_id__in=tenants)
        wallets = list(Wallet.objects.filter(customer__in=customers.values("pk")).values_list("pk", flat=True))
        if wallets:
            return Q(wallet_id__in=wallets)
        keys = [term, *(f"{kind}:{term}" for kind in WalletEntry.Kind.values)]  # stored as "<kind>:<the caller's key>"
        not_debit = ~Q(kind=WalletEntry.Kind.DEBIT)
        return Q(Q(reference=term) | Q(idempotency_key__in=keys), not_debit, tenant_id__in=tenants)

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
    list_filter = ("status", WalletCurrencyFilter, written_date_filter("created_at", "created"))
    search_fields = ("=reference", "=idempotency_key", "=wallet__customer__external_id")
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
    list_filter = (WalletCurrencyFilter, written_date_filter("created_at", "created"))
    search_fields = ("wallet__customer__name", "=wallet__customer__external_id")
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

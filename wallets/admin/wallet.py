"""The wallet admin: figures read-only, thresholds editable, and the Top up / Adjust forms."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from aforo.money import currency_is_valid
from aforo.money import decimal_text
from catalog.admin import TenantScopedModelAdmin
from catalog.admin.scoping import TenantScopedModelForm, adopt_saved
from metering.admin import admin_link, exact_decimal

from ..models import Hold, Wallet, WalletEntry
from ..grants import credit_grant_create
from ..services import WalletError, wallet_create, wallet_thresholds_set, wallet_top_up
from .adjust import WalletAdjustAdminMixin
from .forms import GrantForm, TopUpForm

SHOWN_ON_WALLET_PAGE = 20  # recent entries and active holds listed on a wallet's page


def _utc_text(moment: datetime) -> str:
    return f"{moment.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M:%S}"


class ThresholdsField(forms.CharField):
    """Low-balance thresholds typed as "100, 10": decimals ≥ 0, stored as the wallet's JSON list
    of decimal strings, highest first (the form `wallet_create` stores)."""

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return ", ".join(str(threshold) for threshold in value)
        return value

    def to_python(self, value) -> list[str]:
        text = super().to_python(value)
        thresholds: set[Decimal] = set()
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            try:
                threshold = Decimal(part)
            except InvalidOperation:
                raise ValidationError(f"{part!r} is not a decimal number.") from None
            if not threshold.is_finite() or threshold < 0:
                raise ValidationError(f"{part}: a threshold is a decimal of 0 or more.")
            thresholds.add(threshold)
        return [decimal_text(threshold) for threshold in sorted(thresholds, reverse=True)]


class WalletForm(TenantScopedModelForm):
    low_balance_thresholds = ThresholdsField(
        required=False,
        help_text="Available-balance levels, comma-separated (e.g. 100, 10): crossing one downwards records a low-balance alert.",
    )

    class Meta:
        model = Wallet
        fields = "__all__"

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        if not currency_is_valid(currency):
            raise ValidationError(
                "Not an active ISO 4217 currency code (e.g. USD, EUR, JPY); XXX and XTS are not money.",
                code="invalid_currency",
            )
        return currency


class ShortfallFilter(admin.SimpleListFilter):
    """Wallets whose available balance is negative: a prepaid shortfall the operator must see."""

    title = "available"
    parameter_name = "available"

    def lookups(self, request, model_admin):
        return [("negative", "Negative (shortfall)"), ("held", "With money held")]

    def queryset(self, request, queryset):
        if self.value() == "negative":
            return queryset.filter(balance__lt=F("held"))
        if self.value() == "held":
            return queryset.filter(held__gt=0)
        return queryset


@admin.register(Wallet)
class WalletAdmin(WalletAdjustAdminMixin, TenantScopedModelAdmin):
    """Figures are read-only (derived from the ledger); thresholds are the only editable field.
    New wallets go through `wallet_create` (one per customer and currency)."""

    form = WalletForm
    change_form_template = "admin/wallets/wallet/change_form.html"
    list_display = (
        "customer", "currency", "balance_exact", "held_exact", "available_exact", "updated_at", "top_up_link",
    )
    list_select_related = ("customer",)
    list_filter = ("currency", ShortfallFilter)
    search_fields = ("customer__name", "customer__external_id", "customer__email")
    ordering = ("customer__name", "currency", "id")
    balance_exact = exact_decimal("balance")
    held_exact = exact_decimal("held")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["customer", "currency", "low_balance_thresholds"]
        return [
            "customer", "currency", "balance_exact", "held_exact", "available_exact", "low_balance_thresholds",
            "created_at", "updated_at", "credit_grants", "active_holds", "recent_entries",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "customer", "currency", "balance_exact", "held_exact", "available_exact", "created_at", "updated_at",
            "credit_grants", "active_holds", "recent_entries",
        ]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its ledger refers to it, forever

    @admin.display(description="available")
    def available_exact(self, wallet: Wallet) -> str:
        available = wallet.available
        if available < 0:
            return format_html('<strong style="color: var(--error-fg)">{} (shortfall)</strong>', decimal_text(available))
        return decimal_text(available)

    @admin.display(description="")
    def top_up_link(self, wallet: Wallet) -> str:
        return format_html('<a href="{}">Top up</a>', self._action_url(wallet, "top_up"))

    @admin.display(description="active holds")
    def active_holds(self, wallet: Wallet) -> str:
        holds = list(wallet.holds.filter(status=Hold.Status.ACTIVE).order_by("expires_at", "id")[:SHOWN_ON_WALLET_PAGE])
        if not holds:
            return "None."
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (admin_link(self.admin_site, "wallets_hold", h.pk, f"#{h.pk}"), h.reference, decimal_text(h.amount),
                 decimal_text(h.remaining), _utc_text(h.expires_at))
                for h in holds
            ),
        )
        every = self._changelist_link("wallets_hold", "all active holds →", wallet__id__exact=wallet.pk, status__exact="active")
        return format_html(
            "<table><thead><tr><th>hold</th><th>reference</th><th>amount</th><th>remaining</th><th>expires at (UTC)</th>"
            "</tr></thead><tbody>{}</tbody></table><p>{}</p>", rows, every,
        )

    @admin.display(description="credit grants")
    def credit_grants(self, wallet: Wallet) -> str:
        grants = list(wallet.grants.order_by("-id")[:SHOWN_ON_WALLET_PAGE])
        if not grants:
            return "None."
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (admin_link(self.admin_site, "wallets_creditgrant", g.pk, f"#{g.pk} {g.name}"), g.kind, g.status, g.priority,
                 decimal_text(g.amount), decimal_text(g.remaining), _utc_text(g.expires_at) if g.expires_at else "never")
                for g in grants
            ),
        )
        every = self._changelist_link("wallets_creditgrant", "all its grants →", wallet__id__exact=wallet.pk)
        return format_html(
            "<table><thead><tr><th>grant</th><th>kind</th><th>status</th><th>priority</th><th>amount</th><th>remaining</th>"
            "<th>expires at (UTC)</th></tr></thead><tbody>{}</tbody></table><p>{}</p>", rows, every,
        )

    @admin.display(description="recent ledger entries")
    def recent_entries(self, wallet: Wallet) -> str:
        entries = list(wallet.entries.order_by("-id")[:SHOWN_ON_WALLET_PAGE])
        if not entries:
            return "None."
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (admin_link(self.admin_site, "wallets_walletentry", e.pk, f"#{e.pk}"), _utc_text(e.created_at), e.kind,
                 decimal_text(e.amount), decimal_text(e.held_change), decimal_text(e.balance_after),
                 " — ".join(filter(None, (e.reference, e.reason))))
                for e in entries
            ),
        )
        every = self._changelist_link("wallets_walletentry", "the whole ledger →", wallet__id__exact=wallet.pk)
        return format_html(
            "<table><thead><tr><th>entry</th><th>at (UTC)</th><th>kind</th><th>amount</th><th>held change</th>"
            "<th>balance after</th><th>reference / reason</th></tr></thead><tbody>{}</tbody></table><p>{}</p>", rows, every,
        )

    def _changelist_link(self, model_label: str, text: str, **query) -> str:
        url = reverse(f"{self.admin_site.name}:{model_label}_changelist")
        return format_html('<a href="{}?{}">{}</a>', url, urlencode(query), text)

    def save_model(self, request, obj, form, change):
        if change:
            # Only the thresholds: balance and held are the ledger's, moved under the row lock.
            wallet_thresholds_set(
                tenant_id=obj.tenant_id, wallet_id=obj.pk,
                low_balance_thresholds=[Decimal(t) for t in obj.low_balance_thresholds],
            )
            return
        wallet = wallet_create(
            customer=obj.customer, currency=obj.currency,
            low_balance_thresholds=[Decimal(t) for t in obj.low_balance_thresholds],
        )
        adopt_saved(obj, wallet)

    # -- top up / adjust: buttons on the change page, each a small form of its own --

    def get_urls(self):
        name = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        return [
            path("<path:object_id>/top-up/", self.admin_site.admin_view(self.top_up_view), name=f"{name}_top_up"),
            path("<path:object_id>/grant/", self.admin_site.admin_view(self.grant_view), name=f"{name}_grant"),
            *super().get_urls(),  # the adjust URL: WalletAdjustAdminMixin
        ]

    def _action_url(self, wallet: Wallet, action: str) -> str:
        return reverse(f"{self.admin_site.name}:wallets_wallet_{action}", args=[wallet.pk])

    def top_up_view(self, request: HttpRequest, object_id: str):
        return self._money_view(request, object_id, form_class=TopUpForm, title="Top up", move=self._top_up)

    def _top_up(self, wallet: Wallet, data: dict) -> tuple[WalletEntry, bool]:
        return wallet_top_up(
            tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=data["amount"],
            idempotency_key=f"admin:{data['idempotency_key']}", reference=data["reference"],
        )

    def grant_view(self, request: HttpRequest, object_id: str):
        return self._money_view(request, object_id, form_class=GrantForm, title="Grant credit", move=self._grant)

    def _grant(self, wallet: Wallet, data: dict) -> tuple[WalletEntry, bool]:
        """A credit grant into this wallet; its `grant` entry is what the page reports."""
        grant, created = credit_grant_create(
            customer=wallet.customer, currency=wallet.currency, amount=data["amount"], name=data["name"],
            kind=data["kind"], priority=data["priority"], starts_at=data["starts_at"], expires_at=data["expires_at"],
            reason=data["reason"], idempotency_key=f"admin:{data['idempotency_key']}",
        )
        return WalletEntry.objects.get(wallet=grant.wallet_id, kind=WalletEntry.Kind.GRANT, grant=grant), created

    def _money_view(self, request: HttpRequest, object_id: str, *, form_class, title: str, move):
        wallet = self._wallet_to_move(request, object_id)
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry, created = move(wallet, form.cleaned_data)
            except WalletError as error:
                form.add_error(*self._form_error(form, error))
            else:
                self._report_move(request, wallet, entry, created)
                return HttpResponseRedirect(self._action_url(wallet, "change"))
        return self._money_form_page(request, wallet, form, title=title)

    def _wallet_to_move(self, request: HttpRequest, object_id: str) -> Wallet:
        wallet = self.get_object(request, object_id)  # confined to the operator's tenant
        if wallet is None:
            raise PermissionDenied("No such wallet in your tenant.")
        if not self.has_change_permission(request, wallet):
            raise PermissionDenied("Moving money needs the change permission on wallets.")
        return wallet

    def _money_form_page(self, request: HttpRequest, wallet: Wallet, form: forms.Form, *, title: str, submit_label: str = ""):
        context = {
            **self.admin_site.each_context(request),
            "title": f"{title} · {wallet}",
            "action_title": title,
            "submit_label": submit_label or f"{title} ({wallet.currency})",
            "opts": self.model._meta,
            "original": wallet,
            "form": form,
            "balance": decimal_text(wallet.balance),
            "held": decimal_text(wallet.held),
            "available": decimal_text(wallet.available),
        }
        return TemplateResponse(request, "admin/wallets/wallet/money_form.html", context)

    @staticmethod
    def _form_error(form: forms.Form, error: WalletError) -> tuple[str | None, str]:
        """Where a refusal shows: on the visible field it names, else above the form."""
        if error.code == "idempotency_key_reused":
            return None, f"This form was already submitted with other figures ({error.message}) Open a fresh form."
        field = form.fields.get(error.field or "")
        return (error.field if field is not None and not field.widget.is_hidden else None), error.message

    def _report_move(self, request, wallet: Wallet, entry: WalletEntry, created: bool) -> None:
        amount = f"{decimal_text(entry.amount)} {wallet.currency}"
        if not created:
            self.message_user(
                request, f"This form was already submitted: entry #{entry.pk} ({entry.kind} of {amount}) is recorded "
                "once, nothing changed.", messages.WARNING,
            )
            return
        wallet.refresh_from_db()
        change = f"{entry.get_kind_display()} of {amount} (entry #{entry.pk}, reference {entry.reference!r}"
        change += f", reason {entry.reason!r})" if entry.reason else ")"
        self.log_change(request, wallet, change)
        self.message_user(
            request, f"{change}: balance now {decimal_text(wallet.balance)}, available {decimal_text(wallet.available)} "
            f"{wallet.currency}.", messages.SUCCESS,
        )

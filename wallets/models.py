"""Prepaid wallets, their append-only ledger, escrow holds and low-balance alerts.

Wallet: one per (customer, currency). `balance` is the money in it, `held` the part reserved by
active holds; available = balance − held. Both are derived and kept in the same transaction as
the ledger rows that change them, under the wallet's row lock (SELECT … FOR UPDATE):
    balance == sum(entry.amount)   and   held == sum(entry.held_change)   over its ledger.
WalletEntry: append-only; every change to a wallet is one row with a unique idempotency key.
Hold: a reservation against the available balance (e.g. an MCP session), active → committed |
released | expired; each transition is re-checked under the wallet lock. Rated events of the
hold's session draw from it first (`drawn`).
LowBalanceAlert: one row each time the available balance falls below one of the wallet's
thresholds.
CreditGrant: promotional or paid credit inside a wallet (docs/SETTLEMENT.md, "Credit grants"):
granted by a `grant` entry (+amount), so its `remaining` is part of the balance and
paid balance = balance − Σ remaining of the active grants. Debits consume usable grants first,
in (priority, soonest expiry, oldest) order; each part is a CreditGrantDraw. Under the wallet
lock, always: remaining == amount − Σ draws + Σ its grant_expiry/grant_void entries (negative).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from aforo.money import AMOUNT
from catalog.models import Customer, Tenant


class Wallet(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="wallets")
    currency = models.CharField(max_length=3)
    balance = models.DecimalField(**AMOUNT, default=0)
    held = models.DecimalField(**AMOUNT, default=0)
    # Available-balance levels that raise a LowBalanceAlert when crossed downwards, e.g. ["100", "10"].
    low_balance_thresholds = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "currency"], name="wallet_one_per_customer_currency"),
            models.CheckConstraint(condition=Q(held__gte=0), name="wallet_held_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.customer} {self.currency} wallet"

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


class Hold(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        COMMITTED = "committed"
        RELEASED = "released"
        EXPIRED = "expired"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="holds")
    amount = models.DecimalField(**AMOUNT, validators=[MinValueValidator(Decimal(0))])
    # Charged to the hold by rated events of its session (their debits draw from it first).
    drawn = models.DecimalField(**AMOUNT, default=0)
    # What the commit charged on top of `drawn` (null until committed).
    committed_amount = models.DecimalField(**AMOUNT, null=True, blank=True)
    reference = models.CharField(max_length=200, help_text="What the hold is for: an MCP session id, a request id…")
    idempotency_key = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["wallet", "idempotency_key"], name="hold_idempotency_key_unique"),
            models.CheckConstraint(condition=Q(drawn__lte=F("amount")), name="hold_drawn_within_amount"),
        ]
        indexes = [
            # The expiry sweep and the session lookup of the rating path only touch active holds.
            models.Index(fields=["expires_at"], condition=Q(status="active"), name="hold_active_expiry"),
            models.Index(fields=["wallet", "reference"], condition=Q(status="active"), name="hold_active_reference"),
        ]

    def __str__(self) -> str:
        return f"hold {self.pk} {self.amount} ({self.status})"

    @property
    def remaining(self) -> Decimal:
        """The part still reserved while active."""
        return self.amount - self.drawn if self.status == self.Status.ACTIVE else Decimal(0)


class WalletEntry(models.Model):
    class Kind(models.TextChoices):
        TOP_UP = "top_up"
        DEBIT = "debit"  # a rated event of a prepaid or hybrid subscription
        HOLD = "hold"
        HOLD_COMMIT = "hold_commit"
        HOLD_RELEASE = "hold_release"
        HOLD_EXPIRY = "hold_expiry"
        ADJUSTMENT = "adjustment"
        GRANT = "grant"  # a credit grant given (+amount)
        GRANT_EXPIRY = "grant_expiry"  # what a grant had left at its expires_at (−remaining)
        GRANT_VOID = "grant_void"  # what a voided grant had left (−remaining)
        GRANT_USE = "grant_use"  # credit grants paying a postpaid invoice at settlement (−)
        GRANT_RETURN = "grant_return"  # a voided invoice's grant part given back (+)

    # The tenant's own index is (tenant, id) below: the admin's list, newest first.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = models.DecimalField(**AMOUNT, help_text="Change to the balance (debits negative).")
    held_change = models.DecimalField(**AMOUNT, default=0, help_text="Change to the held amount.")
    balance_after = models.DecimalField(**AMOUNT)
    held_after = models.DecimalField(**AMOUNT)
    hold = models.ForeignKey(Hold, on_delete=models.PROTECT, null=True, blank=True, related_name="entries")
    # A debit's rated event: no database constraint (hot path, like the rated ledger's own links).
    rated_event = models.ForeignKey(
        "billing.RatedEvent", on_delete=models.PROTECT, null=True, blank=True, related_name="wallet_entries",
        db_constraint=False,
    )
    # The credit grant a grant, grant_expiry or grant_void entry is about (debits and grant_use
    # entries name theirs through CreditGrantDraw: one entry may draw on several grants).
    grant = models.ForeignKey(
        "CreditGrant", on_delete=models.PROTECT, null=True, blank=True, related_name="entries"
    )
    reference = models.CharField(max_length=200, blank=True, default="")
    # An operator's adjustment says why (wallets.services.wallet_adjust); other kinds leave it empty
    # (a database default too: the hot path's debit INSERT names its columns and not this one).
    reason = models.CharField(max_length=500, blank=True, default="", db_default="")
    idempotency_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["wallet", "idempotency_key"], name="wallet_entry_idempotency_key_unique"),
            # Money moved by hand always carries its reason.
            models.CheckConstraint(
                condition=~Q(kind="adjustment") | ~Q(reason=""), name="wallet_entry_adjustment_has_reason"
            ),
        ]
        verbose_name_plural = "wallet entries"
        indexes = [
            models.Index(fields=["wallet", "-id"], name="wallet_entry_recent"),
            models.Index(fields=["tenant", "id"], name="wallet_entry_tenant_id"),
            # Every entry but the debits (one per rated event of a prepaid subscription: the bulk):
            # top-ups, holds, adjustments, newest first — the admin's kind filter and its search by
            # reference (a debit's reference is its event id: it is found through its rated event).
            models.Index(fields=["tenant", "id"], name="wallet_entry_not_debit", condition=~models.Q(kind="debit")),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} → {self.balance_after}"


class LowBalanceAlert(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="alerts")
    threshold = models.DecimalField(**AMOUNT)
    available_before = models.DecimalField(**AMOUNT)
    available_after = models.DecimalField(**AMOUNT)
    entry = models.ForeignKey(WalletEntry, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "low-balance alert"

    def __str__(self) -> str:
        return f"{self.wallet} below {self.threshold}"


class CreditGrant(models.Model):
    """Credit given to a customer's wallet: promotional (a gift) or paid (bought in advance),
    consumed before the paid balance, in (priority, soonest expiry, oldest) order, only while
    starts_at <= now < expires_at. `remaining` moves only under the wallet's row lock, with the
    CreditGrantDraw or ledger entry that explains it."""

    class Kind(models.TextChoices):
        PROMOTIONAL = "promotional"
        PAID = "paid"

    class Status(models.TextChoices):
        ACTIVE = "active"
        CONSUMED = "consumed"  # remaining 0 (a negative delta giving back makes it active again)
        EXPIRED = "expired"  # its remaining left the wallet with a grant_expiry entry
        VOIDED = "voided"  # its remaining left the wallet with a grant_void entry

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="grants")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.PROMOTIONAL)
    amount = models.DecimalField(**AMOUNT)
    remaining = models.DecimalField(**AMOUNT)
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower is consumed first (0–1000).")
    starts_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    reason = models.CharField(max_length=500, blank=True, default="")
    void_reason = models.CharField(max_length=500, blank=True, default="")
    idempotency_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When it expired or was voided.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["wallet", "idempotency_key"], name="credit_grant_idempotency_key_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_grant_amount_positive"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("amount")), name="credit_grant_remaining_within_amount"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=F("starts_at")), name="credit_grant_expires_after_start"
            ),
            models.CheckConstraint(condition=Q(priority__lte=1000), name="credit_grant_priority_range"),
        ]
        indexes = [
            # The rating path reads a wallet's active grants; the expiry sweep the due ones.
            models.Index(fields=["wallet"], condition=Q(status="active"), name="credit_grant_active"),
            models.Index(fields=["expires_at"], condition=Q(status="active"), name="credit_grant_active_expiry"),
        ]

    def __str__(self) -> str:
        return f"grant {self.name} {self.remaining}/{self.amount} ({self.status})"


class CreditGrantDraw(models.Model):
    """What one ledger entry took from (amount > 0) or gave back to (amount < 0) one grant: a
    real-time debit (its rated event), a settlement's wallet part, or a postpaid invoice's
    "Credit grant" line (its invoice) and, on void, its return."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    grant = models.ForeignKey(CreditGrant, on_delete=models.PROTECT, related_name="draws")
    entry = models.ForeignKey(WalletEntry, on_delete=models.PROTECT, related_name="grant_draws")
    amount = models.DecimalField(**AMOUNT)
    rated_event = models.ForeignKey(
        "billing.RatedEvent", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_constraint=False,
    )
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="credit_grant_draw_not_zero")]
        indexes = [models.Index(fields=["grant", "id"], name="credit_grant_draw_recent")]

    def __str__(self) -> str:
        return f"{self.amount} from grant {self.grant_id}"

"""Serializers of the wallets API: input serializers parse the body, output serializers render;
`wallets.services` owns every rule about amounts, TTLs and state (its WalletError becomes the
error body, see base.py).

Contracts:
- Money is an exact decimal string on the wire, both ways. Input amounts are strings or
  integers; a JSON float (already inexact) or a boolean is a 400 naming the field. Whether an
  amount is positive, small enough and has at most 12 decimal places is the service's rule, and
  so is the minor-unit rule of top-ups (it needs the wallet's currency).
- Currencies are ISO 4217 codes of aforo.money's table (`CurrencyCodeField`): anything else,
  "XXX" and "XTS" included, is a 400 invalid_currency naming the field.
- Flags that allow more money to move (`allow_over_capture`) are JSON booleans, never "yes" or 1.
- Output amounts are plain decimal text without trailing zeros ("12.5", "0"), never numbers.
- `tenant` is never a field: it is the credential's. `customer` resolves inside the request's
  tenant only, so another tenant's customer is "does not exist" (400 naming `customer`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from aforo.money import decimal_text
from catalog.api.serializers import CurrencyCodeField, TenantPrimaryKeyRelatedField
from catalog.models import Customer
from wallets.models import Hold, LowBalanceAlert, Wallet, WalletEntry
from wallets.services import MAX_HOLD_TTL_S

# Every ledger key is the client's key with a short prefix ("top_up:<key>"); 150 leaves room
# under the 200-character columns.
IDEMPOTENCY_KEY_MAX = 150


@extend_schema_field({"type": "string", "format": "decimal", "example": "10.50"})
class MoneyField(serializers.Field):
    """An exact decimal as a string. Input: a decimal string or an integer, never a float."""

    default_error_messages = {
        "float": 'Must be a decimal string such as "10.50" or an integer, not {value!r} (JSON floats are inexact).',
        "invalid": 'Must be a decimal string such as "10.50" or an integer, got {value!r}.',
    }

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, float):
            self.fail("float", value=data)
        if isinstance(data, bool) or not isinstance(data, (str, int)) or (isinstance(data, str) and len(data) > 100):
            self.fail("invalid", value=data if not isinstance(data, str) else data[:40])
        try:
            return Decimal(data.strip() if isinstance(data, str) else data)
        except InvalidOperation:
            self.fail("invalid", value=data)

    def to_representation(self, value: Decimal | str) -> str:
        return decimal_text(value if isinstance(value, Decimal) else Decimal(str(value)))


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false only: DRF's BooleanField would also take "yes", "on" or 1."""

    default_error_messages = {"invalid": "Must be a JSON boolean (true or false), got {input!r}."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data if not isinstance(data, str) else data[:40])
        return data


def _wallet_currency() -> CurrencyCodeField:
    return CurrencyCodeField(
        required=False, help_text="Optional ISO 4217 code; when sent it must be the wallet's (else currency_mismatch)."
    )


def _idempotency_key(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(
        max_length=IDEMPOTENCY_KEY_MAX,
        help_text="Yours, unique per wallet for this kind of write: a retry with the same key returns the first "
        "result and changes nothing; the same key with other parameters is a 409 idempotency_key_reused.",
        **kwargs,
    )


# --- input ---------------------------------------------------------------------------------------


class WalletCreateInputSerializer(serializers.Serializer):
    customer = TenantPrimaryKeyRelatedField(queryset=Customer.objects.all(), help_text="A customer of your tenant.")
    currency = CurrencyCodeField(
        help_text="An active ISO 4217 code (case-insensitive; XXX/XTS are refused); one wallet per customer and "
        "currency."
    )
    low_balance_thresholds = serializers.ListField(
        child=MoneyField(), required=False, max_length=20,
        help_text="Available-balance levels that raise a low-balance alert each time the available balance falls "
        'below them, e.g. ["100", "10"].',
    )


class TopUpInputSerializer(serializers.Serializer):
    amount = MoneyField(
        help_text="More than zero, in whole minor units of the wallet's currency (1.005 USD or 1.5 JPY is a 400 "
        "invalid_amount with `minor_unit`)."
    )
    idempotency_key = _idempotency_key()
    reference = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", help_text="E.g. your payment id."
    )
    currency = _wallet_currency()


class AdjustmentInputSerializer(serializers.Serializer):
    amount = MoneyField(
        help_text="Positive credits the wallet, negative debits it; not zero; in whole minor units of the wallet's "
        "currency (else 400 invalid_amount with `minor_unit`)."
    )
    reason = serializers.CharField(
        max_length=500, help_text="Required: why the balance is corrected. Stored on the ledger entry."
    )
    reference = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", help_text="Optional: a ticket or payment id."
    )
    allow_negative_balance = StrictBooleanField(
        required=False, default=False,
        help_text="true: a debit may take the balance below zero (the customer then owes the difference). Default "
        "false: such a debit is a 409 negative_balance_not_allowed and nothing changes.",
    )
    idempotency_key = _idempotency_key()
    currency = _wallet_currency()


class HoldPlaceInputSerializer(serializers.Serializer):
    amount = MoneyField(
        help_text="The amount to reserve: more than zero, at most 12 decimal places (exact: a hold is for usage, "
        "which may cost fractions of a minor unit)."
    )
    ttl_seconds = serializers.IntegerField(
        min_value=1, max_value=MAX_HOLD_TTL_S, help_text="The hold expires (and gives its amount back) after this."
    )
    reference = serializers.CharField(
        max_length=200, help_text="What the hold is for, e.g. an MCP session id: rated events whose session_id "
        "dimension equals it draw from the hold first."
    )
    idempotency_key = _idempotency_key()
    currency = _wallet_currency()


class HoldCommitInputSerializer(serializers.Serializer):
    amount = MoneyField(
        help_text="What to charge on top of what the session's rated events already drew from the hold (zero or "
        "more, exact). Up to the rest of the hold: the remainder is released. More is a 409 exceeds_hold unless "
        "allow_over_capture is true."
    )
    allow_over_capture = StrictBooleanField(
        required=False, default=False,
        help_text="true: an amount above the rest of the hold is charged, the excess from the available balance "
        "(else 402 insufficient_funds). Default false: such an amount is a 409 exceeds_hold and nothing is charged.",
    )


# --- output --------------------------------------------------------------------------------------


class WalletFiguresSerializer(serializers.ModelSerializer):
    """A wallet's current figures, next to the result of a write."""

    balance = MoneyField(read_only=True, help_text="The money in the wallet (negative: an unpaid shortfall).")
    held = MoneyField(read_only=True, help_text="Reserved by active holds.")
    available = MoneyField(read_only=True, help_text="balance − held: what a new hold or debit can use.")

    class Meta:
        model = Wallet
        fields = ["id", "currency", "balance", "held", "available"]


class ActiveHoldSerializer(serializers.ModelSerializer):
    amount = MoneyField(read_only=True)
    drawn = MoneyField(read_only=True, help_text="Already charged to the hold by rated events of its session.")
    remaining = MoneyField(read_only=True, help_text="Still reserved: amount − drawn.")

    class Meta:
        model = Hold
        fields = ["id", "amount", "drawn", "remaining", "reference", "expires_at", "created_at"]


class WalletSerializer(serializers.ModelSerializer):
    balance = MoneyField(read_only=True)
    held = MoneyField(read_only=True)
    available = MoneyField(read_only=True)
    low_balance_thresholds = serializers.ListField(child=MoneyField(), read_only=True)

    class Meta:
        model = Wallet
        fields = [
            "id", "customer", "currency", "balance", "held", "available", "low_balance_thresholds", "created_at",
            "updated_at",
        ]


class WalletDetailSerializer(WalletSerializer):
    active_holds = ActiveHoldSerializer(many=True, read_only=True, help_text="Oldest first.")

    class Meta(WalletSerializer.Meta):
        fields = [*WalletSerializer.Meta.fields, "active_holds"]


class HoldSerializer(serializers.ModelSerializer):
    amount = MoneyField(read_only=True, help_text="Reserved when placed.")
    drawn = MoneyField(read_only=True, help_text="Charged to the hold by rated events of its session.")
    remaining = MoneyField(read_only=True, help_text="Still reserved (zero once no longer active).")
    committed_amount = MoneyField(
        read_only=True, allow_null=True, help_text="What the commit charged on top of `drawn`; null until committed."
    )
    wallet = WalletFiguresSerializer(read_only=True, help_text="The wallet's figures now.")

    class Meta:
        model = Hold
        fields = [
            "id", "status", "amount", "drawn", "remaining", "committed_amount", "reference", "idempotency_key",
            "expires_at", "created_at", "resolved_at", "wallet",
        ]


# A plain string in the schema, not an enum: a second enum-valued field named "kind" (App.kind)
# makes drf-spectacular's enum naming collide (a warning) without an ENUM_NAME_OVERRIDES setting.
@extend_schema_field({"type": "string", "example": "top_up"})
class EntryKindField(serializers.CharField):
    pass


class WalletEntrySerializer(serializers.ModelSerializer):
    kind = EntryKindField(read_only=True, help_text=f"One of: {', '.join(WalletEntry.Kind.values)}.")
    amount = MoneyField(read_only=True, help_text="Change to the balance (debits negative).")
    held_change = MoneyField(read_only=True, help_text="Change to the held amount.")
    balance_after = MoneyField(read_only=True)
    held_after = MoneyField(read_only=True)
    idempotency_key = serializers.CharField(
        read_only=True,
        help_text="The ledger's unique key: top_up:<your key>, adjustment:<key>, hold:<hold id>[:<outcome>], "
        "rated:<rated event id>.",
    )

    class Meta:
        model = WalletEntry
        fields = [
            "id", "kind", "amount", "held_change", "balance_after", "held_after", "hold", "rated_event", "reference",
            "reason", "idempotency_key", "created_at",
        ]


class TopUpResultSerializer(WalletEntrySerializer):
    wallet = WalletFiguresSerializer(read_only=True, help_text="The wallet's figures now.")

    class Meta(WalletEntrySerializer.Meta):
        fields = [*WalletEntrySerializer.Meta.fields, "wallet"]


class LowBalanceAlertSerializer(serializers.ModelSerializer):
    threshold = MoneyField(read_only=True)
    available_before = MoneyField(read_only=True)
    available_after = MoneyField(read_only=True)

    class Meta:
        model = LowBalanceAlert
        fields = ["id", "threshold", "available_before", "available_after", "entry", "created_at"]


# --- error bodies (documentation only) -----------------------------------------------------------


class _ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False, help_text="The body field at fault, when one is.")


class ErrorBodySerializer(serializers.Serializer):
    error = _ErrorSerializer()


class _InsufficientFundsSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=["insufficient_funds"])
    message = serializers.CharField()
    available = MoneyField(help_text="The wallet's available balance when the request was refused.")
    needed = MoneyField(help_text="What the request needed of it.")
    currency = serializers.CharField()


class InsufficientFundsBodySerializer(serializers.Serializer):
    error = _InsufficientFundsSerializer()


class _HoldCommitConflictSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=["exceeds_hold", "hold_committed", "hold_released", "hold_expired"])
    message = serializers.CharField()
    field = serializers.CharField(required=False, help_text="exceeds_hold: `amount`.")
    hold_status = serializers.CharField(required=False, help_text="hold_*: the hold's status.")
    amount = MoneyField(required=False, help_text="exceeds_hold: what the hold reserved when placed.")
    drawn = MoneyField(required=False, help_text="exceeds_hold: already drawn from it by its session's rated events.")
    remaining = MoneyField(required=False, help_text="exceeds_hold: what it still reserves (amount − drawn).")
    excess = MoneyField(required=False, help_text="exceeds_hold: how much the commit asked for above `remaining`.")
    currency = serializers.CharField(required=False)


class HoldCommitConflictBodySerializer(serializers.Serializer):
    error = _HoldCommitConflictSerializer()


class _NegativeBalanceSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=["negative_balance_not_allowed"])
    message = serializers.CharField()
    field = serializers.CharField(help_text="`amount`.")
    balance = MoneyField(help_text="The balance when the adjustment was refused.")
    balance_after = MoneyField(help_text="What the adjustment would have left (below zero).")
    currency = serializers.CharField()


class NegativeBalanceBodySerializer(serializers.Serializer):
    error = _NegativeBalanceSerializer()

"""Serializers of the catalog API: they parse and render, the services write.

Contracts every serializer here keeps:
- `tenant` is never a field: the tenant is the credential's (`request.tenant`).
- Every related id resolves through `TenantPrimaryKeyRelatedField`, whose queryset is scoped to
  the request's tenant, so another tenant's id fails exactly like an id that does not exist.
- Model validation (`full_clean`, run by the services) is the single source of truth for
  cross-field rules; DRF's auto-generated uniqueness validators are switched off so a rule is
  not stated twice. Fields in `create_only_fields` are accepted on create and refused (400)
  when an update tries to change them.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.request import Request

from aforo.billing_details import country_normalise, validate_country
from aforo.exceptions import ApiError
from aforo.money import currency_is_valid, decimal_text
from aforo.periods import periods_ended
from catalog.auth import TenantPrincipal
from catalog.terms import metric_minimums_clean
from catalog.models import (
    ApiKey,
    App,
    Customer,
    Metric,
    MetricConfig,
    Offering,
    Product,
    RatePlan,
    RatePlanVersion,
    Subscription,
    Team,
    Tenant,
)


def version_published_error(version_id: int, detail: str = "") -> ApiError:
    """409 `version_published`, telling the caller how to change a published version."""
    return ApiError(
        code="version_published",
        message=(
            f"{detail or f'Rate plan version {version_id} is published and immutable.'} "
            f"To change it, POST /api/v1/rate-plan-versions/{version_id}/revise, then edit and publish the new draft."
        ),
        status_code=409,
    )


def invalid_currency_error(value: Any, field: str) -> ApiError:
    """400 `invalid_currency` naming `field` (also under `fields`, the shape of a validation_error)."""
    shown = repr(value if not isinstance(value, str) else value[:40])
    message = f"{field}: {shown} is not an active ISO 4217 currency code, such as USD, EUR or JPY."
    return ApiError(code="invalid_currency", message=message, field=field, fields={field: [message]})


@extend_schema_field({"type": "string", "minLength": 3, "maxLength": 3, "example": "USD"})
class CurrencyCodeField(serializers.CharField):
    """An ISO 4217 currency code (aforo.money's table), read case-insensitively and returned in
    upper case. Anything else (not a string, "ABC", withdrawn codes, "XXX"/"XTS", which are not
    money) is refused at once as a 400 `invalid_currency` naming the field, whatever else the
    body holds."""

    def run_validation(self, data: Any = empty) -> Any:
        is_empty, data = self.validate_empty_values(data)  # missing / null: DRF's required / null errors
        if is_empty:
            return data
        return self.to_internal_value(data)

    def to_internal_value(self, data: Any) -> str:
        code = data.strip().upper() if isinstance(data, str) else None
        if not currency_is_valid(code):
            raise invalid_currency_error(data, self.field_name)
        return code  # type: ignore[return-value]


@extend_schema_field({"type": "string", "maxLength": 2, "example": "DE"})
class CountryCodeField(serializers.CharField):
    """An ISO 3166-1 alpha-2 country code, or "" for none: read case-insensitively (" de " is
    "DE"); pass aforo.billing_details.validate_country as a validator, whose message the
    error carries under the field's name."""

    def to_internal_value(self, data: Any) -> Any:
        return country_normalise(super().to_internal_value(data))


def request_tenant(request: Request | None) -> Tenant | None:
    """The tenant of the request's credential. Read from the principal as well as from
    `request.tenant`, because DRF's clones of a request (browsable API forms) drop the latter."""
    tenant = getattr(request, "tenant", None)
    if tenant is None and request is not None:
        principal = getattr(request, "user", None)
        tenant = principal.tenant if isinstance(principal, TenantPrincipal) else None
    return tenant


class TenantPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A related id that must exist *in the request's tenant*; anything else is "does not exist"."""

    def get_queryset(self):
        queryset = super().get_queryset()
        tenant = request_tenant(self.context.get("request"))
        if tenant is None:  # no credential (schema generation): nothing resolves
            return queryset.none()
        return queryset.filter(tenant=tenant)


class CatalogModelSerializer(serializers.ModelSerializer):
    """Base of the catalog serializers: tenant-scoped relations, create-only fields, and
    field-named errors for the per-tenant unique codes."""

    serializer_related_field = TenantPrimaryKeyRelatedField
    # Set on create, never changed afterwards (the row's identity in the billing hierarchy).
    create_only_fields: tuple[str, ...] = ()
    # Unique per tenant (blank values excepted); checked here so the error names the field.
    tenant_unique_fields: tuple[str, ...] = ()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        errors: dict[str, str] = {}
        if self.instance is not None:
            for name in self.create_only_fields:
                if name in attrs and attrs[name] != getattr(self.instance, name):
                    errors[name] = "Cannot be changed after creation."
        tenant = request_tenant(self.context.get("request"))
        model: type[Model] = self.Meta.model
        for name in self.tenant_unique_fields:
            value = attrs.get(name)
            if not value or tenant is None:
                continue
            clash = model._default_manager.filter(tenant=tenant, **{name: value})
            if self.instance is not None:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                errors[name] = f"A {model._meta.verbose_name} with this {name} already exists."
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


TIMESTAMPS = ["created_at", "updated_at"]


class CustomerSerializer(CatalogModelSerializer):
    """A customer and its billing details (the buyer block of its invoices; all optional)."""

    tenant_unique_fields = ("external_id",)
    country = CountryCodeField(required=False, allow_blank=True, validators=[validate_country])

    class Meta:
        model = Customer
        fields = [
            "id", "external_id", "name", "email", "billing_name", "billing_address", "country", "tax_id",
            "billing_email", *TIMESTAMPS,
        ]
        validators: list = []


class TeamSerializer(CatalogModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "customer", "name", *TIMESTAMPS]
        validators: list = []


class AppSerializer(CatalogModelSerializer):
    class Meta:
        model = App
        fields = ["id", "team", "name", "kind", *TIMESTAMPS]
        validators: list = []


class ApiKeySerializer(CatalogModelSerializer):
    """An API key as it can be read: never the key itself, which is not stored."""

    create_only_fields = ("app",)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "app", "name", "prefix", "revoked_at", "revoked_reason", "revoked_by", "is_active", *TIMESTAMPS]
        read_only_fields = ["prefix", "revoked_at", "revoked_reason", "revoked_by"]
        validators: list = []


class ApiKeyRevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500, help_text="Required: why the key is revoked (stored on the key, with the token that revoked it)."
    )


class SubscriptionCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Required: why (stored on the subscription as canceled_reason).")
    at = serializers.DateTimeField(
        required=False, help_text="When it ends: now or later (never backdated). Default: now. Or send at_period_end."
    )
    at_period_end = serializers.BooleanField(
        required=False, default=False, help_text="true: it ends at the end of its current billing period."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("at") is not None and attrs.get("at_period_end"):
            raise serializers.ValidationError({"at": ["Send at or at_period_end, not both."]})
        if "\x00" in attrs["reason"]:
            raise serializers.ValidationError({"reason": ["Null characters are not allowed."]})
        return attrs


class ApiKeyCreateSerializer(CatalogModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["app", "name"]
        validators: list = []


class ApiKeyCreatedSerializer(ApiKeySerializer):
    """The one response that carries the full key: store it now, it cannot be shown again."""

    key = serializers.CharField(read_only=True, help_text="The full API key. Shown once, here only.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class ProductSerializer(CatalogModelSerializer):
    tenant_unique_fields = ("code",)

    class Meta:
        model = Product
        fields = ["id", "code", "name", "product_type", "description", *TIMESTAMPS]
        validators: list = []


class MetricSerializer(CatalogModelSerializer):
    tenant_unique_fields = ("code",)

    class Meta:
        model = Metric
        fields = ["id", "product", "code", "name", "unit", "description", *TIMESTAMPS]
        validators: list = []


class OfferingSerializer(CatalogModelSerializer):
    tenant_unique_fields = ("code",)

    class Meta:
        model = Offering
        fields = ["id", "code", "name", "description", "products", *TIMESTAMPS]
        extra_kwargs = {"products": {"required": False}}
        validators: list = []


class RatePlanSerializer(CatalogModelSerializer):
    # Subscriptions and rated usage are priced in the plan's currency: a new currency is a new plan.
    create_only_fields = ("offering", "currency")
    tenant_unique_fields = ("code",)
    currency = CurrencyCodeField(required=False, help_text="ISO 4217 (default USD).")

    class Meta:
        model = RatePlan
        fields = ["id", "offering", "code", "name", "currency", *TIMESTAMPS]
        validators: list = []


class MetricConfigSerializer(CatalogModelSerializer):
    """A metric's price in a version. POST sets it (create, or replace the metric's existing
    config in that version); `config` is validated by the rating engine."""

    create_only_fields = ("version", "metric")
    config = serializers.JSONField(
        help_text='Pricing model and parameters, e.g. {"model": "per_unit", "rate": "0.003", "included_free": "1000"}. '
        "Decimal parameters are strings (JSON floats are refused as inexact)."
    )

    class Meta:
        model = MetricConfig
        fields = ["id", "version", "metric", "config", *TIMESTAMPS]
        validators: list = []

    def validate_version(self, version: RatePlanVersion) -> RatePlanVersion:
        # A 409 (not a 400) whatever else is wrong with the body: `version` is checked before `config`.
        if version.is_published and (self.instance is None or self.instance.version_id == version.pk):
            raise version_published_error(version.pk)
        return version


class VersionMetricConfigSerializer(serializers.ModelSerializer):
    """A metric config as nested (read-only) in its version."""

    metric_code = serializers.CharField(source="metric.code", read_only=True)

    class Meta:
        model = MetricConfig
        fields = ["id", "metric", "metric_code", "config"]
        read_only_fields = fields


class RatePlanVersionSerializer(serializers.ModelSerializer):
    """A version as it is read, with the metric configs it prices."""

    metric_configs = VersionMetricConfigSerializer(many=True, read_only=True)

    class Meta:
        model = RatePlanVersion
        fields = [
            "id", "rate_plan", "version", "status", "effective_from", "published_at", "notes", "metric_configs",
            *TIMESTAMPS,
        ]
        read_only_fields = fields


class RatePlanVersionCreateSerializer(CatalogModelSerializer):
    class Meta:
        model = RatePlanVersion
        fields = ["rate_plan", "effective_from", "notes"]
        validators: list = []


class RatePlanVersionUpdateSerializer(CatalogModelSerializer):
    """What a DRAFT version lets you change (its prices are its metric configs)."""

    class Meta:
        model = RatePlanVersion
        fields = ["effective_from", "notes"]
        validators: list = []


class EffectiveFromSerializer(serializers.Serializer):
    effective_from = serializers.DateTimeField(
        required=False,
        help_text="When the version takes effect. Publish: defaults to the draft's own; revise: to "
        "max(now, the revised version's effective_from).",
    )


@extend_schema_field({"type": "string", "format": "decimal", "nullable": True, "example": "500.00"})
class TermAmountField(serializers.Field):
    """An optional amount in the subscription's currency: an exact decimal string or an integer
    (never a JSON float), more than zero, at most 6 decimal places; null clears it."""

    default_error_messages = {
        "invalid": 'Must be a decimal string such as "500.00" or an integer (not a JSON float), got {value!r}.',
        "positive": "Must be more than zero (null removes it).",
        "places": "At most 6 decimal places.",
        "large": "Must be less than 10^14.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, **kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, (bool, float)) or not isinstance(data, (str, int)) or (isinstance(data, str) and len(data) > 40):
            self.fail("invalid", value=data if not isinstance(data, str) else data[:40])
        try:
            value = Decimal(data.strip() if isinstance(data, str) else data)
        except InvalidOperation:
            self.fail("invalid", value=data)
        if not value.is_finite():
            self.fail("invalid", value=data)
        if value <= 0:
            self.fail("positive")
        if value.as_tuple().exponent < -6:  # type: ignore[operator]
            self.fail("places")
        if value >= Decimal(10) ** 14:
            self.fail("large")
        return value

    def to_representation(self, value: Decimal) -> str:
        return decimal_text(value)


class SubscriptionSerializer(CatalogModelSerializer):
    # A plan change is a new subscription (end this one): settled periods stay tied to one plan.
    create_only_fields = ("customer", "offering", "rate_plan", "currency")
    currency = CurrencyCodeField(required=False, help_text="ISO 4217; defaults to (and must equal) the rate plan's.")
    min_commitment = TermAmountField(help_text="Minimum spend per period (a true-up line brings lower charges up to it).")
    spend_cap = TermAmountField(help_text="Maximum spend per period; spend_cap_action says whether it caps or only alerts.")
    invoice_threshold = TermAmountField(
        help_text="An interim invoice as soon as the period's accrued, not yet invoiced charges reach this amount."
    )
    trial_units = TermAmountField(
        help_text="A usage-based trial: it converts once this many units of trial_metric were used free (with "
        "trial_metric; null removes it)."
    )
    confirm_backdated = serializers.BooleanField(
        write_only=True, required=False, default=False,
        help_text="true: go ahead although started_at lies before periods already over, which are invoiced at once "
        "(without it such a request is a 409 backdated_confirmation_required listing them).",
    )
    metric_minimums = serializers.JSONField(
        required=False,
        help_text='Per-metric minimum spend per period, {"metric_code": "50.00"}: metrics priced by the rate plan, '
        "exact decimals from 0 (a true-up line per metric, before the minimum commitment).",
    )
    terms_effective_from = serializers.DateTimeField(
        write_only=True, required=False,
        help_text="On update: when the changed terms take effect (default now; not before the current billing "
        "period — for a correction POST /subscriptions/{id}/terms with retroactive: true). A period's terms are "
        "those in effect at its start, so a change mid-period first applies to the next period.",
    )

    class Meta:
        model = Subscription
        fields = [
            "id", "customer", "offering", "rate_plan", "billing_mode", "billing_cadence", "billing_anchor",
            "currency", "status", "started_at", "ended_at", "min_commitment", "spend_cap", "spend_cap_action",
            "invoice_threshold", "net_terms_days", "invoice_grace_hours", "metric_minimums", "terms_version",
            "terms_effective_from", "customer_may_change_plan", "trial_ends_at", "trial_metric", "trial_units",
            "trial_converted_at", "confirm_backdated",
            *TIMESTAMPS,
        ]
        read_only_fields = ["terms_version", "trial_converted_at"]
        extra_kwargs = {
            "billing_anchor": {
                "required": False,
                "help_text": "Start of the first billing period; defaults to started_at.",
            },
        }
        validators: list = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        confirmed = attrs.pop("confirm_backdated", False)
        attrs = super().validate(attrs)
        was = getattr(self.instance, "status", None)
        if attrs.get("status") == Subscription.Status.CANCELED and was != Subscription.Status.CANCELED:
            raise serializers.ValidationError({"status": [
                "Cancel with POST /api/v1/subscriptions/{id}/cancel: it asks for the reason and the end (now, a "
                "later instant or the period's end), and stores them."
            ]})
        if was == Subscription.Status.CANCELED and attrs.get("status", was) != was:
            raise serializers.ValidationError({"status": ["A canceled subscription stays canceled: start a new one."]})
        self._check_trial_unchanged(attrs)
        if self.instance is None:
            if "currency" not in attrs and attrs.get("rate_plan") is not None:
                attrs["currency"] = attrs["rate_plan"].currency
            if "billing_anchor" not in attrs and attrs.get("started_at") is not None:
                attrs["billing_anchor"] = attrs["started_at"]
            tenant = request_tenant(self.context.get("request"))
            if tenant is not None:  # invoice terms not given: the tenant's defaults
                attrs.setdefault("net_terms_days", tenant.default_net_terms_days)
                attrs.setdefault("invoice_grace_hours", tenant.default_invoice_grace_hours)
            if attrs.get("terms_effective_from") is not None:
                raise serializers.ValidationError({"terms_effective_from": [
                    "Only on an update: a new subscription's terms take effect from its start."
                ]})
        rate_plan = attrs.get("rate_plan", getattr(self.instance, "rate_plan", None))
        if "metric_minimums" in attrs and rate_plan is not None:
            try:
                attrs["metric_minimums"] = metric_minimums_clean(rate_plan_id=rate_plan.pk, value=attrs["metric_minimums"])
            except DjangoValidationError as refused:
                raise serializers.ValidationError(refused.message_dict) from None
        self._check_backdated(attrs, confirmed)
        return attrs

    TRIAL_FIELDS = ("trial_ends_at", "trial_metric", "trial_units")

    def _check_trial_unchanged(self, attrs: dict[str, Any]) -> None:
        """A converted trial is history: its terms decided which usage was free."""
        converted = getattr(self.instance, "trial_converted_at", None)
        if converted is None:
            return
        changed = [name for name in self.TRIAL_FIELDS if name in attrs and attrs[name] != getattr(self.instance, name)]
        if changed:
            raise serializers.ValidationError(
                {name: [f"The trial converted at {converted.isoformat()}: its terms cannot change."] for name in changed}
            )

    def _check_backdated(self, attrs: dict[str, Any], confirmed: bool) -> None:
        """A start in the past whose periods are already over invoices them at once (the
        settlement sweep): a 409 `backdated_confirmation_required` listing them unless the
        request says `confirm_backdated: true`. Checked on create, and when an update moves the
        start, anchor or cadence so that more past periods would be invoiced."""
        def value(name: str) -> Any:
            return attrs.get(name, getattr(self.instance, name, None))

        started_at, anchor, cadence = value("started_at"), value("billing_anchor"), value("billing_cadence")
        cadence = cadence or Subscription.Cadence.MONTHLY
        if started_at is None or anchor is None or anchor > started_at:
            return  # the model's clean() names what is wrong
        now = timezone.now()
        periods = periods_ended(cadence=cadence, anchor=anchor, started_at=started_at, now=now, ended_at=value("ended_at"), limit=61)
        if self.instance is not None and self.instance.started_at and self.instance.billing_anchor:
            before = periods_ended(
                cadence=self.instance.billing_cadence, anchor=self.instance.billing_anchor,
                started_at=self.instance.started_at, now=now, ended_at=self.instance.ended_at, limit=61,
            )
            if len(periods) <= len(before):
                return
        if not periods or confirmed:
            return
        listed = [{"start": start.isoformat(), "end": end.isoformat()} for start, end in periods[:60]]
        more = " and more" if len(periods) > 60 else ""
        raise ApiError(
            code="backdated_confirmation_required", status_code=409,
            message=f"started_at is in the past: {len(listed)}{more} billing period(s) already over will be invoiced at "
            f"once ({listed[0]['start'][:10]} to {listed[-1]['end'][:10]}). Send confirm_backdated: true to go ahead.",
            field="started_at", periods=listed,
        )



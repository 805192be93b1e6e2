"""The catalog and the billing hierarchy.

Tenant → Customer → Team → App/Agent → API key, and
Product → Metric; Offering → Rate plan → Rate plan version → Metric config;
Subscription = Customer × Offering × Rate plan (+ billing mode, cadence, anchor, currency).

Every row below Tenant belongs to exactly one tenant (`TenantOwned`) and every relation stays
inside it (checked in `clean()`, which services, serializers and the admin all run). Every
change bumps the tenant's catalog generation in the same transaction, which is what keeps the
enrichment cache from ever serving a stale hierarchy (ARCHITECTURE.md §4.4).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from aforo.money import currency_is_valid

from .generation import catalog_generation_bump, generation_seed


def key_hash(secret: str) -> str:
    """The only form in which API keys and tenant tokens are stored (they are 190+ bit random)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Tenant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    catalog_generation = models.BigIntegerField(
        default=generation_seed, editable=False, help_text="Advanced by every catalog change (see catalog.generation)."
    )

    def __str__(self) -> str:
        return self.name


def validate_currency_code(value: str) -> None:
    """Model-field validator: an active ISO 4217 currency with a minor unit, in upper case
    (aforo.money). "XXX", "XTS" and made-up codes such as "ABC" are not money."""
    if not currency_is_valid(value):
        raise ValidationError(
            "%(value)s is not an active ISO 4217 currency code (upper case, e.g. USD).", code="invalid_currency",
            params={"value": repr(value)},
        )


def same_tenant_check(instance: models.Model, names: tuple[str, ...]) -> None:
    """ValidationError naming the first of `names` (relations of `instance`) that points to
    another tenant's row than `instance.tenant_id`; unset relations pass (required-ness is the
    field's business)."""
    for name in names:
        related = getattr(instance, name, None)
        if related is not None and instance.tenant_id and related.tenant_id != instance.tenant_id:
            raise ValidationError({name: "Must belong to the same tenant."})


class TenantOwned(models.Model):
    """Base of every catalog row: one tenant, timestamps, and a catalog generation bump in the
    same transaction as every save or delete."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    # Relations that must point inside the same tenant: (field name, ...)
    same_tenant_fields: tuple[str, ...] = ()

    class Meta:
        abstract = True

    def clean(self) -> None:
        super().clean()
        same_tenant_check(self, self.same_tenant_fields)

    def save(self, *args, **kwargs) -> None:
        with transaction.atomic():
            super().save(*args, **kwargs)
            catalog_generation_bump(tenant_id=self.tenant_id)

    def delete(self, *args, **kwargs):
        with transaction.atomic():
            result = super().delete(*args, **kwargs)
            catalog_generation_bump(tenant_id=self.tenant_id)
        return result


class TenantMember(models.Model):
    """An operator (admin user) of one tenant: the admin shows them only that tenant's rows."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_membership")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="members")

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant}"


class TenantToken(models.Model):
    """A tenant API credential (Bearer). `admin` manages the catalog; `ingest` posts events."""

    class Kind(models.TextChoices):
        ADMIN = "admin", "Admin (catalog API)"
        INGEST = "ingest", "Ingest (events API)"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tokens")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=24, help_text="First characters, to recognise the token.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Customer(TenantOwned):
    external_id = models.CharField(max_length=128, blank=True, help_text="Your own id for this customer.")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id"],
                condition=~models.Q(external_id=""),
                name="customer_external_id_unique_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return self.name


class CustomerUser(models.Model):
    """A login of one customer: it sees that customer's dashboard pages and nothing else."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_user")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="users")

    def __str__(self) -> str:
        return f"{self.user} → {self.customer}"


class Team(TenantOwned):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="teams")
    name = models.CharField(max_length=200)
    same_tenant_fields = ("customer",)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "name"], name="team_name_unique_per_customer")]

    def __str__(self) -> str:
        return self.name


class App(TenantOwned):
    """An application or an AI agent of a team; it owns API keys."""

    class Kind(models.TextChoices):
        APP = "app", "App"
        AGENT = "agent", "Agent"

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="apps")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.APP)
    same_tenant_fields = ("team",)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="app_name_unique_per_team")]

    def __str__(self) -> str:
        return self.name


class ApiKey(TenantOwned):
    """A key a customer's app sends with each call. Only its SHA-256 is stored; the full key is
    returned once, by `api_key_create`. Revoked keys stop matching events *timestamped* after
    the revocation; events from before it (late arrivals) still bill."""

    app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=24, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    same_tenant_fields = ("app",)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.app})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Product(TenantOwned):
    class Type(models.TextChoices):
        API = "api", "API"
        MCP_SERVER = "mcp_server", "MCP server"
        AGENTIC_API = "agentic_api", "Agentic API"

    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    product_type = models.CharField(max_length=16, choices=Type.choices)
    description = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="product_code_unique_per_tenant")]

    def __str__(self) -> str:
        return self.name


class Metric(TenantOwned):
    """A billable metric of a product. Events name it by `code`, unique per tenant."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="metrics")
    code = models.CharField(
        max_length=100,
        help_text="The `metric` value events carry, e.g. api_calls.",
    )
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=50, default="unit")
    description = models.TextField(blank=True)
    same_tenant_fields = ("product",)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="metric_code_unique_per_tenant")]

    def __str__(self) -> str:
        return self.code


class Offering(TenantOwned):
    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    products = models.ManyToManyField(Product, related_name="offerings", blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="offering_code_unique_per_tenant")]

    def __str__(self) -> str:
        return self.name


class RatePlan(TenantOwned):
    offering = models.ForeignKey(Offering, on_delete=models.PROTECT, related_name="rate_plans")
    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    currency = models.CharField(
        max_length=3, default="USD", validators=[validate_currency_code], help_text="ISO 4217 code."
    )
    same_tenant_fields = ("offering",)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="rate_plan_code_unique_per_tenant")]

    def __str__(self) -> str:
        return self.name


class PublishedVersionError(ValidationError):
    """Raised on any attempt to change a published rate plan version or its metric configs."""


class VersionNotPublishable(ValidationError):
    """A draft version that cannot be published as it is (nothing priced, effective date taken)."""


class RatePlanVersion(TenantOwned):
    """An effective-dated version of a rate plan. Draft versions are edited freely; a published
    one is immutable: to change prices, revise it (a new draft copy) and publish that. The
    version in force at instant T is the published one with the latest effective_from <= T."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    rate_plan = models.ForeignKey(RatePlan, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField(editable=False)
    effective_from = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    notes = models.TextField(blank=True)
    same_tenant_fields = ("rate_plan",)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rate_plan", "version"], name="rate_plan_version_number_unique"),
            models.UniqueConstraint(
                fields=["rate_plan", "effective_from"],
                condition=models.Q(status="published"),
                name="published_version_effective_from_unique",
            ),
        ]
        ordering = ["rate_plan_id", "version"]

    def __str__(self) -> str:
        return f"{self.rate_plan} v{self.version}"

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED

    def _stored_as_published(self) -> bool:
        """The persisted state decides: an in-memory copy may be stale."""
        return bool(self.pk) and type(self).objects.filter(pk=self.pk, status=self.Status.PUBLISHED).exists()

    def save(self, *args, **kwargs) -> None:
        if self._stored_as_published():
            raise PublishedVersionError(f"{self} is published and immutable; revise it to create a new version.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.is_published or self._stored_as_published():
            raise PublishedVersionError(f"{self} is published and cannot be deleted.")
        return super().delete(*args, **kwargs)


class MetricConfig(TenantOwned):
    """How one metric is priced in one rate plan version. `config` is exactly what the rating
    engine takes: {"model": "per_unit", "rate": "0.003", ...}; validated by billing.rating."""

    version = models.ForeignKey(RatePlanVersion, on_delete=models.CASCADE, related_name="metric_configs")
    metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="configs")
    config = models.JSONField()
    same_tenant_fields = ("version", "metric")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "metric"], name="metric_config_unique_per_version")]

    def __str__(self) -> str:
        return f"{self.metric} @ {self.version}"

    def clean(self) -> None:
        super().clean()
        from billing.rating import ConfigError, validate_config

        try:
            self.config = validate_config(self.config)
        except ConfigError as error:
            raise ValidationError({"config": f"{error.field}: {error.message}"}) from error

    def _ensure_draft(self) -> None:
        version_status = RatePlanVersion.objects.filter(pk=self.version_id).values_list("status", flat=True).first()
        if version_status == RatePlanVersion.Status.PUBLISHED:
            raise PublishedVersionError(
                f"Rate plan version {self.version_id} is published; its metric configs cannot change."
            )

    def save(self, *args, **kwargs) -> None:
        self._ensure_draft()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._ensure_draft()
        return super().delete(*args, **kwargs)


class Subscription(TenantOwned):
    """A customer's subscription to an offering on a rate plan. Events are rated against the
    subscription active at the event's timestamp (started_at <= T < ended_at) whose rate plan
    version in force at T prices the event's metric."""

    class BillingMode(models.TextChoices):
        POSTPAID = "postpaid", "Postpaid"
        PREPAID = "prepaid", "Prepaid"
        HYBRID = "hybrid", "Hybrid"

    class Cadence(models.TextChoices):
        MONTHLY = "monthly", "Monthly"
        WEEKLY = "weekly", "Weekly"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        CANCELED = "canceled", "Canceled"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    offering = models.ForeignKey(Offering, on_delete=models.PROTECT, related_name="subscriptions")
    rate_plan = models.ForeignKey(RatePlan, on_delete=models.PROTECT, related_name="subscriptions")
    billing_mode = models.CharField(max_length=16, choices=BillingMode.choices, default=BillingMode.POSTPAID)
    billing_cadence = models.CharField(max_length=16, choices=Cadence.choices, default=Cadence.MONTHLY)
    billing_anchor = models.DateTimeField(
        help_text="Start of the first billing period; later periods follow at the cadence.",
    )
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency_code])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # Settlement terms (billing.settlement): per period, in the subscription's currency.
    min_commitment = models.DecimalField(
        max_digits=20, decimal_places=6, null=True, blank=True,
        help_text="Minimum spend per period: a true-up line brings lower charges up to it.",
    )
    spend_cap = models.DecimalField(
        max_digits=20, decimal_places=6, null=True, blank=True, help_text="Maximum spend per period."
    )
    spend_cap_action = models.CharField(
        max_length=8, choices=[("cap", "Cap the charges"), ("alert", "Alert only")], default="cap",
    )
    invoice_threshold = models.DecimalField(
        max_digits=20, decimal_places=6, null=True, blank=True,
        help_text="Interim invoice as soon as the period's accrued charges (not yet invoiced) reach this amount.",
    )
    same_tenant_fields = ("customer", "offering", "rate_plan")

    class Meta:
        indexes = [models.Index(fields=["customer", "status"])]

    def __str__(self) -> str:
        return f"{self.customer} · {self.rate_plan}"

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.rate_plan_id and self.offering_id and self.rate_plan.offering_id != self.offering_id:
            errors["rate_plan"] = "The rate plan must belong to the subscription's offering."
        if self.rate_plan_id and self.currency and self.rate_plan.currency != self.currency:
            errors["currency"] = f"Must match the rate plan's currency ({self.rate_plan.currency})."
        if self.ended_at and self.started_at and self.ended_at <= self.started_at:
            errors["ended_at"] = "Must be after started_at."
        if self.billing_anchor and self.started_at and self.billing_anchor > self.started_at:
            errors["billing_anchor"] = "Must be at or before started_at."
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs) -> None:
        # A canceled subscription stops rating events from its end; without one, from now.
        if self.status == self.Status.CANCELED and self.ended_at is None:
            self.ended_at = timezone.now()
        super().save(*args, **kwargs)

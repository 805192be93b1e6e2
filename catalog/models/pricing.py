"""What a tenant sells and at what price: Product → Metric; Offering → Rate plan → Rate plan
version → Metric config. A published rate plan version, and its metric configs, never change."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from aforo.money import currency_is_valid

from .tenants import TenantOwned


def validate_currency_code(value: str) -> None:
    """Model-field validator: an active ISO 4217 currency with a minor unit, in upper case
    (aforo.money). "XXX", "XTS" and made-up codes such as "ABC" are not money."""
    if not currency_is_valid(value):
        raise ValidationError(
            "%(value)s is not an active ISO 4217 currency code (upper case, e.g. USD).", code="invalid_currency",
            params={"value": repr(value)},
        )


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

"""Tenants, the base every catalog row shares, and the tenant's operators and credentials.

Every row below Tenant belongs to exactly one tenant (`TenantOwned`) and every relation stays
inside it (checked in `clean()`, which services, serializers and the admin all run). Every
change bumps the tenant's catalog generation in the same transaction, which is what keeps the
enrichment cache from ever serving a stale hierarchy (ARCHITECTURE.md §4.4).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models, transaction
from django.utils import timezone

from aforo.billing_details import CountryField, validate_address, validate_tax_id

from ..generation import catalog_generation_bump, generation_seed


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
    # Seller details, printed on every invoice (aforo.billing_details validates them); all optional.
    legal_name = models.CharField(
        max_length=200, blank=True, default="", help_text="The seller's registered name on invoices (else the name)."
    )
    address = models.TextField(
        max_length=700, blank=True, default="", validators=[validate_address],
        help_text="The seller's address, one line per line (at most 6 lines of 100 characters).",
    )
    country = CountryField(help_text="ISO 3166-1 alpha-2 code, e.g. DE.")
    tax_id = models.CharField(
        max_length=32, blank=True, default="", validators=[validate_tax_id], help_text="VAT number, EIN, GSTIN, …"
    )
    billing_email = models.EmailField(blank=True, default="", help_text="Where customers write about invoices.")
    # Defaults of a new subscription's invoice terms (the API and the admin's add form take them
    # when a subscription does not say): the tenant's usual contract.
    default_net_terms_days = models.PositiveSmallIntegerField(
        default=30, validators=[MaxValueValidator(365)],
        help_text="New subscriptions' net payment terms, in days after finalization (0: due on issue).",
    )
    default_invoice_grace_hours = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(720)],
        help_text="New subscriptions' draft grace: hours a settled invoice stays a draft (0: finalized at once).",
    )

    def __str__(self) -> str:
        return self.name


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
    # Why and by whom (catalog.services.tenant_token_revoke), like an API key's.
    revoked_reason = models.CharField(max_length=500, blank=True, default="")
    revoked_by = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

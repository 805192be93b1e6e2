"""The customer side of the hierarchy: Customer → Team → App/Agent → API key, and the logins
of a customer (CustomerUser)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from aforo.billing_details import CountryField, validate_address, validate_tax_id

from .tenants import TenantOwned


class Customer(TenantOwned):
    external_id = models.CharField(max_length=128, blank=True, help_text="Your own id for this customer.")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    # Buyer details, printed on its invoices (aforo.billing_details validates them); all optional.
    billing_name = models.CharField(
        max_length=200, blank=True, default="", help_text="The buyer's legal name on invoices (else the name)."
    )
    billing_address = models.TextField(
        max_length=700, blank=True, default="", validators=[validate_address],
        help_text="One line per line of the address (at most 6 lines of 100 characters).",
    )
    country = CountryField(help_text="ISO 3166-1 alpha-2 code, e.g. FR.")
    tax_id = models.CharField(
        max_length=32, blank=True, default="", validators=[validate_tax_id], help_text="VAT number, EIN, GSTIN, …"
    )
    billing_email = models.EmailField(blank=True, default="", help_text="Where invoices go (else the email).")

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
    # Why and by whom (an operator's login or an API token's prefix): a revocation is destructive
    # and is never made without a reason (catalog.services.api_key_revoke).
    revoked_reason = models.CharField(max_length=500, blank=True, default="", editable=False)
    revoked_by = models.CharField(max_length=200, blank=True, default="", editable=False)
    same_tenant_fields = ("app",)

    class Meta:
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.app})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

"""Admin for tenants, their operators and credentials, customers, teams, apps and API keys."""


from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html
from django.utils import timezone

from .. import services
from ..models import (
    ApiKey,
    App,
    Customer,
    CustomerUser,
    Team,
    Tenant,
    TenantMember,
    TenantToken,
)

admin.site.site_header = "Aforo operator admin"
admin.site.site_title = "Aforo admin"
admin.site.index_title = "Catalog, ledgers and running totals"
# No model list on the left of every page: it took ~300 of a 1280 px screen from the list pages
# (whose tables then scrolled sideways); the home page and the breadcrumbs lead everywhere.
admin.site.enable_nav_sidebar = False

TOKEN_REVOKE_CONSEQUENCES = (
    "Requests carrying these tokens are refused with 401 invalid_credentials from now on (within the few seconds "
    "the credential cache keeps a token).",
    "Gateways and SDKs posting events with an ingest token stop delivering (they keep retrying and spooling): give "
    "them a new token first.",
    "A revoked token cannot be reactivated. Your reason and your login are stored on each token.",
)
SHOWN_ONCE = "copy it now: only its hash is stored, it will not be shown again."
REVOKE_CONSEQUENCES = (
    "Events timestamped from now on that carry these keys no longer match: they are kept as unmatched usage, "
    "not billed.",
    "Events timestamped before now (late arrivals) still bill to the key's customer.",
    "The apps using these keys must be given new ones; a revoked key cannot be reactivated.",
    "Your reason and your login are stored on each key.",
)


from .confirm import ReasonForm, action_carry, confirmation_page, is_confirmed, operator_name
from .scoping import (
    TenantScopedModelAdmin,
    adopt_saved,
    is_unscoped,
    operator_tenant,
)

# --- tenants and people ---------------------------------------------------------------------


@admin.register(Tenant)
class TenantAdmin(TenantScopedModelAdmin):
    tenant_lookup = "pk"
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = [
        (None, {"fields": ["name", "slug"]}),
        ("Defaults of new subscriptions' invoice terms", {"fields": ["default_net_terms_days",
                                                                    "default_invoice_grace_hours"]}),
        ("Seller details (printed on every invoice)", {"fields": ["legal_name", "address", "country", "tax_id",
                                                                  "billing_email"]}),
    ]

    def has_add_permission(self, request) -> bool:
        return is_unscoped(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return is_unscoped(request)


@admin.register(TenantMember)
class TenantMemberAdmin(TenantScopedModelAdmin):
    """Who operates which tenant: superusers only (granting it is granting a tenant)."""

    list_display = ("user", "tenant")
    list_select_related = ("user", "tenant")
    search_fields = ("user__username", "user__email", "tenant__name")

    def has_module_permission(self, request) -> bool:
        return is_unscoped(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return is_unscoped(request)

    def has_add_permission(self, request) -> bool:
        return is_unscoped(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return is_unscoped(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return is_unscoped(request)


@admin.register(TenantToken)
class TenantTokenAdmin(TenantScopedModelAdmin):
    """Tenant API credentials: created through `tenant_token_create` (the secret is shown once,
    in a message), revoked by an action, never deleted (the audit trail stays)."""

    list_display = ("name", "kind", "prefix", "is_active", "created_at", "revoked_at")
    list_filter = ("kind", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    actions = ["revoke_selected"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return [name for name in ("tenant", "kind", "name") if name not in self.get_exclude(request, obj)]
        return ["tenant", "name", "kind", "prefix", "created_at", "revoked_at", "revoked_reason", "revoked_by"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "kind", "prefix", "created_at", "revoked_at", "revoked_reason", "revoked_by"] if obj is not None else []

    @admin.display(boolean=True, description="active")
    def is_active(self, token: TenantToken) -> bool:
        return token.is_active

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        token, secret = services.tenant_token_create(tenant=obj.tenant, kind=obj.kind, name=obj.name)
        adopt_saved(obj, token)
        messages.success(request, f"Tenant token “{token.name}”: {secret} — {SHOWN_ONCE}")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke selected tokens…", permissions=["change"])
    def revoke_selected(self, request, queryset):
        """A confirmation page first (the tokens, what revoking does, the required reason); then
        each active token revoked at the same instant, with the reason and the operator's login."""
        tokens = list(queryset.select_related("tenant").order_by("id"))
        form = ReasonForm(request.POST if is_confirmed(request) else None)
        if is_confirmed(request) and form.is_valid():
            reason, revoked_at = form.cleaned_data["reason"].strip(), timezone.now()
            active = [token for token in tokens if token.revoked_at is None]
            for token in active:
                services.tenant_token_revoke(token=token, reason=reason, revoked_by=operator_name(request), at=revoked_at)
                self.log_change(request, token, f"Revoked: {reason}")
            skipped = len(tokens) - len(active)
            self.message_user(
                request, f"Revoked {len(active)} token(s) ({reason})."
                + (f" {skipped} were revoked already: unchanged." if skipped else ""), messages.SUCCESS,
            )
            return None
        rows = [
            (t.prefix + "…", t.name, t.get_kind_display(), t.tenant.name,
             "active" if t.is_active else f"revoked already ({t.revoked_at:%Y-%m-%d %H:%M} UTC): unchanged")
            for t in tokens
        ]
        return confirmation_page(
            self, request, title="Revoke tenant tokens", confirm_label="Revoke", form=form, carry=action_carry(request),
            cancel_url=reverse(f"{self.admin_site.name}:catalog_tenanttoken_changelist"),
            intro=f"{len(tokens)} token(s) selected. Nothing has changed yet.",
            subject_headers=("token", "name", "kind", "tenant", "status"), subject_rows=rows,
            consequences=TOKEN_REVOKE_CONSEQUENCES,
        )


@admin.register(Customer)
class CustomerAdmin(TenantScopedModelAdmin):
    list_display = ("name", "external_id", "email", "country", "created_at", "overview")
    search_fields = ("name", "external_id", "email", "billing_name", "tax_id")
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["tenant", "name", "external_id", "email"]}),
        ("Billing details (the buyer on its invoices)", {"fields": ["billing_name", "billing_address", "country",
                                                                    "tax_id", "billing_email"]}),
    ]

    @admin.display(description="overview")
    def overview(self, customer: Customer) -> str:
        """The customer page (billing.admin_customer: registered by name, billing being above)."""
        return format_html('<a href="{}">Overview</a>', reverse("admin:customer_overview", args=[customer.pk]))

    def get_fieldsets(self, request, obj=None):
        excluded = set(self.get_exclude(request, obj))  # the tenant, for a scoped operator
        return [(title, {**options, "fields": [name for name in options["fields"] if name not in excluded]})
                for title, options in self.fieldsets]


@admin.register(CustomerUser)
class CustomerUserAdmin(TenantScopedModelAdmin):
    """Dashboard logins of customers. A scoped operator may link only non-staff users that
    are not already another tenant's customer login."""

    tenant_lookup = "customer__tenant"
    list_display = ("user", "customer")
    list_select_related = ("user", "customer")
    search_fields = ("user__username", "user__email", "customer__name", "customer__external_id")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not is_unscoped(request):
            tenant = operator_tenant(request)
            kwargs["queryset"] = get_user_model().objects.filter(
                Q(is_staff=False, is_superuser=False, tenant_membership__isnull=True)
                & (Q(customer_user__isnull=True) | Q(customer_user__customer__tenant_id=getattr(tenant, "pk", None)))
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Team)
class TeamAdmin(TenantScopedModelAdmin):
    list_display = ("name", "customer", "created_at")
    list_select_related = ("customer",)
    search_fields = ("name", "customer__name", "customer__external_id")
    list_filter = (("customer", admin.RelatedOnlyFieldListFilter),)


@admin.register(App)
class AppAdmin(TenantScopedModelAdmin):
    list_display = ("name", "kind", "team", "customer_name", "created_at")
    list_select_related = ("team__customer",)
    search_fields = ("name", "team__name", "team__customer__name")
    list_filter = ("kind",)

    @admin.display(description="customer", ordering="team__customer__name")
    def customer_name(self, app: App) -> str:
        return app.team.customer.name


class _ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedModelAdmin):
    """Keys are issued by `api_key_create`: the full key appears once, in the success message,
    and only its hash is stored. Revoked (not deleted), so past events stay explained."""

    list_display = ("prefix", "name", "app", "customer_name", "is_active", "created_at", "revoked_at")
    list_select_related = ("app__team__customer",)
    list_filter = (_ApiKeyStatusFilter, "app__kind")
    search_fields = ("prefix", "name", "app__name", "app__team__customer__name")
    actions = ["revoke_selected"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["app", "name"]
        return ["prefix", "name", "app", "created_at", "revoked_at", "revoked_reason", "revoked_by"]

    def get_readonly_fields(self, request, obj=None):
        return ["prefix", "app", "created_at", "revoked_at", "revoked_reason", "revoked_by"] if obj is not None else []

    @admin.display(description="customer", ordering="app__team__customer__name")
    def customer_name(self, api_key: ApiKey) -> str:
        return api_key.app.team.customer.name

    @admin.display(boolean=True, description="active")
    def is_active(self, api_key: ApiKey) -> bool:
        return api_key.is_active

    def save_model(self, request, obj, form, change):
        if change:
            services.catalog_object_save(instance=obj)
            return
        api_key, secret = services.api_key_create(app=obj.app, name=obj.name)
        adopt_saved(obj, api_key)
        messages.success(request, f"API key for {api_key.app}: {secret} — {SHOWN_ONCE}")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke selected keys…", permissions=["change"])
    def revoke_selected(self, request, queryset):
        """A confirmation page first (the keys, what revoking does, the required reason); then
        each active key revoked at the same instant, with the reason and the operator's login."""
        keys = list(queryset.select_related("app__team__customer").order_by("id"))
        form = ReasonForm(request.POST if is_confirmed(request) else None)
        if is_confirmed(request) and form.is_valid():
            reason, revoked_at = form.cleaned_data["reason"].strip(), timezone.now()
            active = [api_key for api_key in keys if api_key.revoked_at is None]
            for api_key in active:
                services.api_key_revoke(api_key=api_key, reason=reason, revoked_by=operator_name(request), at=revoked_at)
                self.log_change(request, api_key, f"Revoked: {reason}")
            skipped = len(keys) - len(active)
            self.message_user(
                request, f"Revoked {len(active)} key(s) ({reason}); events timestamped from now on no longer match "
                "them." + (f" {skipped} were revoked already: unchanged." if skipped else ""), messages.SUCCESS,
            )
            return None
        rows = [
            (k.prefix + "…", k.name or "—", k.app.name, k.app.team.customer.name,
             "active" if k.is_active else f"revoked already ({k.revoked_at:%Y-%m-%d %H:%M} UTC): unchanged")
            for k in keys
        ]
        return confirmation_page(
            self, request, title="Revoke API keys", confirm_label="Revoke", form=form, carry=action_carry(request),
            cancel_url=reverse(f"{self.admin_site.name}:catalog_apikey_changelist"),
            intro=f"{len(keys)} key(s) selected. Nothing has changed yet.",
            subject_headers=("key", "name", "app", "customer", "status"), subject_rows=rows,
            consequences=REVOKE_CONSEQUENCES,
        )

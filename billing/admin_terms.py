"""Commercial terms in the operator admin: discounts (a subscription's) and tax rates (a
customer's), each with its own list and form, and listed on the subscription's / customer's page.
Saving and deleting go through billing.terms: a term applied to an issued invoice only takes an
end date (its other fields are read-only) and cannot be deleted."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from catalog.admin import TenantScopedModelAdmin, TenantScopedTabularInline
from catalog.models import Customer, Subscription

from .models import Coupon, CouponRedemption, Discount, TaxRate
from .settlement.coupons import coupon_remaining
from .terms import TermInUse, term_delete, term_in_use, term_save

DISCOUNT_FIELDS = ("subscription", "kind", "value", "metric", "position", "description", "periods", "starts_at", "ends_at")
TAX_FIELDS = ("customer", "name", "percent", "metric", "starts_at", "ends_at")


class TermAdmin(TenantScopedModelAdmin):
    term_fields: tuple[str, ...] = ()

    def get_fields(self, request, obj=None):
        return [name for name in super().get_fields(request, obj) if name != "created_at"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and term_in_use(obj):
            fields += [name for name in self.term_fields if name != "ends_at" and name not in fields]
        return fields

    @admin.display(boolean=True, description="in use")
    def in_use(self, term) -> bool:
        return term_in_use(term)

    def save_model(self, request, obj, form, change):
        try:
            if change:
                term_save(term=obj, changed={name: form.cleaned_data[name] for name in form.changed_data})
            else:
                term_save(term=obj)
        except (TermInUse, ValidationError) as error:  # raced with an invoice: say so, change nothing
            self.message_user(request, " ".join(getattr(error, "messages", [str(error)])), messages.ERROR)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or not term_in_use(obj))

    def delete_model(self, request, obj):
        term_delete(term=obj)

    def delete_queryset(self, request, queryset):
        for term in queryset:
            try:
                term_delete(term=term)
            except TermInUse as error:
                self.message_user(request, str(error), messages.ERROR)


@admin.register(Discount)
class DiscountAdmin(TermAdmin):
    term_fields = DISCOUNT_FIELDS
    list_display = ("subscription", "__str__", "kind", "metric", "position", "periods", "starts_at", "ends_at", "in_use")
    list_select_related = ("subscription__customer", "subscription__rate_plan", "metric")
    list_filter = ("kind",)
    search_fields = ("subscription__customer__name", "description")


@admin.register(TaxRate)
class TaxRateAdmin(TermAdmin):
    term_fields = TAX_FIELDS
    list_display = ("customer", "name", "percent", "metric", "starts_at", "ends_at", "in_use")
    list_select_related = ("customer", "metric")
    search_fields = ("customer__name", "name")


class _TermInline(TenantScopedTabularInline):
    """The terms on the parent's page, read-only, each linking to its own form."""

    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        match = getattr(request, "resolver_match", None)
        adding = bool(match and (match.url_name or "").endswith("_add"))  # a new row has no terms to list
        # A listing only: never part of the parent's form, so a POST of it needs no formset data.
        return not adding and request.method != "POST" and super().has_view_permission(request, obj)


class DiscountInline(_TermInline):
    model = Discount
    fields = readonly_fields = ("kind", "value", "metric", "position", "description", "periods", "starts_at", "ends_at")


class TaxRateInline(_TermInline):
    model = TaxRate
    fields = readonly_fields = ("name", "percent", "metric", "starts_at", "ends_at")


# The catalog's admins list the terms billing keeps on their rows (billing is the layer above).
for model, inline in ((Subscription, DiscountInline), (Customer, TaxRateInline)):
    registered = admin.site._registry[model]
    registered.inlines = (*registered.inlines, inline)


class CouponRedemptionInline(_TermInline):
    model = CouponRedemption
    fields = readonly_fields = ("invoice", "amount", "created_at")


@admin.register(Coupon)
class CouponAdmin(TenantScopedModelAdmin):
    """A customer's coupons; what each invoice took is listed below (a void invoice's part is
    given back). Its amount, currency and customer are fixed once created; one an invoice used
    is never deleted (expire it)."""

    list_display = ("__str__", "customer", "currency", "amount", "remaining", "expires_at")
    list_select_related = ("customer",)
    search_fields = ("code", "customer__name")
    inlines = (CouponRedemptionInline,)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields + ["customer", "currency", "amount"] if obj is not None else fields

    @admin.display(description="remaining")
    def remaining(self, coupon: Coupon) -> str:
        return f"{coupon_remaining(coupon)} {coupon.currency}"

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and (obj is None or not obj.redemptions.exists())

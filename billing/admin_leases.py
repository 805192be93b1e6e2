"""The operator admin for budget leases: read-only, tenant-scoped, newest first, with a "return
selected" action (each lease returned through billing.leases.services, reporting what its
events used so far: nothing counted twice, the rest back to the limit)."""

from __future__ import annotations

from django.contrib import admin, messages

from aforo.exceptions import ApiError
from aforo.money import decimal_text
from catalog.admin import metric_code_filter
from catalog.admin.ledger import written_date_filter
from metering.admin import LedgerAdmin, exact_decimal

from .leases.services import lease_return, lease_state
from .models import Lease

REPORTED_LEASES = 20


@admin.register(Lease)
class LeaseAdmin(LedgerAdmin):
    # Fits a 1280 px screen: the subscription, returned and expired figures are on each lease's page.
    list_display = (
        "id", "customer", "metric", "dimension_key", "holder", "status", "leased_exact", "consumed_exact",
        "reserved_exact", "used_exact", "overrun_exact", "expires_at",
    )
    list_select_related = ("customer", "metric")
    list_filter = ("status", metric_code_filter("metric__code"), written_date_filter("created_at", "created"))
    search_fields = ("=holder", "=idempotency_key", "=customer__external_id")
    ordering = ("-id",)
    actions = ("return_selected",)
    leased_exact = exact_decimal("leased")
    consumed_exact = exact_decimal("consumed")
    used_exact = exact_decimal("used")
    returned_exact = exact_decimal("returned")
    expired_exact = exact_decimal("expired")
    overrun_exact = exact_decimal("overrun")

    @admin.display(description="reserved")
    def reserved_exact(self, lease: Lease) -> str:
        return decimal_text(lease_state(lease).reserved)

    def has_return_permission(self, request) -> bool:
        return request.user.has_perm("billing.change_lease")

    @admin.action(description="Return selected leases (used = what their events rated so far)", permissions=["return"])
    def return_selected(self, request, queryset):
        # `queryset` is already confined to the operator's tenant; each lease names its own.
        leases = list(queryset.order_by("id"))
        returned = 0
        for index, lease in enumerate(leases):
            try:
                closed, changed = lease_return(tenant_id=lease.tenant_id, lease_id=lease.pk, used=lease.reported)
                level = messages.SUCCESS if changed else messages.WARNING
                text = f"Lease #{lease.pk} returned: {decimal_text(closed.returned)} units back." if changed else (
                    f"Lease #{lease.pk} was already returned."
                )
            except ApiError as error:
                level, text = messages.ERROR, f"Lease #{lease.pk} not returned: {error.message}"
            returned += level == messages.SUCCESS
            if index < REPORTED_LEASES:
                self.message_user(request, text, level)
        self.message_user(request, f"Returned {returned} of {len(leases)} selected lease(s).", messages.INFO)

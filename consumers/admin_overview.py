"""/admin/overview/: revenue this month and last, the usage trend (hourly rollups), wallets
below zero, unresolved unmatched usage by reason, dead-lettered records and consumer lag.
Scoped to the operator's tenant (a superuser sees every tenant); the Kafka figures are the
cluster's (shared by every tenant) and read "unknown" when the broker does not answer."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from aforo.admin_pages import admin_page_register
from billing.ops_overview import revenue_by_month, usage_trend
from catalog.admin import is_unscoped, operator_tenant
from metering.selectors import unmatched_usage_counts
from wallets.selectors import wallets_below_zero

from .pipeline import pipeline_state


def overview_page(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("billing.view_invoice"):
        raise PermissionDenied
    if is_unscoped(request):
        tenant_id = None
    else:
        tenant = operator_tenant(request)
        if tenant is None:
            raise PermissionDenied("Your staff user belongs to no tenant.")
        tenant_id = tenant.pk
    now = timezone.now()
    unmatched = unmatched_usage_counts(tenant_id=tenant_id)
    context = {
        **admin.site.each_context(request),
        "title": "Overview",
        "as_of": now,
        "scoped": tenant_id is not None,
        "revenue": revenue_by_month(tenant_id=tenant_id, now=now),
        "trend": usage_trend(tenant_id=tenant_id, now=now),
        "below_zero": wallets_below_zero(tenant_id=tenant_id),
        "unmatched": unmatched,
        "unmatched_total": sum(row["count"] for row in unmatched),
        "pipeline": pipeline_state(),
    }
    return TemplateResponse(request, "admin/overview.html", context)


admin_page_register(route="overview/", view=overview_page, name="overview")

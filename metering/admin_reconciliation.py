"""/admin/reconciliation/: the reconciliation report for the operator's tenant (a superuser
picks the tenant with ?tenant=), with ?period= and ?customer= as the API takes them."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from aforo.admin_pages import admin_page_register
from aforo.kafka import BrokerUnavailable
from aforo.params import parse_id
from catalog.admin import is_unscoped, operator_tenant

from .reconciliation.report import PeriodInvalid, period_parse, reconciliation_report


def reconciliation_page(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("metering.view_rawevent"):
        raise PermissionDenied
    if is_unscoped(request):
        tenant_id = parse_id(request.GET.get("tenant"))
    else:
        tenant = operator_tenant(request)
        if tenant is None:
            raise PermissionDenied("Your staff user belongs to no tenant.")
        tenant_id = tenant.pk
    now = timezone.now()
    context = {**admin.site.each_context(request), "title": "Reconciliation", "as_of": now, "error": "", "report": None,
               "period_text": request.GET.get("period", ""), "customer_text": request.GET.get("customer", ""),
               "tenant_text": request.GET.get("tenant", ""), "unscoped": is_unscoped(request)}
    customer_id = parse_id(request.GET.get("customer")) if request.GET.get("customer") else None
    if tenant_id is None:
        context["error"] = "Choose a tenant id (?tenant=)."
    elif request.GET.get("customer") and customer_id is None:
        context["error"] = "customer: an id (digits)."
    else:
        try:
            period = period_parse(request.GET.get("period"), now=now)
            context["report"] = reconciliation_report(tenant_id=tenant_id, period=period, customer_id=customer_id, now=now)
        except PeriodInvalid as error:
            context["error"] = f"period: {error}"
        except BrokerUnavailable as error:
            context["error"] = f"The usage topic could not be read: {error}"
    return TemplateResponse(request, "admin/reconciliation.html", context)


admin_page_register(route="reconciliation/", view=reconciliation_page, name="reconciliation")

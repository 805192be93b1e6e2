"""The operator admin's customer page, /admin/customers/<id>/overview/: everything about one
customer on one read-only page (billing.customer_overview), each section linking to the admin
page where it is changed. Scoped as every admin: another tenant's customer is a 404."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from aforo.admin_pages import admin_page_register
from catalog.admin import is_unscoped, operator_tenant
from catalog.models import Customer

from .customer_overview import customer_overview


def customer_overview_page(request: HttpRequest, pk: int) -> HttpResponse:
    if not request.user.has_perm("catalog.view_customer"):
        raise PermissionDenied
    customers = Customer.objects.select_related("tenant")
    if not is_unscoped(request):
        tenant = operator_tenant(request)
        customers = customers.filter(tenant_id=tenant.pk if tenant else None)
    customer = customers.filter(pk=pk).first()
    if customer is None:
        raise Http404("No such customer.")
    context = {
        **admin.site.each_context(request),
        "title": f"Customer: {customer.name}",
        "customer": customer,
        "opts": Customer._meta,
        **customer_overview(customer=customer),
    }
    return TemplateResponse(request, "admin/customer_overview.html", context)


admin_page_register(route="customers/<int:pk>/overview/", view=customer_overview_page, name="customer_overview")

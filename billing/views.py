"""The customer dashboard: the current period's usage per metric and the customer's prepaid
wallets (balance, held, available, active holds, recent ledger entries), refreshed by polling
usage.json every 2 seconds (`customer_usage_current`, the same the usage API returns, and
`wallets_for_customer`).

Who sees whom: a customer login (`CustomerUser`) sees its own customer only; staff pass
?customer=ID, confined to their tenant (`TenantMember`) unless superuser; anyone else gets 403."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from aforo.exceptions import error_body
from catalog.models import Customer, CustomerUser, TenantMember
from wallets.selectors import wallets_for_customer

from .selectors import customer_usage_current

POLL_INTERVAL_MS = 2000
STAFF_PICKER_LIMIT = 200


def _staff_customers(user):
    """The customers a staff user may look at (their tenant's; every one for a superuser)."""
    customers = Customer.objects.order_by("name", "id")
    if user.is_superuser:
        return customers
    membership = TenantMember.objects.filter(user_id=user.pk).first()
    return customers.filter(tenant_id=membership.tenant_id) if membership else customers.none()


def dashboard_customer(request: HttpRequest) -> Customer | None:
    """The customer whose usage this request may see. None: a staff user who has not picked
    one yet. Raises PermissionDenied (403) or Http404 for anything not theirs to see."""
    user = request.user
    requested = request.GET.get("customer")
    own = CustomerUser.objects.select_related("customer").filter(user_id=user.pk).first()
    if requested:
        if not requested.isdigit():
            raise Http404("No such customer.")
        if own is not None and own.customer_id == int(requested):
            return own.customer
        if not user.is_staff:
            raise PermissionDenied("You can only see the usage of your own account.")
        customer = _staff_customers(user).filter(pk=int(requested)).first()
        if customer is None:
            raise Http404("No such customer in your tenant.")
        return customer
    if own is not None:
        return own.customer
    if user.is_staff:
        return None
    raise PermissionDenied("This login is not linked to a customer account, so there is no usage to show.")


def _dashboard(customer: Customer) -> dict:
    """What the page shows and usage.json returns: the usage, plus the wallets under "wallets"."""
    now = timezone.now()
    return {
        **customer_usage_current(customer=customer, now=now),
        "wallets": wallets_for_customer(customer=customer, now=now),
    }


@never_cache
@login_required
def usage_page(request: HttpRequest):
    customer = dashboard_customer(request)
    if customer is None:
        customers = list(_staff_customers(request.user).select_related("tenant")[:STAFF_PICKER_LIMIT])
        return render(request, "dashboard/pick_customer.html", {"customers": customers})
    usage = _dashboard(customer)
    return render(
        request,
        "dashboard/usage.html",
        {"customer": customer, "usage": usage, "poll_interval_ms": POLL_INTERVAL_MS, "query": request.GET.urlencode()},
    )


@never_cache
def usage_json(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return JsonResponse(error_body("missing_credentials", "Log in to see usage."), status=401)
    try:
        customer = dashboard_customer(request)
    except PermissionDenied as denied:
        return JsonResponse(error_body("forbidden", str(denied)), status=403)
    except Http404 as missing:
        return JsonResponse(error_body("not_found", str(missing)), status=404)
    if customer is None:
        return JsonResponse(error_body("customer_required", "Pass ?customer=ID."), status=400)
    return JsonResponse({"customer_name": customer.name, **_dashboard(customer)})

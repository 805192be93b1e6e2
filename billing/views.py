"""The customer dashboard: the current period's usage per metric (with its hard limit and
included allowance) and the customer's prepaid wallets (balance, held, available, active holds,
recent ledger entries), refreshed by polling usage.json every 2 seconds
(`customer_usage_current`, the same the usage API returns, and `wallets_for_customer`); the
customer's invoices, newest first, each with its lines, and for
each usage line the rated events it sums (original timestamp, dimensions, gateway metadata).

Who sees whom: a customer login (`CustomerUser`) sees its own customer only; staff pass
?customer=ID, confined to their tenant (`TenantMember`) unless superuser; anyone else gets 403.
An invoice page names its invoice, so the same rule is applied to the invoice's customer: an
invoice not theirs to see is a 404, like one that does not exist."""

from __future__ import annotations

import csv
from functools import wraps
from datetime import timezone as dt_timezone

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from aforo.exceptions import error_body
from aforo.params import parse_id
from catalog.models import Customer, CustomerUser, Subscription, TenantMember
from wallets.selectors import wallets_for_customer

from .trace import invoice_line_rated_events, invoice_with_lines, line_is_traceable, part_headings
from .models import Invoice, InvoiceLine, TrialUsage
from aforo.money import ISO_4217_MINOR_UNITS, decimal_text

from .insights import dashboard_insights
from .invoices.lifecycle import payment_status
from .alerts.selectors import alerts_active_for_customer
from .leases.selectors import leases_active_for_customer
from .selectors import customer_usage_current

POLL_INTERVAL_MS = 2000
STAFF_PICKER_LIMIT = 200
RECENT_INVOICES = 24
EVENTS_PER_PAGE = 100


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
        requested_id = parse_id(requested)
        if requested_id is None:
            raise Http404("No such customer.")
        if own is not None and own.customer_id == requested_id:
            return own.customer
        if not user.is_staff:
            raise PermissionDenied("You can only see the usage of your own account.")
        customer = _staff_customers(user).filter(pk=requested_id).first()
        if customer is None:
            raise Http404("No such customer in your tenant.")
        return customer
    if own is not None:
        return own.customer
    if user.is_staff:
        return None
    raise PermissionDenied("This login is not linked to a customer account, so there is no usage to show.")


WALLET_LABELS = {
    "prepaid": "Prepaid wallet",
    "hybrid": "Hybrid wallet (pays first; the rest is invoiced)",
}


def _dashboard(customer: Customer) -> dict:
    """What the page shows and usage.json returns: the usage, plus the wallets under "wallets",
    each labelled by the billing mode of the customer's active subscriptions in its currency
    (prepaid, hybrid, or a plain "Wallet" when none uses it), the alerts of its current
    periods under "alerts" and its active budget leases under "leases"."""
    now = timezone.now()
    usage = customer_usage_current(customer=customer, now=now)
    modes: dict[str, set[str]] = {}
    for sub in usage["subscriptions"]:
        modes.setdefault(sub["currency"], set()).add(sub["billing_mode"])
    wallets = wallets_for_customer(customer=customer, now=now)
    for wallet in wallets:
        used_by = modes.get(wallet["currency"], set())
        mode = "hybrid" if "hybrid" in used_by else "prepaid" if "prepaid" in used_by else ""
        wallet["billing_mode"], wallet["label"] = mode, WALLET_LABELS.get(mode, "Wallet")
    return {
        **usage, "wallets": wallets, "alerts": alerts_active_for_customer(customer_id=customer.pk, now=now),
        "leases": leases_active_for_customer(customer_id=customer.pk, now=now),
    }


def _grouped(text: str) -> str:
    """An exact decimal string with thousands separators ("1000.5" -> "1,000.5"), as usage.js
    formats it; never through a float."""
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, fraction = digits.partition(".")
    return f"{sign}{int(whole):,}{dot}{fraction}"


def _allowance_notes(row: dict) -> dict:
    """The metric row's limit and included allowance as the page words them (usage.js words
    them the same when it re-renders): "750 / 1,000 (75%)", "Limit reached: blocked beyond
    1,000", "included: 1,000, 250 left"."""
    limit, included = row["limit"], row["included"]
    notes: dict = {}
    if limit is not None:
        cap = _grouped(limit["units"])
        notes["limit"] = f"{_grouped(row['units'])} / {cap} ({_grouped(limit['percent_used'])}%)"
        if limit["reached"]:
            state = "Over the limit" if limit["exceeded"] else "Limit reached"
            beyond = "blocked" if limit["overage"] == "block" else "billed as overage"
            notes["limit_state"] = f"{state}: {beyond} beyond {cap}"
            if limit["overage"] == "block" and limit["exceeded"]:
                notes["limit_state"] += f" ({_grouped(limit['blocked'])} blocked, not charged)"
    if included is not None:
        notes["included"] = f"included: {_grouped(included['units'])}, {_grouped(included['remaining'])} left"
    return notes


def _subscriptions_shown(usage: dict) -> list[dict]:
    """The usage's subscriptions with each metric row's `notes` for the template; `usage` itself
    (embedded as the page's initial JSON) keeps the shape usage.json has."""
    changeable = set(
        Subscription.objects.filter(
            pk__in=[sub["subscription_id"] for sub in usage["subscriptions"]], customer_may_change_plan=True,
            status=Subscription.Status.ACTIVE,
        ).values_list("pk", flat=True)
    )
    return [
        {**sub, "metrics": [{**row, "notes": _allowance_notes(row)} for row in sub["metrics"]],
         "may_change_plan": sub["subscription_id"] in changeable}
        for sub in usage["subscriptions"]
    ]


def dashboard_trials(customer) -> list[dict]:
    """The customer's subscriptions in trial, as the usage page says it: "Trial: 4,000 of 10,000
    api_calls · ends 2026-12-15" (one query for the subscriptions, one for their free units)."""
    subscriptions = list(
        Subscription.objects.filter(customer=customer, status=Subscription.Status.ACTIVE, trial_converted_at__isnull=True)
        .filter(Q(trial_ends_at__isnull=False) | Q(trial_units__isnull=False))
        .select_related("trial_metric", "rate_plan").order_by("id")
    )
    used = dict(
        TrialUsage.objects.filter(subscription__in=subscriptions).values_list("subscription_id", "units")
    ) if subscriptions else {}
    shown = []
    for subscription in subscriptions:
        parts = []
        if subscription.trial_units is not None:
            parts.append(
                f"{_grouped(decimal_text(used.get(subscription.pk, 0)))} of {_grouped(decimal_text(subscription.trial_units))} "
                f"{subscription.trial_metric.code} free"
            )
        if subscription.trial_ends_at is not None:
            parts.append(f"ends {subscription.trial_ends_at:%Y-%m-%d %H:%M} UTC")
        shown.append({"plan": subscription.rate_plan.name, "text": "Trial: " + " · ".join(parts)})
    return shown


@never_cache
@login_required
def usage_page(request: HttpRequest):
    customer = dashboard_customer(request)
    if customer is None:
        customers = list(_staff_customers(request.user).select_related("tenant")[:STAFF_PICKER_LIMIT])
        return render(request, "dashboard/pick_customer.html", {"customers": customers})
    usage = _dashboard(customer)
    invoices = (
        Invoice.objects.filter(customer=customer).exclude(status=Invoice.Status.DRAFT).order_by("-issued_at", "-id")
    )[: RECENT_INVOICES + 1]
    return render(
        request,
        "dashboard/usage.html",
        {
            "customer": customer, "usage": usage, "subscriptions": _subscriptions_shown(usage),
            "poll_interval_ms": POLL_INTERVAL_MS,
            "query": request.GET.urlencode(),
            "invoices": invoices_with_payment(list(invoices)[:RECENT_INVOICES]),
            "more_invoices": len(invoices) > RECENT_INVOICES,
            "insights": dashboard_insights(customer=customer), "minor_units": dict(ISO_4217_MINOR_UNITS),
            "alerts": usage.get("alerts") or [], "leases": usage.get("leases") or [],
            "trials": dashboard_trials(customer),
        },
    )


def invoices_with_payment(invoices: list[Invoice]) -> list[Invoice]:
    """Each invoice with `payment` (paid / due on DATE / overdue / void / uncollectible, as the
    customer reads it), `payment_status` (its CSS class) and `due_now` (0 once void)."""
    now = timezone.now()
    for invoice in invoices:
        status = payment_status(status=invoice.status, due_at=invoice.due_at, now=now)
        invoice.payment_status = status
        invoice.due_now = 0 if invoice.status == Invoice.Status.VOID else invoice.amount_due
        invoice.payment = {
            "paid": f"Paid on {invoice.paid_at:%Y-%m-%d}" if invoice.paid_at else "Paid",
            "due": f"Due on {invoice.due_at:%Y-%m-%d}" if invoice.due_at else "Due",
            "overdue": f"Overdue (was due on {invoice.due_at:%Y-%m-%d})" if invoice.due_at else "Overdue",
            "void": "Void", "uncollectible": "Uncollectible", "draft": "Draft",
        }[status]
    return invoices


def dashboard_invoices(request: HttpRequest) -> QuerySet[Invoice]:
    """The invoices this request may see: its customer login's, and a staff user's tenant's
    (every one for a superuser) — never a draft (not issued yet: the operator's, in the admin
    and the API). Raises PermissionDenied for a login that may see none."""
    user = request.user
    own = CustomerUser.objects.filter(user_id=user.pk).values_list("customer_id", flat=True).first()
    issued = Invoice.objects.exclude(status=Invoice.Status.DRAFT)
    if user.is_superuser:
        return issued
    visible = Q(customer_id=own) if own is not None else Q(pk__in=[])
    if user.is_staff:
        visible |= Q(customer__in=_staff_customers(user))
    elif own is None:
        raise PermissionDenied("This login is not linked to a customer account, so there are no invoices to show.")
    return issued.filter(visible)


def _usage_link(request: HttpRequest, invoice: Invoice) -> str:
    own = CustomerUser.objects.filter(user_id=request.user.pk, customer_id=invoice.customer_id).exists()
    return "" if own else f"?customer={invoice.customer_id}"


@never_cache
@login_required
def invoice_page(request: HttpRequest, invoice_id: int):
    invoice = invoice_with_lines(invoices=dashboard_invoices(request), invoice_id=invoice_id)
    if invoice is None:
        raise Http404("No such invoice.")
    invoice_lines = list(invoice.lines.all())
    lines = [
        {
            "line": line, "traceable": line_is_traceable(line),
            "amount_unrounded": decimal_text(line.amount_unrounded),
            "units": None if line.units is None else decimal_text(line.units), "heading": heading,
        }
        for line, heading in zip(invoice_lines, part_headings(invoice_lines), strict=True)
    ]
    invoices_with_payment([invoice])
    return render(
        request,
        "dashboard/invoice.html",
        {
            "invoice": invoice, "customer": invoice.customer, "lines": lines,
            "usage_query": _usage_link(request, invoice),
        },
    )


def _traceable_line(request: HttpRequest, invoice_id: int, line_id: int) -> InvoiceLine:
    """A usage line of one of the invoices this login may see, or a 404."""
    line = (
        InvoiceLine.objects.filter(invoice__in=dashboard_invoices(request), invoice_id=invoice_id, pk=line_id)
        .select_related("invoice__customer", "metric")
        .first()
    )
    if line is None or not line_is_traceable(line):
        raise Http404("No such usage line.")
    return line


CSV_COLUMNS = (
    "event_id", "timestamp", "received_at", "metric", "dimension_key", "quantity", "units_before", "units_after",
    "amount", "currency", "blocked_units", "rated_event_id", "rated_at",
)


class _Echo:
    def write(self, value: str) -> str:
        return value


@never_cache
@login_required
def invoice_line_events_csv(request: HttpRequest, invoice_id: int, line_id: int):
    """Every rated event behind a usage line, in event-time order, as CSV — streamed in chunks of
    2,000 rows (a line of millions of events never sits in memory). Exact decimals, UTC ISO
    times; the amounts sum to the line's amount before rounding."""
    line = _traceable_line(request, invoice_id, line_id)
    events = (
        invoice_line_rated_events(line=line, subscription_id=line.invoice.subscription_id)
        .order_by("event_timestamp", "id")
        .values_list(
            "raw_event__event_id", "event_timestamp", "raw_event__received_at", "dimension_key", "quantity",
            "units_before", "units_after", "amount", "currency", "blocked_units", "id", "rated_at",
        )
    )
    writer = csv.writer(_Echo())
    code = line.metric.code if line.metric else ""

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for event_id, at, received, key, quantity, before, after, amount, currency, blocked, rated_id, rated_at in (
            events.iterator(chunk_size=2000)
        ):
            yield writer.writerow([
                event_id, _iso(at), _iso(received), code, key, decimal_text(quantity), decimal_text(before),
                decimal_text(after), decimal_text(amount), currency, decimal_text(blocked), rated_id, _iso(rated_at),
            ])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    name = f"{line.invoice.number}-line-{line.position}-events.csv".replace('"', "")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _iso(moment) -> str:
    return moment.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")


@never_cache
@login_required
def invoice_line_events_page(request: HttpRequest, invoice_id: int, line_id: int):
    """A usage line's rated events, EVENTS_PER_PAGE at a time by id (keyset: ?after=ID, cheap at
    any depth; the line's event_count gives the total without a COUNT)."""
    line = _traceable_line(request, invoice_id, line_id)
    after = parse_id(request.GET.get("after"))
    events = invoice_line_rated_events(line=line, subscription_id=line.invoice.subscription_id)
    if after is not None:
        events = events.filter(id__gt=after)
    page = list(events.select_related("raw_event")[: EVENTS_PER_PAGE + 1])
    has_next = len(page) > EVENTS_PER_PAGE
    page = page[:EVENTS_PER_PAGE]
    return render(
        request,
        "dashboard/line_events.html",
        {
            "invoice": line.invoice, "customer": line.invoice.customer, "line": line,
            "line_amount_unrounded": decimal_text(line.amount_unrounded),
            "events": [
                {"rated": rated, "quantity": decimal_text(rated.quantity), "amount": decimal_text(rated.amount)}
                for rated in page
            ],
            "next_after": page[-1].pk if has_next else None, "is_first_page": after is None,
        },
    )


def dashboard_json(view):
    """A JSON view of the dashboard: called with the customer the request may see; the ways it
    may not (not logged in, not theirs, no such customer, a staff user who has not picked one)
    are JSON errors with stable codes, never a login redirect."""

    @wraps(view)
    def wrapped(request: HttpRequest) -> JsonResponse:
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
        return view(request, customer)

    return never_cache(wrapped)


@dashboard_json
def usage_json(request: HttpRequest, customer: Customer) -> JsonResponse:
    return JsonResponse({"customer_name": customer.name, **_dashboard(customer)})

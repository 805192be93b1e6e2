from django.urls import path
from rest_framework.routers import SimpleRouter

from . import allowance_grants, entitlements, invoice_documents, invoices, leases, pricing, series, terms, unmatched, views

urlpatterns = [
    path("customers/<int:customer_id>/usage", views.CustomerUsageView.as_view(), name="customer-usage"),
    path("customers/<int:customer_id>/usage/series", series.CustomerUsageSeriesView.as_view(), name="customer-usage-series"),
    path(
        "subscriptions/<int:subscription_id>/allowance-grants",
        allowance_grants.AllowanceGrantListCreateView.as_view(),
        name="allowance-grants",
    ),
    path(
        "subscriptions/<int:subscription_id>/allowance-grants/<int:grant_id>",
        allowance_grants.AllowanceGrantDeleteView.as_view(),
        name="allowance-grant-detail",
    ),
    path("unmatched-usage/replay", unmatched.UnmatchedUsageReplayView.as_view(), name="unmatched-usage-replay"),
    path("pricing/quote", pricing.PricingQuoteView.as_view(), name="pricing-quote"),
    path("entitlements/check", entitlements.EntitlementCheckView.as_view(), name="entitlements-check"),
    path("leases", leases.LeaseListCreateView.as_view(), name="leases"),
    path("leases/<int:lease_id>", leases.LeaseDetailView.as_view(), name="lease-detail"),
    path("leases/<int:lease_id>/renew", leases.LeaseRenewView.as_view(), name="lease-renew"),
    path("leases/<int:lease_id>/return", leases.LeaseReturnView.as_view(), name="lease-return"),
    path("invoices", invoices.InvoiceListView.as_view(), name="invoices"),
    path("invoices/<int:invoice_id>", invoices.InvoiceDetailView.as_view(), name="invoice-detail"),
    path("invoices/<int:invoice_id>.pdf", invoice_documents.InvoicePdfView.as_view(), name="invoice-pdf"),
    path("invoices/<int:invoice_id>/pdf", invoice_documents.InvoicePdfAliasView.as_view(), name="invoice-pdf-alias"),
    path("invoices/<int:invoice_id>/void", invoices.InvoiceVoidView.as_view(), name="invoice-void"),
    path(
        "invoices/<int:invoice_id>/lines/<int:line_id>/events",
        invoices.InvoiceLineEventsView.as_view(),
        name="invoice-line-events",
    ),
]

router = SimpleRouter(trailing_slash=False)
router.register("discounts", terms.DiscountViewSet, basename="discount")
router.register("tax-rates", terms.TaxRateViewSet, basename="tax-rate")
urlpatterns += router.urls

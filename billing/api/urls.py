from django.urls import path
from rest_framework.routers import SimpleRouter

from . import (
    allowance_grants, backtest, coupons, entitlements, invoice_actions, plan_change, invoice_documents, invoice_exports, invoices, leases,
    pricing, rerating, series, terms, replays, trials, unmatched, views,
)

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
    path("subscriptions/<int:subscription_id>/change-plan", plan_change.PlanChangeView.as_view(), name="subscription-change-plan"),
    path("subscriptions/<int:subscription_id>/trial", trials.TrialView.as_view(), name="subscription-trial"),
    path("subscriptions/<int:subscription_id>/end-trial", trials.EndTrialView.as_view(), name="subscription-end-trial"),
    path("replays", replays.ReplayListView.as_view(), name="replay-list"),
    path("replays/<int:replay_id>", replays.ReplayDetailView.as_view(), name="replay-detail"),
    path("rerating-jobs", rerating.RerateJobListView.as_view(), name="rerating-job-list"),
    path("rerating-jobs/<int:job_id>", rerating.RerateJobDetailView.as_view(), name="rerating-job-detail"),
    path("events/<int:raw_event_id>/reverse", rerating.EventReverseView.as_view(), name="event-reverse"),
    path("unmatched-usage/replay", unmatched.UnmatchedUsageReplayView.as_view(), name="unmatched-usage-replay"),
    path("pricing/quote", pricing.PricingQuoteView.as_view(), name="pricing-quote"),
    path("pricing/backtest", backtest.PricingBacktestView.as_view(), name="pricing-backtest"),
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
    path("invoices/<int:invoice_id>/finalize", invoice_actions.InvoiceFinalizeView.as_view(), name="invoice-finalize"),
    path("invoices/<int:invoice_id>/mark-paid", invoice_actions.InvoiceMarkPaidView.as_view(), name="invoice-mark-paid"),
    path(
        "invoices/<int:invoice_id>/mark-uncollectible",
        invoice_actions.InvoiceMarkUncollectibleView.as_view(),
        name="invoice-mark-uncollectible",
    ),
    path("invoices/<int:invoice_id>/lines.csv", invoice_exports.InvoiceLinesCsvView.as_view(), name="invoice-lines-csv"),
    path("invoices/<int:invoice_id>/events.csv", invoice_exports.InvoiceEventsCsvView.as_view(), name="invoice-events-csv"),
    path("credit-notes", invoice_actions.CreditNoteListView.as_view(), name="credit-notes"),
    path("credit-notes/<int:credit_note_id>", invoice_actions.CreditNoteDetailView.as_view(), name="credit-note-detail"),
    path(
        "invoices/<int:invoice_id>/lines/<int:line_id>/events",
        invoices.InvoiceLineEventsView.as_view(),
        name="invoice-line-events",
    ),
]

router = SimpleRouter(trailing_slash=False)
router.register("discounts", terms.DiscountViewSet, basename="discount")
router.register("tax-rates", terms.TaxRateViewSet, basename="tax-rate")
router.register("coupons", coupons.CouponViewSet, basename="coupon")
urlpatterns += router.urls

from django.urls import path

from . import invoices, pricing, views

urlpatterns = [
    path("customers/<int:customer_id>/usage", views.CustomerUsageView.as_view(), name="customer-usage"),
    path("pricing/quote", pricing.PricingQuoteView.as_view(), name="pricing-quote"),
    path("invoices", invoices.InvoiceListView.as_view(), name="invoices"),
    path("invoices/<int:invoice_id>", invoices.InvoiceDetailView.as_view(), name="invoice-detail"),
    path("invoices/<int:invoice_id>/void", invoices.InvoiceVoidView.as_view(), name="invoice-void"),
    path(
        "invoices/<int:invoice_id>/lines/<int:line_id>/events",
        invoices.InvoiceLineEventsView.as_view(),
        name="invoice-line-events",
    ),
]

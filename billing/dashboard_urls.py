from django.urls import path

from . import dashboard_plan, dashboard_views, views

urlpatterns = [
    path("", views.usage_page, name="dashboard-usage"),
    path("usage.json", views.usage_json, name="dashboard-usage-json"),
    path("insights.json", dashboard_views.insights_json, name="dashboard-insights-json"),
    path("wallets/<int:wallet_id>/entries/", dashboard_views.wallet_entries, name="dashboard-wallet-entries"),
    path("subscriptions/<int:subscription_id>/plan/", dashboard_plan.plan_page, name="dashboard-plan"),
    path("invoices/<int:invoice_id>/", views.invoice_page, name="dashboard-invoice"),
    path("invoices/<int:invoice_id>.pdf", dashboard_views.invoice_pdf, name="dashboard-invoice-pdf"),
    path("invoices/<int:invoice_id>/lines.csv", dashboard_views.invoice_csv, {"what": "lines"},
         name="dashboard-invoice-lines-csv"),
    path("invoices/<int:invoice_id>/events.csv", dashboard_views.invoice_csv, {"what": "events"},
         name="dashboard-invoice-events-csv"),
    path(
        "invoices/<int:invoice_id>/lines/<int:line_id>/events/",
        views.invoice_line_events_page,
        name="dashboard-invoice-line-events",
    ),
    path(
        "invoices/<int:invoice_id>/lines/<int:line_id>/events.csv",
        views.invoice_line_events_csv,
        name="dashboard-invoice-line-events-csv",
    ),
]

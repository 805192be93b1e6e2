"""OpenAPI documentation shared by the billing API views: the credential error responses every
admin-token route documents, and the invoices API's response examples."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse

UNAUTHENTICATED = OpenApiResponse(description="missing_credentials / invalid_credentials")
ADMIN_ONLY = OpenApiResponse(description="wrong_credential_kind: this needs a tenant admin token")

# --- invoices API examples --------------------------------------------------------------------

INVOICE_SUMMARY_EXAMPLE = {
    "id": 118, "number": "ACME-000118", "status": "finalized", "customer": 42, "customer_name": "Initech",
    "subscription": 7, "currency": "USD", "period_start": "2026-10-01T00:00:00Z", "period_end": "2026-11-01T00:00:00Z",
    "subtotal": "17.16", "discount_total": "0.00", "tax_total": "3.43", "total": "20.59", "wallet_applied": "0.00",
    "amount_due": "20.59", "original_amount_due": "20.59", "issued_at": "2026-11-01T00:05:12Z",
    "finalized_at": "2026-11-01T00:05:12Z", "due_at": "2026-12-01T00:05:12Z", "overdue": False, "payment_status": "due",
    "paid_at": None, "url": "https://aforo.example/api/v1/invoices/118",
}
INVOICE_DETAIL_EXAMPLE = {
    **INVOICE_SUMMARY_EXAMPLE,
    "finalize_after": None,
    "payment_reference": "",
    "uncollectible_at": None,
    "uncollectible_reason": "",
    "replaces": None,
    "replaced_by": None,
    "voided_at": None,
    "void_reason": "",
    "credit_note": None,
    "settlement": {
        "id": 97, "kind": "final", "sequence": 0, "watermark": 884120, "created_at": "2026-11-01T00:05:12Z",
        "stages": [
            {"stage": "quota_check", "allowances": []},
            {"stage": "aggregate", "watermark": 884120, "groups": 1, "events": 3, "late_groups": 0},
            {"stage": "rate", "usage_lines": 1, "base_lines": 1, "charges": "17.16"},
            {"stage": "commit", "charges": "17.16", "min_commitment": None, "spend_cap": None, "spend_cap_action": "cap"},
            {"stage": "discount", "applied": [], "subtotal": "17.16"},
            {"stage": "tax", "base": "17.16", "rates": ["VAT 20.0000%"], "tax": "3.43"},
            {"stage": "route", "billing_mode": "postpaid", "total": "20.59", "wallet_realtime": "0",
             "wallet_now": "0", "amount_due": "20.59"},
            {"stage": "settle", "invoice": "ACME-000118", "total": "20.59", "wallet_taken": "0", "amount_due": "20.59"},
        ],
    },
    "lines": [
        {"id": 501, "position": 1, "kind": "usage", "description": "api_calls: 1,350 units", "metric": "api_calls",
         "metric_name": "API calls", "dimension_key": "", "period_start": "2026-10-01T00:00:00Z", "units": "1350",
         "event_count": 3, "amount_unrounded": "12.155", "amount": "12.16", "currency": "USD",
         "events": "https://aforo.example/api/v1/invoices/118/lines/501/events"},
        {"id": 502, "position": 2, "kind": "base", "description": "api_calls: base charge for the period",
         "metric": "api_calls", "metric_name": "API calls", "dimension_key": "", "period_start": "2026-10-01T00:00:00Z",
         "units": None, "event_count": 0, "amount_unrounded": "5", "amount": "5.00", "currency": "USD", "events": None},
        {"id": 503, "position": 3, "kind": "tax", "description": "VAT 20.0000% of 17.16", "metric": None,
         "metric_name": None, "dimension_key": "", "period_start": None, "units": None, "event_count": 0,
         "amount_unrounded": "3.432", "amount": "3.43", "currency": "USD", "events": None},
    ],
}
LINE_EVENTS_EXAMPLE = {
    "next": "https://aforo.example/api/v1/invoices/118/lines/501/events?cursor=cD04ODQxMTk%3D",
    "previous": None,
    "line_amount_unrounded": "12.155",
    "event_count": 3,
    "sum_amount": "12.155",
    "results": [
        {"id": 884101, "event_id": "req-7f3a-0001", "timestamp": "2026-10-14T09:12:03.120000Z", "dimension_key": "",
         "quantity": "1000", "units_before": "0", "units_after": "1000", "amount": "10",
         "tiers": [{"tier": 1, "units": "1000", "amount": "10"}], "rate_plan_version": 3,
         "config_hash": "9c1e…", "rated_at": "2026-10-14T09:12:03.410000Z",
         "raw_event": "https://aforo.example/api/v1/events/771203"},
    ],
}

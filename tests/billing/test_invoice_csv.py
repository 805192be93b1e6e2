"""An invoice as CSV (lines.csv, events.csv) through the API, the admin and the dashboard:
streamed, parsed and compared with the invoice's lines and the rated ledger behind them."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import InvoiceLine, RatedEvent, TaxRate
from billing.trace import invoice_line_rated_events
from catalog.models import CustomerUser
from tests.billing.test_invoice_lifecycle import settle
from tests.billing.test_settlement import rate
from tests.factories import priced_setup, tenant_token


@pytest.fixture
def invoiced():
    setup = priced_setup(config={"model": "per_unit", "rate": "0.003", "overrides": [
        {"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "0.0045"}}]})
    TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(20))
    now = timezone.now()
    for n, (quantity, region) in enumerate([("7", "eu"), ("1000", "us"), ("3", "eu"), ("0.5", "eu")]):
        # rated in this order, but each earlier in time than the one before: time order is not id order
        rate(setup, f"evt-{n}", quantity, at=now.replace(microsecond=0) - timedelta(seconds=10 + n), region=region)
    setup.invoice = settle(setup)
    return setup


def parsed(response) -> list[dict]:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def expected_lines(invoice):
    return [
        {"position": str(line.position), "kind": line.kind, "metric_code": line.metric.code if line.metric else "",
         "metric_name": line.metric.name if line.metric else "", "dimension_key": line.dimension_key,
         "amount": f"{line.amount:.2f}", "currency": invoice.currency}
        for line in InvoiceLine.objects.filter(invoice=invoice).select_related("metric").order_by("position")
    ]


def check_files(invoiced, lines_rows, events_rows):
    invoice = invoiced.invoice
    assert [{k: row[k] for k in ("position", "kind", "metric_code", "metric_name", "dimension_key", "amount",
                                 "currency")} for row in lines_rows] == expected_lines(invoice)
    assert {row["metric_name"] for row in lines_rows if row["kind"] == "usage"} == {invoiced.metric.name}
    assert sum(Decimal(row["amount"]) for row in lines_rows) == invoice.total
    usage = InvoiceLine.objects.filter(invoice=invoice, kind="usage").order_by("position")
    assert usage.count() == 2  # one per region
    for line in usage:
        rows = [row for row in events_rows if row["line_position"] == str(line.position)]
        ledger = list(invoice_line_rated_events(line=line, subscription_id=invoice.subscription_id)
                      .select_related("raw_event").order_by("event_timestamp", "id"))
        assert [(row["event_id"], int(row["raw_event_id"]), int(row["rated_event_id"])) for row in rows] == [
            (rated.raw_event.event_id, rated.raw_event_id, rated.pk) for rated in ledger
        ]
        assert [row["timestamp"] for row in rows] == sorted(row["timestamp"] for row in rows)  # time order
        if len(rows) > 1:
            assert [row["rated_event_id"] for row in rows] != sorted(row["rated_event_id"] for row in rows)
        assert sum(Decimal(row["amount"]) for row in rows) == line.amount_unrounded
        assert {row["metric_name"] for row in rows} == {invoiced.metric.name}
    assert len(events_rows) == RatedEvent.objects.filter(subscription=invoiced.subscription).count() == 4


@pytest.mark.django_db
def test_the_api_streams_the_lines_and_the_events(invoiced, api_client):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(invoiced.tenant)}")
    base = f"/api/v1/invoices/{invoiced.invoice.pk}"
    lines_rows = parsed(api_client.get(f"{base}/lines.csv"))
    events_rows = parsed(api_client.get(f"{base}/events.csv", HTTP_ACCEPT="text/csv"))
    check_files(invoiced, lines_rows, events_rows)
    # us: 1000 × 0.003 = 3; eu: 10.5 × 0.0045 = 0.04725 → 0.05
    assert sorted(row["amount"] for row in lines_rows if row["kind"] == "usage") == ["0.05", "3.00"]


@pytest.mark.django_db
def test_the_admin_and_the_dashboard_serve_the_same_files(invoiced, client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    page = client.get(f"/admin/billing/invoice/{invoiced.invoice.pk}/change/").content.decode()
    lines_url = f"/admin/billing/invoice/{invoiced.invoice.pk}/lines.csv"
    assert lines_url in page and f"/admin/billing/invoice/{invoiced.invoice.pk}/events.csv" in page
    check_files(invoiced, parsed(client.get(lines_url)),
                parsed(client.get(f"/admin/billing/invoice/{invoiced.invoice.pk}/events.csv")))

    customer_login = django_user_model.objects.create_user("buyer", password="pw")
    CustomerUser.objects.create(user=customer_login, customer=invoiced.customer)
    client.force_login(customer_login)
    page = client.get(f"/dashboard/invoices/{invoiced.invoice.pk}/").content.decode()
    assert "lines.csv" in page and "events.csv" in page
    check_files(invoiced, parsed(client.get(f"/dashboard/invoices/{invoiced.invoice.pk}/lines.csv")),
                parsed(client.get(f"/dashboard/invoices/{invoiced.invoice.pk}/events.csv")))
    stranger = priced_setup(rate="1")
    rate(stranger, "s", "1")
    theirs = settle(stranger)
    assert client.get(f"/dashboard/invoices/{theirs.pk}/lines.csv").status_code == 404


@pytest.mark.django_db
def test_a_big_invoice_streams_in_chunks(invoiced, api_client, monkeypatch):
    """The events file is a generator yielding row by row (read through a server-side cursor in
    chunks, here of 2 rows), never one string built in memory."""
    from billing.invoices import exports

    monkeypatch.setattr(exports, "CHUNK", 2)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(invoiced.tenant)}")
    response = api_client.get(f"/api/v1/invoices/{invoiced.invoice.pk}/events.csv")
    chunks = list(response.streaming_content)
    assert len(chunks) == 1 + 4  # the header, then one chunk per row

"""The invoices API and the raw event route: the seed's dispute question answered without
database access. An invoice lists its lines; a usage line's rated events, across every cursor
page, sum exactly to its unrounded amount; each links to its raw event with the original
timestamp, dimensions and gateway metadata; another tenant's rows are 404s."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.models import Invoice, TaxRate
from billing.settlement import settlement_run
from catalog.models import TenantToken
from metering.models import RawEvent
from tests.factories import rated_event, priced_setup, tenant_token

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
TIERED = {
    "model": "graduated",
    "tiers": [{"up_to": "10", "unit_amount": "0.0125", "flat_amount": "5"}, {"up_to": None, "unit_amount": "0.0033"}],
}


def rate(setup, event_id: str, quantity: str, *, at=None, region: str = "eu"):
    """Rate one event through the real consumer path, with dimensions and gateway metadata."""
    return rated_event(
        setup, event_id, quantity, at=at, dimensions={"region": region},
        metadata={"gateway": "kong", "route": f"/v1/search/{event_id}"},
    )


def settle(setup, at=None):
    return settlement_run(subscription_id=setup.subscription.pk, at=at or timezone.now()).invoice


@pytest.fixture
def billed():
    """A postpaid subscription with 7 tiered events (one usage line), a base line and a tax line."""
    setup = priced_setup(config=TIERED)
    TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(20))
    for n, quantity in enumerate(["4", "7", "2.5", "1", "0.25", "3", "11"]):
        rate(setup, f"evt-{n}", quantity, region="eu" if n % 2 else "us")
    setup.invoice = settle(setup)
    setup.token = tenant_token(setup.tenant)
    return setup


def _client(api_client, token: str):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client


def _all_pages(client, url: str) -> tuple[list[dict], list[dict]]:
    pages, events = [], []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        pages.append(response.json())
        events += pages[-1]["results"]
        url = pages[-1]["next"]
    return pages, events


def test_list_filters_and_newest_first(api_client, billed):
    other_customer = priced_setup(tenant=billed.tenant, rate="1")
    rate(other_customer, "x", "2")
    second = settle(other_customer)
    Invoice.objects.filter(pk=billed.invoice.pk).update(issued_at=second.issued_at)  # a tie: id decides
    client = _client(api_client, billed.token)
    body = client.get("/api/v1/invoices").json()
    assert body["count"] == 2 and [row["id"] for row in body["results"]] == [second.pk, billed.invoice.pk]
    mine = client.get("/api/v1/invoices", {"customer": billed.customer.pk}).json()
    assert [row["number"] for row in mine["results"]] == [billed.invoice.number]
    by_subscription = client.get("/api/v1/invoices", {"subscription": other_customer.subscription.pk}).json()
    assert [row["id"] for row in by_subscription["results"]] == [second.pk]
    both = {"customer": billed.customer.pk, "subscription": other_customer.subscription.pk}
    assert client.get("/api/v1/invoices", both).json()["count"] == 0
    assert client.get("/api/v1/invoices", {"limit": 1}).json()["next"].endswith("limit=1&offset=1")
    bad = client.get("/api/v1/invoices", {"customer": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "customer"


def test_detail_lines_figures_and_stages(api_client, billed):
    response = _client(api_client, billed.token).get(f"/api/v1/invoices/{billed.invoice.pk}")
    assert response.status_code == 200
    body = response.json()
    # 28.75 units: 10 × 0.0125 + 18.75 × 0.0033 = 0.186875 (rated), base 5, VAT 20% of 5.19
    assert [(line["kind"], line["amount_unrounded"], line["amount"]) for line in body["lines"]] == [
        ("usage", "0.186875", "0.19"), ("base", "5", "5.00"), ("tax", "1.038", "1.04"),
    ]
    assert (body["subtotal"], body["tax_total"], body["total"], body["amount_due"], body["wallet_applied"]) == (
        "5.19", "1.04", "6.23", "6.23", "0.00"
    )
    assert body["number"] == billed.invoice.number and body["status"] == "finalized" and body["currency"] == "USD"
    assert body["replaces"] is None and body["replaced_by"] is None
    usage, base, _ = body["lines"]
    assert (usage["metric"], usage["units"], usage["event_count"]) == (billed.metric.code, "28.75", 7)
    assert usage["events"].endswith(f"/api/v1/invoices/{billed.invoice.pk}/lines/{usage['id']}/events")
    assert base["events"] is None
    stages = body["settlement"]["stages"]
    assert [s["stage"] for s in stages] == [
        "quota_check", "aggregate", "rate", "commit", "discount", "tax", "route", "settle",
    ]
    assert stages[1]["events"] == 7


def test_trace_sums_across_pages_to_the_line_and_links_raw_events(api_client, billed, django_assert_max_num_queries):
    client = _client(api_client, billed.token)
    usage = client.get(f"/api/v1/invoices/{billed.invoice.pk}").json()["lines"][0]
    with django_assert_max_num_queries(6):  # token, line, page, sum (no N+1 over the events)
        first = client.get(usage["events"], {"limit": 3})
    pages, events = _all_pages(client, first.json()["next"])
    pages.insert(0, first.json())
    events = first.json()["results"] + events
    assert len(pages) == 3 and [len(p["results"]) for p in pages] == [3, 3, 1]
    assert pages[0]["sum_amount"] == pages[0]["line_amount_unrounded"] == usage["amount_unrounded"] == "0.186875"
    assert all("sum_amount" not in page for page in pages[1:])  # one aggregate, on the first page only
    assert sum(Decimal(e["amount"]) for e in events) == Decimal(usage["amount_unrounded"])
    assert [e["event_id"] for e in events] == [f"evt-{n}" for n in range(7)]
    assert len({e["id"] for e in events}) == 7 and all(isinstance(e["amount"], str) for e in events)
    tiers = events[0]["tiers"]
    assert tiers and tiers[0]["tier"] == 1
    for number, event in enumerate(events):
        raw = RawEvent.objects.get(tenant=billed.tenant, event_id=event["event_id"])
        assert parse_datetime(event["timestamp"]) == raw.timestamp
        assert event["rate_plan_version"] == billed.version.pk and len(event["config_hash"]) == 64
        linked = client.get(event["raw_event"])
        assert linked.status_code == 200
        body = linked.json()
        assert body["event_id"] == f"evt-{number}" and parse_datetime(body["timestamp"]) == raw.timestamp
        assert body["dimensions"] == {"region": "eu" if number % 2 else "us"}
        assert body["metadata"] == {"gateway": "kong", "route": f"/v1/search/evt-{number}"}
        assert body["rated_event_id"] == event["id"] and body["quantity"] == event["quantity"]
        assert body["is_late"] is False and body["api_key_prefix"] == billed.api_key[:16]


def test_late_usage_line_traces_to_the_late_event_with_its_original_time(api_client):
    start = timezone.now() - 40 * DAY
    setup = priced_setup(rate="1", started_at=start)
    in_first_period = start + 5 * DAY
    rate(setup, "on-time", "2", at=in_first_period)
    first = settle(setup, at=in_first_period)
    late_time = in_first_period + DAY
    rate(setup, "late", "3", at=late_time)  # rated after its period was settled
    second = settle(setup)
    client = _client(api_client, tenant_token(setup.tenant))
    lines = client.get(f"/api/v1/invoices/{second.pk}").json()["lines"]
    [late_line] = [line for line in lines if line["kind"] == "late_usage"]
    assert parse_datetime(late_line["period_start"]) == first.period_start
    page = client.get(late_line["events"]).json()
    assert [e["event_id"] for e in page["results"]] == ["late"]
    assert page["sum_amount"] == late_line["amount_unrounded"] == "3" and late_line["amount"] == "3.00"
    raw = client.get(page["results"][0]["raw_event"]).json()
    assert parse_datetime(raw["timestamp"]) == late_time and raw["metadata"]["route"] == "/v1/search/late"
    # the first invoice's usage line does not include the late event
    first_usage = client.get(f"/api/v1/invoices/{first.pk}").json()["lines"][0]
    assert [e["event_id"] for e in client.get(first_usage["events"]).json()["results"]] == ["on-time"]


def test_non_usage_lines_have_no_events_route(api_client, billed):
    client = _client(api_client, billed.token)
    base = billed.invoice.lines.get(kind="base")
    response = client.get(f"/api/v1/invoices/{billed.invoice.pk}/lines/{base.pk}/events")
    assert response.status_code == 404 and response.json()["error"]["code"] == "line_not_traceable"


def test_another_tenants_invoice_line_and_event_are_404s(api_client, billed):
    foreign = priced_setup(rate="1")
    rate(foreign, "theirs", "1")
    foreign_invoice = settle(foreign)
    foreign_line = foreign_invoice.lines.get(kind="usage")
    foreign_raw = RawEvent.objects.get(tenant=foreign.tenant, event_id="theirs")
    client = _client(api_client, billed.token)
    own_line = billed.invoice.lines.get(kind="usage")
    for url in (
        f"/api/v1/invoices/{foreign_invoice.pk}",
        f"/api/v1/invoices/{foreign_invoice.pk}/lines/{foreign_line.pk}/events",
        f"/api/v1/invoices/{billed.invoice.pk}/lines/{foreign_line.pk}/events",  # a line of another invoice
        f"/api/v1/invoices/{foreign_invoice.pk}/lines/{own_line.pk}/events",
        f"/api/v1/events/{foreign_raw.pk}",
        f"/api/v1/invoices/{10**9}",
        f"/api/v1/events/{10**9}",
    ):
        response = client.get(url)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", url
    assert client.get("/api/v1/invoices", {"customer": foreign.customer.pk}).json()["count"] == 0


def test_event_read_needs_the_admin_token_and_ingest_keeps_its_own(api_client, billed):
    raw = RawEvent.objects.filter(tenant=billed.tenant).first()
    ingest = tenant_token(billed.tenant, kind=TenantToken.Kind.INGEST)
    client = _client(api_client, ingest)
    denied = client.get(f"/api/v1/events/{raw.pk}")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "wrong_credential_kind"
    assert client.get(f"/api/v1/invoices/{billed.invoice.pk}").status_code == 403
    admin = _client(api_client, billed.token)
    assert admin.get(f"/api/v1/events/{raw.pk}").status_code == 200
    posted = admin.post("/api/v1/events", {"event_id": "x"}, format="json")
    assert posted.status_code == 403 and posted.json()["error"]["code"] == "wrong_credential_kind"
    api_client.credentials()
    assert api_client.get(f"/api/v1/events/{raw.pk}").status_code == 401


def test_unrated_event_has_no_rated_event_id(api_client, billed):
    raw = RawEvent.objects.create(
        tenant=billed.tenant, event_id="stray", subject="customer:0", metric="nope", quantity=Decimal("1.5"),
        timestamp=timezone.now(), received_at=timezone.now(),
    )
    body = _client(api_client, billed.token).get(f"/api/v1/events/{raw.pk}").json()
    assert body["rated_event_id"] is None and body["quantity"] == "1.5" and body["metadata"] == {}


def test_the_schema_documents_the_trace_routes(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]
    assert {"/api/v1/invoices", "/api/v1/invoices/{invoice_id}", "/api/v1/invoices/{invoice_id}/lines/{line_id}/events",
            "/api/v1/events/{raw_event_id}"} <= set(paths)
    assert set(paths["/api/v1/events"]) == {"post"} and set(paths["/api/v1/events/{raw_event_id}"]) == {"get"}

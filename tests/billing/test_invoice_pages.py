"""The customer's invoices on the dashboard (its own only; staff their tenant's), the invoice
page with its lines, the rated events behind a usage line (paginated, original timestamp,
dimensions, metadata); and the operator admin for invoices and settlement runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.admin_invoices import line_events_url
from billing.models import Invoice, RatedEvent, SettlementRun
from catalog.models import CustomerUser
from tests.billing.test_invoices_api import rate, settle
from tests.factories import priced_setup
from tests.test_admin import change_url, changelist_url, operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(django_user_model):
    """Two customers of one tenant (one with two invoices) and a customer of another tenant."""
    mine = priced_setup(rate="0.5")
    for n in range(5):
        rate(mine, f"mine-{n}", str(n + 1), region=f"r{n}")
    first = settle(mine, at=timezone.now())
    neighbour = priced_setup(tenant=mine.tenant, rate="1")
    rate(neighbour, "neighbour-0", "2")
    foreign = priced_setup(rate="1")
    rate(foreign, "foreign-0", "2")
    login = django_user_model.objects.create_user("mine-user", password="pw")
    CustomerUser.objects.create(user=login, customer=mine.customer)
    return {
        "mine": mine, "invoice": first, "neighbour_invoice": settle(neighbour), "foreign_invoice": settle(foreign),
        "login": login,
    }


def test_the_usage_page_lists_only_the_customers_own_invoices_newest_first(client, world):
    older = world["invoice"]
    newer = Invoice.objects.get(pk=older.pk)
    newer.pk, newer.number, newer.issued_at = None, "X-NEWER", older.issued_at + timedelta(seconds=1)
    newer.save()
    client.force_login(world["login"])
    html = client.get("/dashboard/").content.decode()
    assert html.index("X-NEWER") < html.index(older.number)
    assert f'href="/dashboard/invoices/{older.pk}/"' in html
    assert world["neighbour_invoice"].number not in html and world["foreign_invoice"].number not in html
    assert "7.50 USD" in html  # 1 + … + 5 = 15 units × 0.5


def test_invoice_page_and_line_events_page(client, world, monkeypatch):
    invoice = world["invoice"]
    client.force_login(world["login"])
    page = client.get(reverse("dashboard-invoice", args=[invoice.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    usage = invoice.lines.get(kind="usage")
    events_url = reverse("dashboard-invoice-line-events", args=[invoice.pk, usage.pk])
    assert invoice.number in html and f'href="{events_url}"' in html and "See the 5 events" in html
    assert "7.50 USD" in html  # 15 units × 0.5, the total
    monkeypatch.setattr("billing.views.EVENTS_PER_PAGE", 2)
    seen, url, pages = [], events_url, 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        pages += 1
        seen += [row["rated"].raw_event.event_id for row in response.context["events"]]
        after = response.context["next_after"]
        url = f"{events_url}?after={after}" if after else None
    assert pages == 3 and seen == [f"mine-{n}" for n in range(5)]
    first_page = client.get(events_url).content.decode()
    assert "region=r0" in first_page and "route: /v1/search/mine-0" in first_page
    raw = RatedEvent.objects.filter(raw_event__event_id="mine-0").select_related("raw_event").get().raw_event
    assert f"{timezone.localtime(raw.timestamp):%Y-%m-%d %H:%M:%S}" in first_page


def test_the_line_events_download_as_csv_in_event_time_order(client, world):
    import csv
    import io
    from decimal import Decimal

    invoice = world["invoice"]
    usage = invoice.lines.get(kind="usage")
    client.force_login(world["login"])
    page = client.get(reverse("dashboard-invoice-line-events", args=[invoice.pk, usage.pk])).content.decode()
    csv_url = reverse("dashboard-invoice-line-events-csv", args=[invoice.pk, usage.pk])
    assert f'href="{csv_url}"' in page
    response = client.get(csv_url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert f'filename="{invoice.number}-line-{usage.position}-events.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    rated = {r.raw_event.event_id: r for r in RatedEvent.objects.filter(subscription=world["mine"].subscription).select_related("raw_event")}
    assert [row["event_id"] for row in rows] == sorted(rated, key=lambda e: (rated[e].event_timestamp, rated[e].pk))
    assert sum(Decimal(row["amount"]) for row in rows) == usage.amount_unrounded  # exact, before rounding
    first = rows[0]
    assert first["quantity"] == "1" and first["currency"] == "USD" and first["timestamp"].endswith("Z")
    assert first["metric"] == world["mine"].metric.code and first["blocked_units"] == "0"
    # Another customer's line is not there for this login.
    other = world["neighbour_invoice"].lines.get(kind="usage")
    assert client.get(reverse("dashboard-invoice-line-events-csv", args=[other.invoice_id, other.pk])).status_code == 404
    client.logout()
    assert client.get(csv_url).status_code == 302  # to the login page


def test_a_customer_cannot_open_another_customers_invoice(client, world):
    client.force_login(world["login"])
    for other in (world["neighbour_invoice"], world["foreign_invoice"]):
        assert client.get(reverse("dashboard-invoice", args=[other.pk])).status_code == 404
        line = other.lines.get(kind="usage")
        assert client.get(reverse("dashboard-invoice-line-events", args=[other.pk, line.pk])).status_code == 404
    base = world["invoice"].lines.get(kind="usage")
    mixed = reverse("dashboard-invoice-line-events", args=[world["foreign_invoice"].pk, base.pk])
    assert client.get(mixed).status_code == 404


def test_staff_open_their_tenants_invoices_only(client, world, django_user_model):
    client.force_login(operator(world["mine"].tenant))
    assert client.get(reverse("dashboard-invoice", args=[world["neighbour_invoice"].pk])).status_code == 200
    assert client.get(reverse("dashboard-invoice", args=[world["foreign_invoice"].pk])).status_code == 404
    usage = client.get("/dashboard/", {"customer": world["mine"].customer.pk}).content.decode()
    assert world["invoice"].number in usage
    nobody = django_user_model.objects.create_user("nobody", password="pw")
    client.force_login(nobody)
    assert client.get(reverse("dashboard-invoice", args=[world["invoice"].pk])).status_code == 403
    client.logout()
    response = client.get(reverse("dashboard-invoice", args=[world["invoice"].pk]))
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


# --- admin -------------------------------------------------------------------------------------


def test_admin_invoice_page_links_each_usage_line_to_exactly_its_rated_events(admin_client, world):
    invoice = world["invoice"]
    listing = admin_client.get(changelist_url(Invoice)).content.decode()
    assert invoice.number in listing and "7.5 USD" in listing
    page = admin_client.get(change_url(invoice))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    html = page.content.decode()
    usage = invoice.lines.get(kind="usage")
    url = line_events_url(usage, subscription_id=invoice.subscription_id)
    assert url.replace("&", "&amp;") in html and "5 events" in html
    events = admin_client.get(url)
    assert events.status_code == 200
    listed = {row.pk for row in events.context["cl"].result_list}
    # other events of the same subscription outside the line's range are not listed
    rate(world["mine"], "after-settlement", "1")
    assert {row.pk for row in admin_client.get(url).context["cl"].result_list} == listed
    behind = RatedEvent.objects.filter(raw_event__event_id__startswith="mine-").values_list("pk", flat=True)
    assert listed == set(behind)
    run = SettlementRun.objects.get(invoice=invoice)
    assert f'href="{change_url(run)}"' in html
    run_page = admin_client.get(change_url(run)).content.decode()
    assert "aggregate" in run_page and "&quot;events&quot;: 5" in run_page


def test_operator_sees_only_their_tenants_invoices_and_runs(client, world):
    client.force_login(operator(world["mine"].tenant))
    listed = {row.pk for row in client.get(changelist_url(Invoice)).context["cl"].result_list}
    assert listed == {world["invoice"].pk, world["neighbour_invoice"].pk}
    foreign = world["foreign_invoice"]
    assert client.get(change_url(foreign)).status_code == 302
    assert client.get(change_url(SettlementRun.objects.get(invoice=foreign))).status_code == 302
    assert client.get(change_url(world["invoice"])).status_code == 200

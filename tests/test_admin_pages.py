"""The operator admin's customer page (/admin/customers/<id>/overview/) and overview page
(/admin/overview/): their figures come from fixtures made through the real services (rated
events, settlement, wallets, terms, alerts), they are scoped to the operator's tenant, and the
overview still renders — with "unknown" — when the Kafka broker does not answer."""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from aforo.money import money_display
from billing.alerts.evaluate import AlertEvaluator, rated_decode
from billing.grants import allowance_grant_create
from billing.leases.inputs import LeaseRequest
from billing.leases.services import lease_create
from billing.models import Discount, TaxRate
from billing.ops_overview import month_start
from billing.periods import period_for
from billing.rated_wire import RatedWire
from billing.settlement import settlement_run
from billing.terms import term_save
from billing.usage import IncomingEvent, usage_batch_record
from catalog import services
from metering.enrichment import EnrichmentCache
from metering.validation import validate_event
from notify.alerts import alert_rule_save
from tests.factories import funded_wallet, priced_setup, rated_event
from tests.test_admin import operator
from wallets.services import wallet_adjust

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    """The page's text, tags stripped and spaces collapsed (what a person reads)."""
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _section(response, section_id: str) -> str:
    """The text of one section of the page (its module's id), tags stripped."""
    html = response.content.decode().split(f'id="{section_id}"', 1)[1].split('class="module overview-section"', 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: nothing listens there


def _unmatched_event(setup, event_id: str) -> None:
    """An event for a metric no rate plan prices, through the consumer's real path."""
    now = timezone.now()
    event = validate_event(
        {"event_id": event_id, "api_key": setup.api_key, "metric": "not_priced_metric", "quantity": "1",
         "timestamp": (now - timedelta(seconds=1)).isoformat()},
        now=now,
    )
    outcome = usage_batch_record(events=[IncomingEvent(setup.tenant.id, event.subject, event, now, 0, None)], cache=EnrichmentCache())
    assert outcome.unmatched == 1, outcome


@pytest.fixture
def world():
    """Two tenants. Mine: a customer with rated usage (now, 3 days ago, and in two past
    periods), invoices of this month and last, a discount and a tax rate, a wallet below zero,
    an alert, an unmatched event. Theirs: a customer of their own."""
    now = timezone.now()
    mine = priced_setup(config={"model": "per_unit", "rate": "0.5", "limit": {"units": "1000", "overage": "block"}})
    theirs = priced_setup(rate="0.5")
    term_save(term=Discount(tenant=mine.tenant, subscription=mine.subscription, kind="percent", value=Decimal("10"),
                            description="launch offer"))
    term_save(term=TaxRate(tenant=mine.tenant, customer=mine.customer, name="VAT", percent=Decimal("20")))
    # A minimum commitment, so that a period with no usage has an invoice worth something.
    mine.subscription.min_commitment = Decimal("30")
    services.catalog_object_save(instance=mine.subscription)
    # Two past periods settled: one issued last month (its usage rated since is not on it:
    # the commitment is), one issued now with 100 units (above the commitment).
    rated_event(mine, "old-1", "100", at=now - timedelta(days=35))
    last_month_invoice = settlement_run(
        subscription_id=mine.subscription.pk, at=now - timedelta(days=70), now=month_start(now) - timedelta(hours=1)
    ).invoice
    this_month_invoice = settlement_run(subscription_id=mine.subscription.pk, at=now - timedelta(days=35)).invoice
    # Usage of the current period: 3 days ago (or the period's start, if later) and now (the
    # alert's spend threshold is crossed now).
    period_start, _ = period_for(cadence=mine.subscription.billing_cadence, anchor=mine.subscription.billing_anchor, at=now)
    recent_at = max(now - timedelta(days=3), period_start + timedelta(seconds=1))
    rated_event(mine, "recent-1", "4", at=recent_at)
    alert_rule_save(tenant_id=mine.tenant.pk, data={"kind": "spend_amount", "thresholds": ["0.000001"]})
    AlertEvaluator().evaluate([rated_decode(RatedWire().encode(rated_event(mine, "now-1", "6")))])
    allowance_grant_create(subscription=mine.subscription, metric=mine.metric, units=Decimal("7"), at=now,
                           description="goodwill units")
    lease, _ = lease_create(tenant_id=mine.tenant.pk, request=LeaseRequest(
        f"customer:{mine.customer.pk}", mine.metric.code, {}, Decimal("30"), Decimal(0), 600, "gateway-node-7", "lease-1"))
    wallet = funded_wallet(mine.customer, "10")
    wallet_adjust(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=Decimal("-25"), idempotency_key="fix-1",
                  reference="refund reversed", reason="refund reversed", allow_negative_balance=True)
    _unmatched_event(mine, "lost-1")
    rated_event(theirs, "theirs-1", "100")
    funded_wallet(theirs.customer, "5")
    their_wallet = theirs.customer.wallets.get()
    wallet_adjust(tenant_id=their_wallet.tenant_id, wallet_id=their_wallet.pk, amount=Decimal("-7"), idempotency_key="x",
                  reference="theirs", reason="theirs", allow_negative_balance=True)
    return {"mine": mine, "theirs": theirs, "now": now, "lease": lease, "recent_at": recent_at, "last_month_invoice": last_month_invoice,
            "this_month_invoice": this_month_invoice, "wallet": wallet}


@pytest.fixture
def operator_client(client, world):
    client.force_login(operator(world["mine"].tenant))
    return client


def customer_url(customer) -> str:
    return reverse("admin:customer_overview", args=[customer.pk])


def test_customer_page_shows_everything_about_the_customer(operator_client, world):
    mine = world["mine"]
    response = operator_client.get(customer_url(mine.customer))
    assert response.status_code == 200
    text = _text(response)
    html = response.content.decode()
    # Subscriptions and their terms.
    assert reverse("admin:catalog_subscription_change", args=[mine.subscription.pk]) in html
    assert "Postpaid" in text and "10 % off" in text and "launch offer" in text and "forever" in text
    assert "VAT" in text and "20 %" in text
    # Invoices: number, status, total and amount due with the currency, links to the admin and the PDF.
    for invoice in (world["last_month_invoice"], world["this_month_invoice"]):
        assert invoice.total > 0
        assert invoice.number in text
        assert f"{money_display(invoice.total, 'USD')} USD" in text
        assert reverse("admin:billing_invoice_change", args=[invoice.pk]) in html
        assert f"/dashboard/invoices/{invoice.pk}.pdf" in html
    # Usage now: the current period's running total (4 + 6 units at 0.5).
    usage = _section(response, "usage")
    assert f"{mine.metric.name} ({mine.metric.code})" in usage
    assert f" 10 {mine.metric.unit} 2 5.00 USD" in usage  # units, events, amount
    assert "Total so far 5.00 USD" in usage
    # Wallet: 10 topped up, 25 taken back.
    assert "-15.00 USD" in text and reverse("admin:wallets_wallet_change", args=[world["wallet"].pk]) in html
    assert "refund reversed" in text
    # API key, active; the alert fired this period.
    assert mine.api_key[:8] in text and "active" in text
    assert reverse("admin:notify_alertfiring_changelist") in html
    assert "No alert fired in a current period." not in text
    # The allowance grant of this period, the active lease.
    grants = _section(response, "allowance-grants")
    assert "7 " in grants and "goodwill units" in grants and "pending" in grants
    assert reverse("admin:billing_lease_change", args=[world["lease"].pk]) in html and "gateway-node-7" in text


def test_customer_page_queries_do_not_grow_with_its_rows(operator_client, world):
    mine = world["mine"]

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert operator_client.get(customer_url(mine.customer)).status_code == 200
        return len(captured)

    before = queries()
    for index in range(5):  # more discounts, API keys, grants, alerts' rows: not more queries
        term_save(term=Discount(tenant=mine.tenant, subscription=mine.subscription, kind="fixed", value=Decimal("1"),
                                position=index + 1))
        services.api_key_create(app=mine.app, name=f"key {index}")
        allowance_grant_create(subscription=mine.subscription, metric=mine.metric, units=Decimal("1"), at=world["now"])
    assert queries() == before
    assert before <= 30


def test_overview_queries_are_bounded(operator_client, world, django_assert_max_num_queries):
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_closed_port()}"), django_assert_max_num_queries(15):
        assert operator_client.get(reverse("admin:overview")).status_code == 200


def test_customer_page_is_linked_from_the_customer_admin(operator_client, world):
    customer = world["mine"].customer
    change = operator_client.get(reverse("admin:catalog_customer_change", args=[customer.pk]))
    listing = operator_client.get(reverse("admin:catalog_customer_changelist"))
    assert customer_url(customer) in change.content.decode()
    assert customer_url(customer) in listing.content.decode()


def test_customer_page_of_another_tenant_is_a_404(operator_client, world):
    assert operator_client.get(customer_url(world["theirs"].customer)).status_code == 404
    assert operator_client.get(reverse("admin:customer_overview", args=[10**9])).status_code == 404


def test_customer_page_needs_a_staff_login(client, world):
    response = client.get(customer_url(world["mine"].customer))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_superuser_sees_any_customer(admin_client, world):
    assert admin_client.get(customer_url(world["theirs"].customer)).status_code == 200


def test_overview_figures(operator_client, world, kafka):
    response = operator_client.get(reverse("admin:overview"))
    assert response.status_code == 200
    text = _text(response)
    revenue = _section(response, "revenue")
    this_total, last_total = world["this_month_invoice"].total, world["last_month_invoice"].total
    assert f"{money_display(this_total, 'USD')} USD (1 invoice)" in revenue
    assert f"{money_display(last_total, 'USD')} USD (1 invoice)" in revenue
    assert response.context["revenue"]["currencies"] == [
        {"currency": "USD", "this": this_total, "last": last_total, "this_count": 1, "last_count": 1}
    ]
    assert this_total != last_total
    # Usage trend: 4 units (2.00 USD) at recent_at and 6 units (3.00 USD) now; the other
    # tenant's event and the events of past periods (70 and 35 days ago) are not in it.
    trend = response.context["trend"]
    assert len(trend["days"]) == 14
    expected: dict = {}
    for at, amount in ((world["recent_at"], Decimal("2")), (world["now"], Decimal("3"))):
        events, total = expected.get(at.date(), (0, Decimal(0)))
        expected[at.date()] = (events + 1, total + amount)
    shown = {row["day"]: (row["events"], dict(row["amounts"]).get("USD", Decimal(0))) for row in trend["days"] if row["events"]}
    assert shown == expected
    assert trend["days"][-1]["day"] == world["now"].date()
    # Wallets below zero: mine only.
    assert "Wallets below zero: 1" in text and "-15.00 USD" in text and "-2.00 USD" not in text
    # Unmatched usage by reason, with the link to the admin list.
    assert "Unmatched usage (unresolved): 1" in text and "No rate plan version in force prices this metric" in text
    assert reverse("admin:metering_unmatchedusage_changelist") + "?resolved=no" in response.content.decode()
    # Consumers: the broker answered; nothing was produced on these fresh topics.
    assert response.context["pipeline"]["reachable"] is True
    usage = next(c for c in response.context["pipeline"]["consumers"] if c.name == "usage")
    assert usage.lag == 0 and usage.dead_lettered == 0 and len(usage.partitions) == 2


def test_overview_lag_and_dlq_from_the_broker(operator_client, world, kafka):
    from aforo.kafka import Record, produce_and_wait

    produce_and_wait([Record(topic=kafka["usage"], value=b"{}", key=b"k1"), Record(topic=kafka["usage"], value=b"{}", key=b"k2"),
                      Record(topic=kafka["dlq"], value=b"poison", key=b"k3")])
    response = operator_client.get(reverse("admin:overview"))
    usage = next(c for c in response.context["pipeline"]["consumers"] if c.name == "usage")
    assert usage.lag == 2  # never consumed: the whole topic is behind
    assert usage.dead_lettered == 1
    assert "unknown" not in _section(response, "pipeline")


def test_overview_renders_when_the_broker_is_unreachable(operator_client, world):
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_closed_port()}"):
        response = operator_client.get(reverse("admin:overview"))
    assert response.status_code == 200
    text = _text(response)
    assert "The broker did not answer" in text
    consumers = _section(response, "pipeline")
    assert consumers.count("unknown") >= 4  # lag and DLQ of both consumers
    assert "Wallets below zero: 1" in text  # the rest of the page is there


def test_overview_is_linked_from_the_admin_index(operator_client):
    assert reverse("admin:overview") in operator_client.get(reverse("admin:index")).content.decode()


def test_superuser_overview_counts_every_tenant(admin_client, world):
    with override_settings(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_closed_port()}"):
        text = _text(admin_client.get(reverse("admin:overview")))
    assert "Wallets below zero: 2" in text and "every tenant" in text


def test_overview_needs_a_tenant_or_superuser(client, world, django_user_model):
    user = django_user_model.objects.create_user("lost", password="pw", is_staff=True)
    from django.contrib.auth.models import Permission

    user.user_permissions.set(Permission.objects.filter(codename="view_invoice"))
    client.force_login(user)
    assert client.get(reverse("admin:overview")).status_code == 403

"""Commercial terms: discounts (percentage or fixed; the whole invoice or one metric; for N
periods or forever; effective-dated) and tax rates (general or per metric), through the pure
stages, the settlement of real periods, the API (validation, in-use terms) and the admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import Discount, Invoice, TaxRate
from billing.periods import term_applies
from billing.settlement import discount, settlement_run, tax
from billing.settlement.context import Line, SettlementContext
from billing.settlement.inputs import SettlementInputs, SubscriptionTerms
from tests.factories import MetricFactory, priced_setup, rated_event, tenant_token

JUL, OCT, NOV, DEC = (datetime(2026, month, 1, tzinfo=UTC) for month in (7, 10, 11, 12))


# --- effective dating (pure) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("period_start", "starts_at", "ends_at", "periods", "applies"),
    [
        (OCT, datetime(2026, 10, 15, tzinfo=UTC), None, None, True),  # from the period containing its start
        (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 15, tzinfo=UTC), None, None, False),  # not before
        (NOV, datetime(2026, 10, 15, tzinfo=UTC), None, 1, False),  # one period: October only
        (NOV, datetime(2026, 10, 15, tzinfo=UTC), None, 2, True),
        (DEC, datetime(2026, 10, 15, tzinfo=UTC), None, 2, False),
        (NOV, JUL, NOV, None, False),  # ends_at: periods starting before it
        (OCT, JUL, NOV, None, True),
        (datetime(2027, 6, 1, tzinfo=UTC), JUL, None, None, True),  # forever
    ],
)
def test_a_term_applies_from_the_period_containing_its_start_for_its_periods_until_its_end(
    period_start, starts_at, ends_at, periods, applies
):
    assert term_applies(
        cadence="monthly", anchor=JUL, period_start=period_start, starts_at=starts_at, ends_at=ends_at, periods=periods
    ) is applies


def test_weekly_periods_count_weeks():
    anchor = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
    week = timedelta(weeks=1)
    assert term_applies(cadence="weekly", anchor=anchor, period_start=anchor + 2 * week, starts_at=anchor, ends_at=None, periods=3)
    assert not term_applies(cadence="weekly", anchor=anchor, period_start=anchor + 3 * week, starts_at=anchor, ends_at=None, periods=3)


# --- the stages (pure: a hand-built context) -----------------------------------------------------


def _context(*, lines, period_start=OCT, discounts=(), tax_rates=(), kind="final"):
    terms = SubscriptionTerms(id=1, tenant_id=1, customer_id=1, currency="USD", billing_anchor=JUL, started_at=JUL)
    built = SettlementContext(
        subscription=terms, period_start=period_start, period_end=NOV, kind=kind, watermark=1, now=NOV,
        inputs=SettlementInputs(discounts=list(discounts), tax_rates=list(tax_rates), metric_codes={1: "calls", 2: "tokens"}),
    )
    for line in lines:
        built.add(line)
    return built


def _usage(metric: int, amount: str) -> Line:
    return Line(kind="usage", description=f"metric {metric}", amount_unrounded=Decimal(amount), metric_id=metric)


def _amounts(built, kind):
    return [(line.metric_id, line.amount) for line in built.lines if line.kind == kind]


def test_a_metric_discount_takes_only_from_its_metric_and_never_below_zero():
    built = _context(
        lines=[_usage(1, "40"), _usage(2, "10")],
        discounts=[
            Discount(kind="percent", value=Decimal(25), metric_id=2),  # 25 % of tokens' 10
            Discount(kind="fixed", value=Decimal(50), metric_id=2),  # only the 7.50 left of tokens
            Discount(kind="percent", value=Decimal(10)),  # 10 % of the invoice's 40 left
        ],
    )
    discount.run(built)
    assert _amounts(built, "discount") == [(2, Decimal("-2.50")), (2, Decimal("-7.50")), (None, Decimal("-4.00"))]
    assert built.total() == Decimal("36.00")
    assert [line.description for line in built.lines if line.kind == "discount"][:2] == ["25% off tokens", "Discount tokens"]


def test_a_discount_outside_its_periods_is_not_applied():
    limited = Discount(kind="percent", value=Decimal(10), starts_at=datetime(2026, 10, 15, tzinfo=UTC), periods=1)
    october = _context(lines=[_usage(1, "40")], discounts=[limited])
    discount.run(october)
    november = _context(lines=[_usage(1, "40")], discounts=[limited], period_start=NOV)
    discount.run(november)
    assert _amounts(october, "discount") == [(None, Decimal("-4.00"))] and _amounts(november, "discount") == []


def test_a_metric_tax_rate_replaces_the_general_rates_for_its_metric_and_shares_invoice_discounts():
    built = _context(
        lines=[
            _usage(1, "60"), _usage(2, "40"),
            Line(kind="discount", description="10 off", amount_unrounded=Decimal(-10)),  # shared 60:40
        ],
        tax_rates=[TaxRate(name="VAT", percent=Decimal(20)), TaxRate(name="Digital", percent=Decimal(5), metric_id=2)],
    )
    tax.run(built)
    # calls: 60 − 6 = 54 at 20 % → 10.80; tokens: 40 − 4 = 36 at 5 % → 1.80 (not 20 %)
    assert _amounts(built, "tax") == [(None, Decimal("10.80")), (2, Decimal("1.80"))]


def test_without_metric_rates_tax_is_as_before_and_a_rate_out_of_force_is_skipped():
    ended = TaxRate(name="Old", percent=Decimal(50), starts_at=JUL, ends_at=OCT)
    built = _context(lines=[_usage(1, "70")], tax_rates=[TaxRate(name="State", percent=Decimal(6)), ended])
    tax.run(built)
    assert _amounts(built, "tax") == [(None, Decimal("4.20"))]
    assert built.lines[-1].description == "State 6% of 70.00"


# --- settlement of real periods ------------------------------------------------------------------


@pytest.fixture
def setup(db):
    return priced_setup(rate="1", started_at=JUL)


def _settle(setup, at):
    return settlement_run(subscription_id=setup.subscription.pk, at=at).invoice


def _lines(invoice, kind):
    return [(line.description, line.amount) for line in invoice.lines.filter(kind=kind)]


def test_settled_periods_apply_the_terms_in_force_for_each(setup):
    Discount.objects.create(
        tenant=setup.tenant, subscription=setup.subscription, kind="percent", value=Decimal(10), periods=1,
        starts_at=datetime(2026, 10, 15, tzinfo=UTC), description="Launch 10%",
    )
    Discount.objects.create(
        tenant=setup.tenant, subscription=setup.subscription, kind="fixed", value=Decimal(2), metric=setup.metric,
        starts_at=NOV, position=1,
    )
    TaxRate.objects.create(tenant=setup.tenant, customer=setup.customer, name="VAT", percent=Decimal(20))
    rated_event(setup, "oct-1", "50", at=datetime(2026, 10, 10, tzinfo=UTC))
    rated_event(setup, "nov-1", "30", at=datetime(2026, 11, 10, tzinfo=UTC))
    october, november = _settle(setup, datetime(2026, 10, 20, tzinfo=UTC)), _settle(setup, datetime(2026, 11, 20, tzinfo=UTC))
    assert _lines(october, "discount") == [("Launch 10%", Decimal("-5.00"))]
    assert october.total == Decimal("54.00")  # (50 − 5) × 1.2
    assert _lines(november, "discount") == [(f"Discount {setup.metric.code}", Decimal("-2.00"))]
    assert november.total == Decimal("33.60")  # (30 − 2) × 1.2


# --- the API -------------------------------------------------------------------------------------


@pytest.fixture
def client(api_client, setup):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    return api_client


def test_discount_and_tax_rate_api_round_trip(client, setup):
    created = client.post("/api/v1/discounts", {
        "subscription": setup.subscription.pk, "kind": "percent", "value": "12.5", "metric": setup.metric.pk,
        "periods": 3, "starts_at": "2026-11-01T00:00:00Z", "description": "Q4",
    }, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["value"] == "12.5" and body["periods"] == 3 and body["metric"] == setup.metric.pk and body["in_use"] is False
    listed = client.get("/api/v1/discounts", {"subscription": setup.subscription.pk}).json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]
    rate = client.post("/api/v1/tax-rates", {"customer": setup.customer.pk, "name": "VAT", "percent": "20"}, format="json")
    assert rate.status_code == 201 and rate.json()["percent"] == "20"
    assert TaxRate.objects.get(pk=rate.json()["id"]).percent == Decimal(20)
    patched = client.patch(f"/api/v1/discounts/{body['id']}", {"value": "15"}, format="json")
    assert patched.status_code == 200 and Discount.objects.get(pk=body["id"]).value == Decimal(15)  # not in use: editable
    assert client.delete(f"/api/v1/discounts/{body['id']}").status_code == 204
    assert not Discount.objects.filter(pk=body["id"]).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "percent", "value": 10.5}, "value"),  # a JSON float
        ({"kind": "percent", "value": "101"}, "value"),
        ({"kind": "fixed", "value": "0"}, "value"),
        ({"kind": "fixed", "value": "-3"}, "value"),
        ({"kind": "fixed", "value": "NaN"}, "value"),
        ({"kind": "fixed", "value": "1.0000001"}, "value"),
        ({"kind": "bogus", "value": "1"}, "kind"),
        ({"kind": "fixed", "value": "1", "periods": 0}, "periods"),
        ({"kind": "fixed", "value": "1", "starts_at": "2026-11-02T00:00:00Z", "ends_at": "2026-11-01T00:00:00Z"}, "ends_at"),
        ({"kind": "fixed", "value": "1", "description": "x\x00y"}, "description"),
    ],
)
def test_discount_validation_names_the_field(client, setup, body, field):
    response = client.post("/api/v1/discounts", {"subscription": setup.subscription.pk, **body}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert not Discount.objects.exists()


def test_another_tenants_rows_are_refused(client, setup):
    other = priced_setup()
    for body, field in (
        ({"subscription": other.subscription.pk, "kind": "fixed", "value": "1"}, "subscription"),
        ({"subscription": setup.subscription.pk, "kind": "fixed", "value": "1", "metric": other.metric.pk}, "metric"),
    ):
        response = client.post("/api/v1/discounts", body, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], response.content
    foreign = TaxRate.objects.create(tenant=other.tenant, customer=other.customer, name="X", percent=Decimal(1))
    assert client.get(f"/api/v1/tax-rates/{foreign.pk}").status_code == 404
    assert client.delete(f"/api/v1/tax-rates/{foreign.pk}").status_code == 404
    assert client.post("/api/v1/tax-rates", {"customer": setup.customer.pk, "name": "T", "percent": "100.5"}, format="json").status_code == 400


def test_a_term_in_use_only_takes_an_end_date(client, setup):
    term = Discount.objects.create(tenant=setup.tenant, subscription=setup.subscription, kind="percent", value=Decimal(10))
    rated_event(setup, "oct-1", "50", at=datetime(2026, 10, 10, tzinfo=UTC))
    october = _settle(setup, datetime(2026, 10, 20, tzinfo=UTC))
    assert _lines(october, "discount") == [("10% off", Decimal("-5.00"))]
    assert client.get(f"/api/v1/discounts/{term.pk}").json()["in_use"] is True
    changed = client.patch(f"/api/v1/discounts/{term.pk}", {"value": "50"}, format="json")
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "term_in_use", changed.content
    assert client.delete(f"/api/v1/discounts/{term.pk}").json()["error"]["code"] == "term_in_use"
    past = client.patch(f"/api/v1/discounts/{term.pk}", {"ends_at": "2026-10-05T00:00:00Z"}, format="json")
    assert past.status_code == 400 and "ends_at" in past.json()["error"]["fields"], past.content
    ends = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert client.patch(f"/api/v1/discounts/{term.pk}", {"ends_at": ends}, format="json").status_code == 200
    term.refresh_from_db()
    assert term.value == Decimal(10) and term.ends_at is not None
    # The settled period keeps its terms: a reissue recomputes the same discount.
    from billing.invoicing import invoice_void_and_reissue

    replacement = invoice_void_and_reissue(invoice=october, reason="check").replacement
    assert _lines(replacement, "discount") == [("10% off", Decimal("-5.00"))]
    # A correction: ended retroactively (before October), the reissue leaves it out.
    corrected = client.patch(f"/api/v1/discounts/{term.pk}", {"ends_at": "2026-10-01T00:00:00Z", "retroactive": True}, format="json")
    assert corrected.status_code == 200, corrected.content
    again = invoice_void_and_reissue(invoice=replacement, reason="the discount ended in September").replacement
    assert _lines(again, "discount") == [] and again.total == Decimal("50.00")


def test_subscription_terms_through_the_api(client, setup):
    url = f"/api/v1/subscriptions/{setup.subscription.pk}"
    response = client.patch(url, {"min_commitment": "500", "spend_cap": "2000.50", "spend_cap_action": "alert",
                                  "invoice_threshold": 300}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["min_commitment"], body["spend_cap"], body["spend_cap_action"], body["invoice_threshold"]) == (
        "500", "2000.5", "alert", "300")
    setup.subscription.refresh_from_db()
    assert setup.subscription.min_commitment == Decimal(500) and setup.subscription.spend_cap == Decimal("2000.50")
    for bad in ({"min_commitment": 500.5}, {"spend_cap": "-1"}, {"invoice_threshold": "1e400"}, {"spend_cap": "0.0000001"},
                {"spend_cap_action": "explode"}):
        refused = client.patch(url, bad, format="json")
        assert refused.status_code == 400 and set(bad) <= set(refused.json()["error"]["fields"]), refused.content
    assert client.patch(url, {"min_commitment": None}, format="json").json()["min_commitment"] is None


# --- the admin -----------------------------------------------------------------------------------


def test_admin_lists_terms_on_the_subscription_and_locks_a_term_in_use(admin_client, setup):
    term = Discount.objects.create(
        tenant=setup.tenant, subscription=setup.subscription, kind="fixed", value=Decimal(3), description="Goodwill"
    )
    page = admin_client.get(f"/admin/catalog/subscription/{setup.subscription.pk}/change/")
    assert page.status_code == 200 and b"Goodwill" in page.content
    created = admin_client.post("/admin/billing/taxrate/add/", {
        "tenant": setup.tenant.pk, "customer": setup.customer.pk, "name": "GST", "percent": "10", "metric": "", "starts_at_0": "", "starts_at_1": "",
        "ends_at_0": "", "ends_at_1": "",
    })
    assert created.status_code == 302, created.content.decode()[:2000]
    assert TaxRate.objects.get(name="GST").tenant_id == setup.tenant.pk
    rated_event(setup, "oct-1", "5", at=datetime(2026, 10, 10, tzinfo=UTC))
    _settle(setup, datetime(2026, 10, 20, tzinfo=UTC))
    form = admin_client.get(f"/admin/billing/discount/{term.pk}/change/")
    assert b'name="value"' not in form.content and b'name="ends_at_0"' in form.content  # only the end date is editable
    assert admin_client.post(f"/admin/billing/discount/{term.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Discount.objects.filter(pk=term.pk).exists() and Invoice.objects.filter(subscription=setup.subscription).exists()


def test_a_reissue_keeps_the_commitment_and_cap_the_period_was_settled_with(setup):
    from billing.invoicing import invoice_void_and_reissue

    setup.subscription.min_commitment = Decimal(100)
    setup.subscription.save()
    rated_event(setup, "oct-1", "50", at=datetime(2026, 10, 10, tzinfo=UTC))
    october = _settle(setup, datetime(2026, 10, 20, tzinfo=UTC))
    assert _lines(october, "commitment") == [("Minimum commitment 100: true-up", Decimal("50.00"))]
    setup.subscription.min_commitment = Decimal(200)  # a new minimum, from now on
    setup.subscription.spend_cap = Decimal(60)
    setup.subscription.save()
    replacement = invoice_void_and_reissue(invoice=october, reason="address").replacement
    assert _lines(replacement, "commitment") == [("Minimum commitment 100: true-up", Decimal("50.00"))]
    assert _lines(replacement, "cap") == [] and replacement.total == october.total
    rated_event(setup, "nov-1", "50", at=datetime(2026, 11, 10, tzinfo=UTC))
    november = _settle(setup, datetime(2026, 11, 20, tzinfo=UTC))
    assert _lines(november, "commitment") == [("Minimum commitment 200: true-up", Decimal("150.00"))]  # the new minimum

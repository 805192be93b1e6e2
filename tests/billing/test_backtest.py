"""Price backtesting (billing.backtest): a candidate price over the rated ledger equals what
settlement charges for the same usage with that price; the current price shows no difference;
the API, the command and the admin page answer the same; bad input is a 400 naming the field."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from aforo.periods import period_for
from billing.backtest import pricing_backtest
from billing.settlement import settlement_run
from catalog import services
from catalog.models import Subscription
from tests.factories import AppFactory, CustomerFactory, TeamFactory, priced_setup, rated_event, tenant_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/pricing/backtest"
GRADUATED = {"model": "graduated", "tiers": [
    {"up_to": "10", "unit_amount": "1", "flat_amount": "2"}, {"up_to": None, "unit_amount": "0.5"}]}
VOLUME = {"model": "volume", "tiers": [
    {"up_to": "10", "unit_amount": "1.2"}, {"up_to": None, "unit_amount": "0.7", "flat_amount": "3"}]}
WITH_OVERRIDE = {**GRADUATED, "overrides": [{"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "0.25"}}]}
# Per customer: (quantity, region) of its events in the period.
USAGE = [[("4", "us"), ("5", "eu"), ("3", "us")], [("20", "us"), ("1.5", "us")], [("2", "eu")]]


def _customer(setup, index: int):
    """Another customer on the same plan (its own key and subscription)."""
    customer = CustomerFactory(tenant=setup.tenant, name=f"customer {index}")
    app = AppFactory(team=TeamFactory(customer=customer, tenant=setup.tenant), tenant=setup.tenant)
    _, secret = services.api_key_create(app=app, name="key")
    subscription = services.catalog_object_save(instance=Subscription(
        tenant=setup.tenant, customer=customer, offering=setup.rate_plan.offering, rate_plan=setup.rate_plan,
        billing_anchor=setup.subscription.billing_anchor, started_at=setup.subscription.started_at, currency="USD",
    ))
    return replace(setup, customer=customer, app=app, api_key=secret, subscription=subscription)


def _history(config: dict, started_at):
    """Three customers priced by `config`, with USAGE in the period 45 days ago: (setups, period start)."""
    first = priced_setup(config=config, started_at=started_at)
    setups = [first, _customer(first, 1), _customer(first, 2)]
    at = timezone.now() - timedelta(days=45)
    for n, (setup, events) in enumerate(zip(setups, USAGE, strict=True)):
        for i, (quantity, region) in enumerate(events):
            rated_event(setup, f"e{n}-{i}", quantity, at=at + timedelta(minutes=i), dimensions={"region": region})
    start, _ = period_for(cadence=first.subscription.billing_cadence, anchor=started_at, at=at)
    return setups, start


def _settled_charges(setup, start) -> Decimal:
    """The Rate stage's charges for the metric (usage and base lines), exact, of the settled period."""
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=start + timedelta(hours=1)).invoice
    lines = invoice.lines.filter(kind__in=["usage", "base"], metric=setup.metric)
    return sum((line.amount_unrounded for line in lines), Decimal(0))


@pytest.fixture
def started_at():
    return (timezone.now() - timedelta(days=100)).replace(microsecond=0)


@pytest.mark.parametrize(("current", "candidate"), [(VOLUME, WITH_OVERRIDE), (GRADUATED, VOLUME)], ids=["graduated", "volume"])
def test_the_candidate_equals_what_settlement_charges_with_that_price(current, candidate, started_at):
    history, start = _history(current, started_at)
    priced_as_candidate, _ = _history(candidate, started_at)  # the same usage, rated and settled under the candidate
    month = f"{start:%Y-%m}"
    answer = pricing_backtest(tenant_id=history[0].tenant.pk, config=candidate, metric=history[0].metric.code, start=month, end=month)
    assert [row["period_start"] for row in answer["rows"]] == [start.isoformat()] * 3
    for row, setup, twin in zip(answer["rows"], history, priced_as_candidate, strict=True):
        assert row["customer"] == setup.customer.pk
        assert Decimal(row["candidate"]) == _settled_charges(twin, start).quantize(Decimal("0.01"))
        assert Decimal(row["charged"]) == _settled_charges(setup, start).quantize(Decimal("0.01"))
        assert Decimal(row["difference"]) == Decimal(row["candidate"]) - Decimal(row["charged"])
    total = answer["totals"][0]
    assert Decimal(total["candidate"]) == sum(Decimal(row["candidate"]) for row in answer["rows"])
    # The candidate's own history backtested with its own price: nothing changes.
    same = pricing_backtest(tenant_id=priced_as_candidate[0].tenant.pk, config=candidate,
                            metric=priced_as_candidate[0].metric.code, start=month, end=month)
    assert {row["difference"] for row in same["rows"]} == {"0.00"}
    assert same["distribution"]["unchanged"] == 3 and same["distribution"]["better_off"] == 0


def test_winners_losers_and_the_histogram(started_at):
    history, start = _history({"model": "per_unit", "rate": "1"}, started_at)
    month = f"{start:%Y-%m}"
    # 10 free units then 1.00: customer 0 (12 units) pays 2 instead of 12, customer 1 (21.5) 11.5, customer 2 (2) nothing.
    answer = pricing_backtest(tenant_id=history[0].tenant.pk, config={"model": "per_unit", "rate": "1", "included_free": "10"},
                              metric=history[0].metric.code, start=month, end=month)
    assert [(c["charged"], c["candidate"], c["change_percent"]) for c in answer["customers"]] == [
        ("12.00", "2.00", "-83.3"), ("21.50", "11.50", "-46.5"), ("2.00", "0.00", "-100.0")]
    histogram = {bucket["bucket"]: bucket["customers"] for bucket in answer["distribution"]["histogram"]}
    assert (histogram["below -50%"], histogram["-50% to -20%"], histogram["unchanged"]) == (2, 1, 0)
    assert answer["distribution"] | {"histogram": None} == {"better_off": 3, "worse_off": 0, "unchanged": 0, "histogram": None}
    assert answer["totals"] == [{"currency": "USD", "customers": 3, "charged": "35.50", "candidate": "13.50",
                                 "difference": "-22.00", "change_percent": "-62.0"}]


def test_the_api_and_the_command_agree_and_bad_input_is_a_400(api_client, started_at, tmp_path):
    history, start = _history(GRADUATED, started_at)
    month = f"{start:%Y-%m}"
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(history[0].tenant)}")
    body = {"config": VOLUME, "metric": history[0].metric.code, "from": month, "to": month, "plan": history[0].rate_plan.pk}
    response = api_client.post(URL, body, format="json")
    assert response.status_code == 200, response.content
    (tmp_path / "new.json").write_text(json.dumps(VOLUME))
    out = StringIO()
    call_command("backtest", "--tenant", str(history[0].tenant.pk), "--config", f"@{tmp_path / 'new.json'}", "--metric",
                 history[0].metric.code, "--from", month, "--to", month, "--plan", str(history[0].rate_plan.pk), "--json", stdout=out)
    assert json.loads(out.getvalue()) == response.json()
    table = StringIO()
    call_command("backtest", "--tenant", history[0].tenant.slug, "--config", json.dumps(VOLUME), "--metric",
                 history[0].metric.code, "--from", month, "--to", month, stdout=table)
    assert "customer 1 (#" in table.getvalue() and "customers better off" in table.getvalue()
    bad = [
        ({**body, "config": {"model": "graduated", "tiers": [{"up_to": "x", "unit_amount": "1"}]}}, "invalid_config", "config.tiers[0].up_to"),
        ({**body, "config": None}, "invalid_config", "config"),
        ({**body, "from": "2026-13"}, "invalid_range", "from"),
        ({**body, "to": 202601}, "invalid_range", "to"),
        ({**body, "from": "2026-05", "to": "2026-04"}, "invalid_range", "to"),
        ({**body, "from": "2024-01", "to": "2026-01"}, "invalid_range", "to"),
        ({**body, "metric": ["x"]}, "invalid_metric", "metric"),
        ({**body, "plan": "1"}, "invalid_plan", "plan"),
        ({**body, "extra": 1}, "invalid_body", "extra"),
    ]
    for wrong, code, field in bad:
        response = api_client.post(URL, wrong, format="json")
        assert response.status_code == 400, (wrong, response.content)
        assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, field)
    for wrong, field in (({**body, "metric": "nope"}, "metric"), ({**body, "plan": 2**62}, "plan")):
        response = api_client.post(URL, wrong, format="json")
        assert (response.status_code, response.json()["error"]["field"]) == (404, field)
    with pytest.raises(CommandError, match="invalid_range: from"):
        call_command("backtest", "--tenant", str(history[0].tenant.pk), "--config", json.dumps(VOLUME), "--metric",
                     history[0].metric.code, "--from", "26-01", "--to", month)


def test_the_admin_page_shows_the_table_and_the_chart_and_names_a_bad_field(client, started_at):
    from tests.test_admin import operator

    history, start = _history(GRADUATED, started_at)
    other = priced_setup(config=GRADUATED)  # another tenant: not the operator's
    client.force_login(operator(history[0].tenant))
    month = f"{start:%Y-%m}"
    query = {"metric": history[0].metric.pk, "config": json.dumps(VOLUME), "start": month, "end": month}
    response = client.get("/admin/pricing/backtest/", query)
    assert response.status_code == 200
    html = response.content.decode()
    expected = pricing_backtest(tenant_id=history[0].tenant.pk, config=VOLUME, metric=history[0].metric.code, start=month, end=month)
    assert html.count('<tr class="row">') == 3 and html.count('<tr class="customer">') == 3
    for row in expected["customers"]:
        assert f'>{row["candidate"]}<' in html
    assert 'id="backtest-histogram-data"' in html and "js/backtest.js" in html and "uPlot.iife.min.js" in html
    bad = client.get("/admin/pricing/backtest/", {**query, "config": '{"model": "volume", "tiers": []}'})
    assert bad.status_code == 200 and "config.tiers" in bad.content.decode() and 'class="row"' not in bad.content.decode()
    foreign = client.get("/admin/pricing/backtest/", {**query, "metric": other.metric.pk})
    assert "Select a valid choice" in foreign.content.decode()


def test_percentage_backtested_with_its_own_price_per_transaction_shows_no_difference(started_at):
    # The first transaction is free: the order of the events decides the charge.
    config = {"model": "percentage", "rate": "10", "fixed_fee": "0.05", "free_events": 1, "min_fee": "1"}
    history, start = _history(config, started_at)
    month = f"{start:%Y-%m}"
    answer = pricing_backtest(tenant_id=history[0].tenant.pk, config=config, metric=history[0].metric.code, start=month, end=month)
    assert answer["priced_per_transaction"] is True
    assert {row["difference"] for row in answer["rows"]} == {"0.00"} and answer["distribution"]["unchanged"] == 3
    # customer 0: 4 free, then 5 and 3 at 10% + 0.05 = 0.55 + 0.35 = 0.90, below the 1.00 minimum
    assert answer["rows"][0]["charged"] == answer["rows"][0]["candidate"] == "1.00"
    cheaper = pricing_backtest(tenant_id=history[0].tenant.pk, config={**config, "min_fee": "0"}, metric=history[0].metric.code,
                               start=month, end=month)
    assert cheaper["rows"][0]["candidate"] == "0.90"


def test_a_customer_without_usage_in_a_period_pays_the_candidates_zero_usage_charge(started_at):
    history, start = _history({"model": "per_unit", "rate": "1"}, started_at)
    idle = _customer(history[0], 3)  # on the plan, no events in the period
    twin = _customer(priced_setup(config=GRADUATED, started_at=started_at), 4)  # the same, priced by the candidate
    month = f"{start:%Y-%m}"
    answer = pricing_backtest(tenant_id=history[0].tenant.pk, config=GRADUATED, metric=history[0].metric.code,
                              start=month, end=month)
    rows = {row["customer"]: row for row in answer["rows"]}
    assert set(rows) == {setup.customer.pk for setup in history} | {idle.customer.pk}
    quiet = rows[idle.customer.pk]
    assert (quiet["units"], quiet["events"], quiet["period_start"]) == ("0", 0, start.isoformat())
    assert Decimal(quiet["charged"]) == _settled_charges(idle, start) == Decimal(0)
    assert Decimal(quiet["candidate"]) == _settled_charges(twin, start).quantize(Decimal("0.01")) == Decimal("2.00")
    assert answer["distribution"]["worse_off"] >= 1

"""The dashboard's charts and projections (insights.json, billing.insights) and a wallet's full
ledger page: the same who-sees-whom rule as the usage page, the charts' points exactly the
rollups of the rated events, the burn-down and forecast from the running totals, the wallet's
balance history and its usage charges per day and metric, a fixed number of queries, and
money rounded to the minor unit with the exact figure on hover."""

from __future__ import annotations

from datetime import timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.forecast import period_forecast
from billing.insights import dashboard_insights
from catalog.models import CustomerUser, Subscription
from tests.factories import CustomerFactory, funded_wallet, priced_setup, rated_event
from tests.test_admin import operator
from wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/"
INSIGHTS = "/dashboard/insights.json"
D = Decimal


@pytest.fixture
def setup():
    setup = priced_setup(billing_mode="prepaid", rate="0.5")
    Subscription.objects.filter(pk=setup.subscription.pk).update(min_commitment=D("10"))
    return setup


@pytest.fixture
def login(client, django_user_model, setup):
    user = django_user_model.objects.create_user("initech-user", password="pw")
    CustomerUser.objects.create(user=user, customer=setup.customer)
    client.force_login(user)
    return client


def test_insights_follow_the_usage_pages_rule(client, login, setup, django_user_model):
    neighbour = CustomerFactory(tenant=setup.tenant)
    assert login.get(INSIGHTS).status_code == 200
    assert login.get(INSIGHTS, {"customer": neighbour.pk}).json()["error"]["code"] == "forbidden"
    client.logout()
    assert client.get(INSIGHTS).json()["error"]["code"] == "missing_credentials"
    staff = operator(setup.tenant, username="staff")
    client.force_login(staff)
    assert client.get(INSIGHTS).json()["error"]["code"] == "customer_required"
    assert client.get(INSIGHTS, {"customer": neighbour.pk}).json()["customer_id"] == neighbour.pk
    assert client.get(INSIGHTS, {"customer": priced_setup().customer.pk}).status_code == 404


def test_the_charts_burn_down_and_forecast_come_from_the_rated_usage(login, setup):
    funded_wallet(setup.customer, "100")
    first = rated_event(setup, "a", "4")
    rated_event(setup, "b", "6", at=first.timestamp)

    body = login.get(INSIGHTS).json()

    assert body["minor_units"] == {"USD": 2}
    [sub] = body["subscriptions"]
    assert (sub["subscription_id"], sub["currency"], sub["granularity"], sub["charged"]) == (
        setup.subscription.pk, "USD", "day", "5",
    )
    assert sub["commitment"] == {
        "amount": "10", "consumed": "5", "remaining": "5", "percent": "50", "bar_percent": "50", "met": False,
    }
    expected = period_forecast(
        charged=D("5"), currency="USD", period_start=parse_datetime(sub["period_start"]),
        period_end=parse_datetime(sub["period_end"]), now=parse_datetime(body["as_of"]),
    )
    assert sub["forecast"]["amount"] == (None if expected.amount is None else str(expected.amount))
    [series] = sub["series"]
    assert series["metric"] == setup.metric.code
    day = first.timestamp.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT00:00:00Z")
    busy = [point for point in series["points"] if point["units"] != "0"]
    assert busy == [{"start": day, "units": "10", "amount": "5"}]
    assert series["points"][0]["start"] <= sub["period_start"] and series["points"][-1]["start"] == day


def test_the_wallet_history_and_its_usage_per_day_and_metric(login, setup):
    wallet = funded_wallet(setup.customer, "100")
    first = rated_event(setup, "a", "4")
    rated_event(setup, "b", "6", at=first.timestamp)
    wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=D("0.25"), idempotency_key="more")

    [shown] = login.get(INSIGHTS).json()["wallets"]

    assert [point["balance"] for point in shown["history"]] == ["100", "98", "95", "95.25"]
    [today] = shown["activity"]
    assert (today["metric"], today["units"], today["amount"], today["events"]) == (setup.metric.code, "10", "5", 2)
    assert today["day"] == first.timestamp.astimezone(dt_timezone.utc).date().isoformat()


def test_a_postpaid_subscription_charges_no_wallet_and_has_no_commitment(client, django_user_model):
    postpaid = priced_setup(rate="0.5")
    funded_wallet(postpaid.customer, "100")
    rated_event(postpaid, "a", "4")
    body = dashboard_insights(customer=postpaid.customer)
    assert body["subscriptions"][0]["commitment"] is None
    assert body["wallets"][0]["activity"] == [] and [p["balance"] for p in body["wallets"][0]["history"]] == ["100"]


def test_insights_take_a_fixed_number_of_queries(setup, django_assert_num_queries):
    funded_wallet(setup.customer, "1000")
    rated_event(setup, "a", "1")
    with django_assert_num_queries(14) as few:  # usage 4, wallets 5 (credit grants), metrics, commitments, history, activity, 1 series per subscription
        dashboard_insights(customer=setup.customer)
    for index in range(20):
        rated_event(setup, f"more-{index}", "1", at=timezone.now() - timedelta(hours=index, seconds=1))
    with django_assert_num_queries(len(few.captured_queries)):
        dashboard_insights(customer=setup.customer)


def test_the_page_rounds_money_to_the_minor_unit_and_shows_the_projections(login, setup):
    funded_wallet(setup.customer, "100")
    rated_event(setup, "a", "0.015")  # 0.0075 USD

    html = login.get(PAGE).content.decode()

    assert '<span class="money" title="0.0075 USD">0.01 USD</span>' in html
    assert "You have consumed " in html and 'title="10 USD">10.00 USD</span> commitment' in html
    assert 'aria-valuenow="0.08"' in html  # 0.0075 of 10 = 0.075 % → 0.08
    assert "/static/vendor/uplot/uPlot.iife.min.js" in html and "/static/vendor/uplot/uPlot.min.css" in html
    assert 'id="insights-initial"' in html and 'id="currency-minor-units"' in html
    assert "No active alerts" in html and "No active leases" in html


def test_alerts_and_leases_show_when_usage_json_carries_them(login, setup, monkeypatch):
    from billing import views

    real = views._dashboard

    def with_panels(customer):
        return {
            **real(customer),
            "alerts": [{"rule": "80% of budget", "metric": "api_calls", "message": "Spend passed 80.00 USD",
                        "triggered_at": "2026-12-03T10:00:00Z"}],
            "leases": [{"id": "lease-7", "metric": "api_calls", "amount": "2.5", "currency": "USD", "remaining": "1.25",
                        "expires_at": "2026-12-03T10:05:00Z"}],
        }

    monkeypatch.setattr(views, "_dashboard", with_panels)
    html = login.get(PAGE).content.decode()
    assert "80% of budget" in html and "Spend passed 80.00 USD" in html and "No active alerts" not in html
    assert "lease-7" in html and 'title="1.25 USD">1.25 USD' in html and "No active leases" not in html


def test_the_wallet_entries_page_pages_newest_first(client, login, setup, django_user_model):
    wallet = funded_wallet(setup.customer, "1")
    for index in range(55):
        wallet_top_up(tenant_id=wallet.tenant_id, wallet_id=wallet.pk, amount=D("0.01"), idempotency_key=f"t{index}")
    url = f"/dashboard/wallets/{wallet.pk}/entries/"

    first = login.get(url)
    ids = list(wallet.entries.order_by("-id").values_list("id", flat=True))
    assert first.status_code == 200
    assert [row["entry_id"] for row in first.context["entries"]] == ids[:50]
    assert f'href="?before={ids[49]}"' in first.content.decode()
    assert 'title="1.55 USD">1.55 USD' in first.content.decode()
    second = login.get(url, {"before": ids[49]})
    assert [row["entry_id"] for row in second.context["entries"]] == ids[50:] and second.context["next_before"] is None

    theirs = funded_wallet(CustomerFactory(tenant=setup.tenant), "5")
    assert login.get(f"/dashboard/wallets/{theirs.pk}/entries/").status_code == 404
    assert login.get(f"/dashboard/wallets/{theirs.pk}/entries/", {"customer": theirs.customer_id}).status_code == 403
    client.force_login(operator(setup.tenant, username="staff"))
    staff_page = client.get(f"/dashboard/wallets/{theirs.pk}/entries/", {"customer": theirs.customer_id})
    assert staff_page.status_code == 200 and f"?customer={theirs.customer_id}" in staff_page.content.decode()


def test_a_weekly_period_is_charted_per_hour_from_its_start_to_now(setup):
    Subscription.objects.filter(pk=setup.subscription.pk).update(billing_cadence="weekly")
    event = rated_event(setup, "a", "3")
    now = timezone.now()

    [sub] = dashboard_insights(customer=setup.customer, now=now)["subscriptions"]

    start = parse_datetime(sub["period_start"])
    assert sub["granularity"] == "hour" and parse_datetime(sub["period_end"]) - start == timedelta(weeks=1)
    points = sub["series"][0]["points"]
    first_hour = start.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)
    assert parse_datetime(points[0]["start"]) == first_hour
    assert parse_datetime(points[-1]["start"]) == now.astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)
    assert [p["start"] for p in points] == sorted({p["start"] for p in points})  # hourly, no gaps or repeats
    assert len(points) == (parse_datetime(points[-1]["start"]) - first_hour) // timedelta(hours=1) + 1
    hour = event.timestamp.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")
    assert [(p["start"], p["units"], p["amount"]) for p in points if p["units"] != "0"] == [(hour, "3", "1.5")]


def test_a_fired_alert_is_on_the_page_and_in_usage_json(login, setup):
    from billing.alerts.evaluate import AlertEvaluator, rated_decode
    from billing.rated_wire import RatedWire
    from notify.alerts import alert_rule_save
    from tests.factories import rated_event

    alert_rule_save(tenant_id=setup.tenant.pk, data={"kind": "spend_amount", "thresholds": ["0.000001"], "name": "Any spend"})
    AlertEvaluator().evaluate([rated_decode(RatedWire().encode(rated_event(setup, "alerting", "3")))])
    [alert] = login.get("/dashboard/usage.json").json()["alerts"]
    assert alert["rule"] == "Any spend" and alert["message"].startswith("Spend this period reached ")
    html = login.get(PAGE).content.decode()
    assert "Any spend" in html and "No active alerts" not in html

"""The customer usage page and its usage.json: login required, a customer login sees its own
customer only, staff see their tenant's customers, values are the running totals exactly, each
metric row shows its limit and included allowance."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.models import RunningTotal
from catalog.models import CustomerUser
from tests.billing.test_usage_selector import expected_usage, running_total, usage_world
from tests.factories import priced_setup
from tests.test_admin import operator

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/"
JSON = "/dashboard/usage.json"


@pytest.fixture
def world():
    return usage_world(now=timezone.now())


@pytest.fixture
def customer_login(django_user_model, world):
    user = django_user_model.objects.create_user("acme-user", password="pw")
    CustomerUser.objects.create(user=user, customer=world.customer)
    return user


def test_routes_are_named():
    assert reverse("dashboard-usage") == PAGE and reverse("dashboard-usage-json") == JSON


def test_the_page_requires_login(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and response.url == f"/accounts/login/?next={PAGE}"
    data = client.get(JSON)
    assert data.status_code == 401 and data.json()["error"]["code"] == "missing_credentials"
    root = client.get("/", follow=True)
    assert root.redirect_chain[-1][0] == f"/accounts/login/?next={PAGE}"


def test_login_lands_on_the_usage_page(client, customer_login, world):
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b'name="username"' in page.content
    response = client.post("/accounts/login/", {"username": "acme-user", "password": "pw"}, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert world.customer.name in response.content.decode()


def test_customer_sees_their_usage_with_live_updates_wired(client, customer_login, world):
    client.force_login(customer_login)
    response = client.get(PAGE)
    assert response.status_code == 200
    assert [t.name for t in response.templates][:2] == ["dashboard/usage.html", "base.html"]
    html = response.content.decode()
    assert world.customer.name in html
    for text in ("api_calls", "region=eu", "llm_tokens", "tool_calls", "4.5 USD", "0.0075 USD", "0 USD", "1500"):
        assert text in html, text
    assert world.other_customer.name not in html and "other_calls" not in html
    assert f'data-url="{JSON}"' in html and 'data-interval-ms="2000"' in html
    assert 'id="usage-initial"' in html and "/static/js/usage.js" in html
    assert 'action="/accounts/logout/"' in html
    assert response.context["usage"]["customer_id"] == world.customer.pk


def test_usage_json_values_are_exact(client, customer_login, world):
    client.force_login(customer_login)
    response = client.get(JSON)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    as_of = parse_datetime(body.pop("as_of"))
    assert body == {
        "customer_name": world.customer.name,
        "customer_id": world.customer.pk,
        "subscriptions": expected_usage(world, now=as_of),
        "wallets": [],  # no wallet in this world: tests/wallets/test_dashboard.py has them
        "alerts": [],  # no rule fired: tests/billing/test_dashboard_insights.py has them
        "leases": [],  # none taken: tests/billing/test_dashboard_insights.py has them
    }


def test_usage_json_follows_the_running_totals(client, customer_login, world):
    client.force_login(customer_login)
    first = client.get(JSON).json()["subscriptions"][1]["metrics"][0]
    RunningTotal.objects.filter(subscription=world.weekly, period_end__gt=timezone.now()).update(
        units="31", amount="0.31", event_count=31
    )
    second = client.get(JSON).json()["subscriptions"][1]["metrics"][0]
    assert (first["units"], first["amount"]) == ("30", "0.3")
    assert (second["units"], second["amount"], second["event_count"]) == ("31", "0.31", 31)


def test_customer_cannot_see_another_customer(client, customer_login, world):
    client.force_login(customer_login)
    page = client.get(PAGE, {"customer": world.other_customer.pk})
    assert page.status_code == 403
    assert "only see the usage of your own account" in page.content.decode()
    data = client.get(JSON, {"customer": world.other_customer.pk})
    assert data.status_code == 403 and data.json()["error"]["code"] == "forbidden"
    own = client.get(JSON, {"customer": world.customer.pk})
    assert own.status_code == 200 and own.json()["customer_id"] == world.customer.pk


def test_a_login_without_a_customer_gets_a_clear_403(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="pw"))
    page = client.get(PAGE)
    assert page.status_code == 403
    html = page.content.decode()
    assert "not linked to a customer account" in html and "nobody" in html


def test_staff_pick_customers_of_their_tenant_only(client, world):
    foreign = priced_setup()
    client.force_login(operator(world.customer.tenant))
    picker = client.get(PAGE)
    assert picker.status_code == 200
    listed = {c.pk for c in picker.context["customers"]}
    assert listed == {world.customer.pk, world.other_customer.pk}
    mine = client.get(JSON, {"customer": world.customer.pk})
    assert mine.status_code == 200 and mine.json()["customer_id"] == world.customer.pk
    page = client.get(PAGE, {"customer": world.customer.pk})
    assert page.status_code == 200 and f'data-url="{JSON}?customer={world.customer.pk}"' in page.content.decode()
    not_mine = client.get(PAGE, {"customer": foreign.customer.pk})
    assert not_mine.status_code == 404 and "nothing you may see" in not_mine.content.decode()
    assert client.get(JSON, {"customer": foreign.customer.pk}).status_code == 404
    assert client.get(JSON).status_code == 400


def test_superuser_sees_any_customer(admin_client, world):
    foreign = priced_setup()
    response = admin_client.get(JSON, {"customer": foreign.customer.pk})
    assert response.status_code == 200
    [subscription] = response.json()["subscriptions"]
    assert [(m["metric"], m["units"]) for m in subscription["metrics"]] == [(foreign.metric.code, "0")]


LIMITS = {
    "model": "per_unit", "rate": "0.003", "included_free": "1000", "limit": {"units": "1000", "overage": "bill"},
    "overrides": [
        {"match": {"region": "eu"}, "price": {"model": "per_unit", "rate": "0.01", "limit": {"units": "1000", "overage": "block"}}},
        {"match": {"region": "us"}, "price": {"model": "per_unit", "rate": "0.01", "limit": {"units": "10", "overage": "bill"}}},
    ],
}


def test_the_page_shows_each_rows_limit_and_included_allowance(client, django_user_model):
    setup = priced_setup(config=LIMITS)
    now = timezone.now()
    running_total(setup.subscription, setup.metric, at=now, units="750", amount="0", events=3)
    running_total(setup.subscription, setup.metric, at=now, units="1000", amount="10", events=4, dimension_key="region=eu")
    running_total(setup.subscription, setup.metric, at=now, units="12.5", amount="0.125", events=5, dimension_key="region=us")
    user = django_user_model.objects.create_user("limited", password="pw")
    CustomerUser.objects.create(user=user, customer=setup.customer)
    client.force_login(user)
    response = client.get(PAGE)
    html = response.content.decode()
    for text in (
        "Limit 750 / 1,000 (75%)", "included: 1,000, 250 left",  # within: no state shown
        "Limit 1,000 / 1,000 (100%)", "Limit reached: blocked beyond 1,000",
        "Limit 12.5 / 10 (125%)", "Over the limit: billed as overage beyond 10",
    ):
        assert text in html, text
    assert html.count('class="badge bad"') == 2
    # The embedded initial JSON keeps usage.json's shape (the page's wording is not in it).
    [initial] = response.context["usage"]["subscriptions"]
    assert all("notes" not in row for row in initial["metrics"])
    [polled] = client.get(JSON).json()["subscriptions"]
    assert [row["limit"]["reached"] for row in polled["metrics"]] == [False, True, True]
    assert [row.keys() for row in polled["metrics"]] == [row.keys() for row in initial["metrics"]]

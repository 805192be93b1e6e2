"""The allowance grants API and admin: grants are created, listed newest period first and
withdrawn per subscription of the token's tenant; every bad input is a 400 naming its field;
another tenant's rows are 404s; a settled period refuses new grants and keeps its applied ones
(409 period_settled); and a granted allowance reaches the invoice as exactly
quote(used) − quote(used − granted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import AllowanceGrant
from billing.periods import period_for
from billing.rating import quote
from aforo.money import decimal_text
from billing.settlement import settlement_run
from tests.factories import rated_event, MetricFactory, priced_setup, tenant_token
from tests.test_admin import operator

pytestmark = pytest.mark.django_db

TIERED = {
    "model": "graduated",
    "tiers": [{"up_to": "10", "unit_amount": "0.0125", "flat_amount": "5"}, {"up_to": None, "unit_amount": "0.0033"}],
}


def rate(setup, event_id: str, quantity: str):
    return rated_event(setup, event_id, quantity)


def period_of(setup, at: datetime) -> tuple[datetime, datetime]:
    subscription = setup.subscription
    return period_for(cadence=subscription.billing_cadence, anchor=subscription.billing_anchor, at=at)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def grants_url(setup) -> str:
    return f"/api/v1/subscriptions/{setup.subscription.pk}/allowance-grants"


@pytest.fixture
def setup():
    priced = priced_setup(config=TIERED)
    priced.token = tenant_token(priced.tenant)
    return priced


@pytest.fixture
def api(api_client, setup):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {setup.token}")
    return api_client


def post(api, setup, body: dict):
    return api.post(grants_url(setup), body, format="json")


def test_create_list_and_delete(api, setup):
    now = timezone.now()
    current = post(api, setup, {"metric": setup.metric.pk, "units": "1000", "description": "Goodwill"})
    assert current.status_code == 201, current.content
    body = current.json()
    start, end = period_of(setup, now)
    assert body == {
        "id": body["id"], "subscription": setup.subscription.pk, "metric": setup.metric.pk,
        "metric_code": setup.metric.code, "period_start": iso(start), "period_end": iso(end), "units": "1000",
        "description": "Goodwill", "idempotency_key": "", "created_at": body["created_at"], "applied": False,
    }
    earlier_at = now - timedelta(days=40)
    earlier = post(api, setup, {"metric_code": setup.metric.code, "units": 25, "at": iso(earlier_at)})
    assert earlier.status_code == 201, earlier.content
    assert earlier.json()["period_start"] == iso(period_of(setup, earlier_at)[0])
    month = (now - timedelta(days=60)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    by_month = post(api, setup, {"metric": setup.metric.pk, "units": "0.000000000001", "period": f"{month:%Y-%m}"})
    assert by_month.status_code == 201, by_month.content
    assert (by_month.json()["period_start"], by_month.json()["units"]) == (iso(period_of(setup, month)[0]), "0.000000000001")

    listing = api.get(grants_url(setup)).json()
    assert listing["count"] == 3
    assert [row["id"] for row in listing["results"]] == [body["id"], earlier.json()["id"], by_month.json()["id"]]
    assert api.get(grants_url(setup), {"limit": 1}).json()["next"].endswith("limit=1&offset=1")

    assert api.delete(f"{grants_url(setup)}/{earlier.json()['id']}").status_code == 204
    assert not AllowanceGrant.objects.filter(pk=earlier.json()["id"]).exists()
    missing = api.delete(f"{grants_url(setup)}/{earlier.json()['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert [row["id"] for row in api.get(grants_url(setup)).json()["results"]] == [body["id"], by_month.json()["id"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"units": 1.5}, "units"),  # a JSON float
        ({"units": "0"}, "units"),
        ({"units": "-1"}, "units"),
        ({"units": "NaN"}, "units"),
        ({"units": "0.0000000000001"}, "units"),  # 13 decimal places
        ({"units": "1e30"}, "units"),
        ({"units": "ten"}, "units"),
        ({"metric": 987654321}, "metric"),
        ({"metric": None, "metric_code": "no-such-metric"}, "metric_code"),
        ({"metric": None}, "metric"),
        ({"at": "2026-11-15T12:00:00"}, "at"),  # no UTC offset
        ({"period": "2026-13"}, "period"),
        ({"period": "2026-11", "at": "2026-11-15T12:00:00Z"}, "period"),
        ({"description": "x" * 201}, "description"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k" * 201}, "idempotency_key"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, setup, change, field):
    body = {"metric": setup.metric.pk, "units": "10", **change}
    body = {name: value for name, value in body.items() if value is not None}
    response = post(api, setup, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("validation_error", field), error
    assert not AllowanceGrant.objects.exists()


def test_a_retry_with_the_same_idempotency_key_returns_the_first_grant(api, setup):
    body = {"metric": setup.metric.pk, "units": "10", "description": "outage", "idempotency_key": "outage-1"}
    first = post(api, setup, body)
    assert first.status_code == 201, first.content
    # the same request again, and the same grant named by code and an instant of the same period
    same_period_at = iso(datetime.fromisoformat(first.json()["period_start"]) + timedelta(hours=1))
    for retry_body in (body, {**body, "metric": None, "metric_code": setup.metric.code, "units": "10.000", "at": same_period_at}):
        retry = post(api, setup, {name: value for name, value in retry_body.items() if value is not None})
        assert (retry.status_code, retry.json()) == (200, first.json())
    assert AllowanceGrant.objects.count() == 1
    for change in ({"units": "11"}, {"description": "other"}, {"at": first.json()["period_end"]}):
        reused = post(api, setup, {**body, **change})
        assert reused.status_code == 409, reused.content
        error = reused.json()["error"]
        assert (error["code"], error["field"], error["grant"]) == ("idempotency_key_reused", "idempotency_key", first.json()["id"])
        assert "outage-1" in error["message"]
    other = priced_setup(tenant=setup.tenant)  # the key is the caller's per subscription
    elsewhere = api.post(grants_url(other), {**body, "metric": other.metric.pk}, format="json")
    assert elsewhere.status_code == 201, elsewhere.content
    rate(setup, "e1", "4")
    settlement_run(subscription_id=setup.subscription.pk, at=timezone.now())
    late_retry = post(api, setup, body)  # its period settled since: still the same answer, nothing refused
    assert (late_retry.status_code, late_retry.json()["id"], late_retry.json()["applied"]) == (200, first.json()["id"], True)
    assert AllowanceGrant.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_key_make_one_grant(setup):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from rest_framework.test import APIClient

    def create(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {setup.token}")
        try:
            return client.post(
                grants_url(setup), {"metric": setup.metric.pk, "units": "10", "idempotency_key": "once"}, format="json"
            ).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(create, range(8)))
    assert codes == [200] * 7 + [201]
    assert AllowanceGrant.objects.filter(idempotency_key="once").count() == 1


def test_another_tenants_metric_is_unknown(api, setup):
    foreign = priced_setup()
    by_id = post(api, setup, {"metric": foreign.metric.pk, "units": "10"})
    by_code = post(api, setup, {"metric_code": foreign.metric.code, "units": "10"})
    assert (by_id.status_code, by_id.json()["error"]["field"]) == (400, "metric")
    assert (by_code.status_code, by_code.json()["error"]["field"]) == (400, "metric_code")
    assert not AllowanceGrant.objects.exists()


def test_before_the_subscription_started_is_a_400(api, setup):
    started = setup.subscription.started_at
    at = post(api, setup, {"metric": setup.metric.pk, "units": "10", "at": iso(started - timedelta(seconds=1))})
    assert (at.status_code, at.json()["error"]["field"]) == (400, "at")
    month = post(api, setup, {"metric": setup.metric.pk, "units": "10", "period": f"{started - timedelta(days=31):%Y-%m}"})
    assert (month.status_code, month.json()["error"]["field"]) == (400, "period")
    at_start = post(api, setup, {"metric": setup.metric.pk, "units": "10", "at": iso(started)})
    assert at_start.status_code == 201, at_start.content


def test_another_tenants_subscription_and_grant_are_404s(api_client, api, setup):
    grant = post(api, setup, {"metric": setup.metric.pk, "units": "10"}).json()
    other = priced_setup(tenant=setup.tenant)  # same tenant, another subscription
    assert api.delete(f"{grants_url(other)}/{grant['id']}").status_code == 404
    stranger = priced_setup()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(stranger.tenant)}")
    for response in (
        api_client.get(grants_url(setup)),
        api_client.post(grants_url(setup), {"metric": stranger.metric.pk, "units": "10"}, format="json"),
        api_client.delete(f"{grants_url(setup)}/{grant['id']}"),
    ):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert AllowanceGrant.objects.count() == 1
    ingest = tenant_token(setup.tenant, kind="ingest")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {ingest}")
    assert api_client.get(grants_url(setup)).status_code == 403


def test_a_settled_period_refuses_new_grants_and_keeps_applied_ones(api, setup):
    grant = post(api, setup, {"metric": setup.metric.pk, "units": "10"}).json()
    rate(setup, "e1", "4")
    settlement_run(subscription_id=setup.subscription.pk, at=timezone.now())
    refused = post(api, setup, {"metric": setup.metric.pk, "units": "5"})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "period_settled" and "later period" in error["message"]
    assert error["period_start"] == grant["period_start"]
    kept = api.delete(f"{grants_url(setup)}/{grant['id']}")
    assert kept.status_code == 409 and kept.json()["error"]["code"] == "period_settled"
    listing = api.get(grants_url(setup)).json()
    assert [(row["id"], row["applied"]) for row in listing["results"]] == [(grant["id"], True)]
    later = post(api, setup, {"metric": setup.metric.pk, "units": "5", "at": grant["period_end"]})
    assert later.status_code == 201 and later.json()["applied"] is False


def test_granted_units_reach_the_invoice_as_the_engines_quote_difference(api, setup):
    for n, quantity in enumerate(["4", "7", "2.5", "11"]):
        rate(setup, f"e{n}", quantity)
    granted = post(api, setup, {"metric_code": setup.metric.code, "units": "20", "description": "trial top-up"})
    assert granted.status_code == 201, granted.content
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now()).invoice
    config = setup.metric_config.config
    used, units = Decimal("24.5"), Decimal(20)
    credit = quote(config, used) - quote(config, used - units)  # across the tier boundary at 10
    assert credit == Decimal("0.11660")
    line = invoice.lines.get(kind="allowance")
    assert (line.amount_unrounded, line.units, line.metric_id) == (-credit, units, setup.metric.pk)
    detail = api.get(f"/api/v1/invoices/{invoice.pk}").json()
    [allowance] = [row for row in detail["lines"] if row["kind"] == "allowance"]
    assert allowance["amount_unrounded"] == decimal_text(-credit) == "-0.1166"
    assert api.get(grants_url(setup)).json()["results"][0]["applied"] is True


# --- admin --------------------------------------------------------------------------------------


def changelist_url() -> str:
    return reverse("admin:billing_allowancegrant_changelist")


def test_admin_changelist_and_add_form_render(admin_client, setup):
    AllowanceGrant.objects.create(
        tenant=setup.tenant, subscription=setup.subscription, metric=setup.metric, period_start=timezone.now(),
        units=Decimal("12.5"), description="goodwill",
    )
    listing = admin_client.get(changelist_url())
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "goodwill" in page and "12.5" in page and "applied by the period" in page
    assert admin_client.get(changelist_url(), {"q": setup.metric.code}).context["cl"].result_count == 1
    assert admin_client.get(reverse("admin:billing_allowancegrant_add")).status_code == 200


def test_admin_add_validates_and_refuses_a_settled_period(client, setup):
    user = operator(setup.tenant)
    client.force_login(user)
    foreign_metric = MetricFactory()  # another tenant's: not even a choice
    now = timezone.now()
    form = {
        "subscription": setup.subscription.pk, "metric": setup.metric.pk, "period_start_0": f"{now:%Y-%m-%d}",
        "period_start_1": "00:00:00", "units": "7", "description": "admin grant",
    }
    add_url = reverse("admin:billing_allowancegrant_add")
    assert client.post(add_url, {**form, "metric": foreign_metric.pk}).status_code == 200  # the form again, with errors
    assert client.post(add_url, {**form, "units": "0"}).status_code == 200
    assert not AllowanceGrant.objects.exists()
    assert client.post(add_url, form).status_code == 302
    grant = AllowanceGrant.objects.get()
    assert (grant.tenant_id, grant.period_start) == (setup.tenant.pk, period_of(setup, now)[0])
    settlement_run(subscription_id=setup.subscription.pk, at=now)
    refused = client.post(add_url, form)
    assert refused.status_code == 200 and "is settled already" in refused.content.decode()
    assert AllowanceGrant.objects.count() == 1


def test_admin_cannot_change_or_delete_a_settled_grant(admin_client, setup):
    grant = AllowanceGrant.objects.create(
        tenant=setup.tenant, subscription=setup.subscription, metric=setup.metric, period_start=timezone.now(),
        units=Decimal(5),
    )
    open_grant = AllowanceGrant.objects.create(
        tenant=setup.tenant, subscription=setup.subscription, metric=setup.metric,
        period_start=timezone.now() + timedelta(days=40), units=Decimal(3),
    )
    invoice = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now()).invoice
    change_url = reverse("admin:billing_allowancegrant_change", args=[grant.pk])
    page = admin_client.get(change_url)
    assert page.status_code == 200
    assert f"yes, on invoice {invoice.number}: settled, read-only" in page.content.decode()
    assert b'name="_save"' not in page.content
    delete_url = reverse("admin:billing_allowancegrant_delete", args=[grant.pk])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    bulk = admin_client.post(
        changelist_url(), {"action": "delete_selected", "_selected_action": [grant.pk], "post": "yes"}
    )
    assert bulk.status_code == 403  # delete_selected: a row the user may not delete refuses the lot
    assert AllowanceGrant.objects.filter(pk=grant.pk).exists()
    open_delete = reverse("admin:billing_allowancegrant_delete", args=[open_grant.pk])
    assert admin_client.post(open_delete, {"post": "yes"}).status_code == 302
    assert not AllowanceGrant.objects.filter(pk=open_grant.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["AllowanceGrant", "RolloverPolicy"])
def test_billing_terms_refuse_another_tenants_subscription_or_metric(model):
    from django.core.exceptions import ValidationError as ModelValidationError

    from billing import models as billing_models

    mine, theirs = priced_setup(rate="1"), priced_setup(rate="1")
    fields = {"units": Decimal(5), "period_start": timezone.now()} if model == "AllowanceGrant" else {"included_units": Decimal(5)}
    for subscription, metric, wrong in ((theirs.subscription, mine.metric, "subscription"), (mine.subscription, theirs.metric, "metric")):
        row = getattr(billing_models, model)(tenant=mine.tenant, subscription=subscription, metric=metric, **fields)
        with pytest.raises(ModelValidationError) as refused:
            row.clean()
        assert refused.value.message_dict == {wrong: ["Must belong to the same tenant."]}

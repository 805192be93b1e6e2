"""Budget leases through the API (real PostgreSQL, real Redis): grants against a block limit,
idempotent retries, attribution of rated events through the real rating batch, renew, return,
expiry (sweep and on read), the accounting invariant in the database, and the entitlement check
seeing what leases hold back."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.leases import services
from billing.models import Lease
from billing.tasks import leases_expire
from catalog.models import TenantToken
from tests.factories import priced_setup, rated_event, tenant_token

pytestmark = pytest.mark.django_db

LIMIT_100 = {"model": "per_unit", "rate": "0.5", "limit": {"units": "100", "overage": "block"}}


@pytest.fixture(autouse=True)
def _fresh_generations(settings):
    settings.ENTITLEMENT_GENERATION_TTL_S = 0


@pytest.fixture
def setup():
    return priced_setup(config=LIMIT_100)


@pytest.fixture
def client(api_client, setup):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    return api_client


def body(setup, key="k1", units="40", **extra):
    return {"api_key": setup.api_key, "metric": setup.metric.code, "units": units, "ttl_seconds": 60,
            "holder": "gw-1", "idempotency_key": key, **extra}


def lease(client, setup, capture, **kwargs):
    with capture(execute=True):
        response = client.post("/api/v1/leases", body(setup, **kwargs), format="json")
    return response


def rate(setup, capture, event_id, quantity, lease_id=None):
    with capture(execute=True):
        return rated_event(setup, event_id, quantity, metadata={} if lease_id is None else {"lease_id": lease_id})


def check(client, setup, units="1"):
    return client.post("/api/v1/entitlements/check", {"api_key": setup.api_key, "metric": setup.metric.code,
                                                      "units": units}, format="json").json()


def balanced(lease_row: Lease) -> bool:
    return lease_row.used + lease_row.returned + lease_row.expired == lease_row.leased


def test_grants_what_is_left_of_the_limit_and_refuses_below_min_units(client, setup, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    rate(setup, capture, "before", "30")  # 70 left
    first = lease(client, setup, capture, key="a", units="50")
    assert first.status_code == 201, first.content
    assert (first.json()["leased"], first.json()["reserved"], first.json()["status"]) == ("50", "50", "active")
    second = lease(client, setup, capture, key="b", units="50")  # 20 left: granted partly
    assert (second.status_code, second.json()["leased"]) == (201, "20")
    refused = lease(client, setup, capture, key="c", units="5", min_units="1")
    assert refused.status_code == 409
    assert (refused.json()["error"]["code"], refused.json()["error"]["available"]) == ("insufficient_units", "0")
    assert Lease.objects.filter(subscription=setup.subscription).count() == 2
    decision = check(client, setup)  # the check sees 30 rated + 70 leased out
    assert (decision["allow"], decision["used"], decision["reserved"], decision["remaining"]) == (
        False, "30", "70", "0"
    )


def test_min_units_refuses_a_partial_grant(client, setup, django_capture_on_commit_callbacks):
    rate(setup, django_capture_on_commit_callbacks, "e", "90")
    response = lease(client, setup, django_capture_on_commit_callbacks, units="20", min_units="15")
    assert response.status_code == 409 and response.json()["error"]["available"] == "10"
    assert lease(client, setup, django_capture_on_commit_callbacks, key="k2", units="20", min_units="10").json()[
        "leased"
    ] == "10"


def test_a_retry_with_the_same_key_returns_the_same_lease_and_another_body_is_refused(
    client, setup, django_capture_on_commit_callbacks
):
    first = lease(client, setup, django_capture_on_commit_callbacks, key="same")
    again = lease(client, setup, django_capture_on_commit_callbacks, key="same")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["leased"] == "40"
    other = lease(client, setup, django_capture_on_commit_callbacks, key="same", units="41")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert Lease.objects.count() == 1


def test_rated_events_under_a_lease_are_counted_once(client, setup, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    granted = lease(client, setup, capture, units="60").json()
    rate(setup, capture, "u1", "10", lease_id=granted["id"])
    rate(setup, capture, "u2", "5", lease_id=str(granted["id"]))  # a string of digits counts too
    rate(setup, capture, "plain", "3")  # no lease: ordinary usage
    rate(setup, capture, "bogus", "2", lease_id="not-a-lease")  # ignored, ordinary usage
    row = Lease.objects.get(pk=granted["id"])
    assert (row.consumed, row.leased) == (Decimal(15), Decimal(60))
    decision = check(client, setup)
    # 20 rated (15 of them under the lease) + 45 the lease still holds: nothing counted twice.
    assert (decision["used"], decision["reserved"], decision["remaining"]) == ("20", "45", "35")
    assert lease(client, setup, capture, key="k2", units="100").json()["leased"] == "35"


def test_an_event_naming_another_subscriptions_lease_is_ordinary_usage(client, setup, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    other = priced_setup(config=LIMIT_100)
    foreign = services.lease_create(
        tenant_id=other.tenant.pk,
        request=services.LeaseRequest(f"customer:{other.customer.pk}", other.metric.code, {}, Decimal(10), Decimal(0), 60,
                                      "gw", "x"),
    )[0]
    rate(setup, capture, "e", "4", lease_id=foreign.pk)
    assert Lease.objects.get(pk=foreign.pk).consumed == 0


def test_return_fixes_used_and_keeps_in_flight_units_reserved(client, setup, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    granted = lease(client, setup, capture, units="50").json()
    rate(setup, capture, "u1", "10", lease_id=granted["id"])
    with capture(execute=True):
        returned = client.post(f"/api/v1/leases/{granted['id']}/return", {"used": "18"}, format="json")
    assert returned.status_code == 200, returned.content
    data = returned.json()
    assert (data["status"], data["used"], data["returned"], data["expired"], data["reserved"]) == (
        "returned", "18", "32", "0", "8"
    )
    assert check(client, setup)["reserved"] == "8"  # 8 reported used, not rated yet
    rate(setup, capture, "u2", "8", lease_id=granted["id"])
    rate(setup, capture, "u3", "3", lease_id=granted["id"])  # beyond what it used: overrun, ordinary usage
    row = Lease.objects.get(pk=granted["id"])
    assert (row.consumed, row.overrun, balanced(row)) == (Decimal(21), Decimal(3), True)
    assert (check(client, setup)["used"], check(client, setup)["reserved"]) == ("21", "0")
    again = client.post(f"/api/v1/leases/{granted['id']}/return", {"used": "18"}, format="json")
    assert again.status_code == 200 and again.json()["returned"] == "32"
    more = client.post(f"/api/v1/leases/{granted['id']}/return", {"used": "30"}, format="json")
    assert more.status_code == 409 and more.json()["error"]["code"] == "lease_returned"


def test_return_never_uses_less_than_was_rated_nor_more_than_leased(client, setup, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    granted = lease(client, setup, capture, units="20").json()
    rate(setup, capture, "u1", "12", lease_id=granted["id"])
    low = client.post(f"/api/v1/leases/{granted['id']}/return", {"used": "5"}, format="json").json()
    assert (low["used"], low["returned"]) == ("12", "8")
    second = lease(client, setup, capture, key="k2", units="20").json()
    high = client.post(f"/api/v1/leases/{second['id']}/return", {"used": "25"}, format="json").json()
    assert (high["used"], high["returned"], high["reported"]) == ("20", "0", "25")


def test_renew_extends_and_tops_up_within_the_limit(client, setup, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    granted = lease(client, setup, capture, units="30").json()
    rate(setup, capture, "other", "50")  # 20 left beside the lease
    path = f"/api/v1/leases/{granted['id']}/renew"
    with capture(execute=True):
        renewed = client.post(path, {"used": "10", "units": "60", "ttl_seconds": 600}, format="json")
    assert renewed.status_code == 200, renewed.content
    data = renewed.json()
    # 10 used, 20 left in the lease; it wants 60 left: +40 asked, 20 free → leased 50.
    assert (data["leased"], data["reported"]) == ("50", "10")
    assert timezone.now() + timedelta(seconds=590) < Lease.objects.get(pk=granted["id"]).expires_at
    again = client.post(path, {"used": "10", "units": "60", "ttl_seconds": 600}, format="json").json()
    assert again["leased"] == "50"  # a retry grants nothing more
    assert check(client, setup)["remaining"] == "0"


def test_expiry_by_the_sweep_and_on_read_accounts_for_every_unit(client, setup, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    swept = lease(client, setup, capture, key="a", units="30").json()
    read = lease(client, setup, capture, key="b", units="30").json()
    rate(setup, capture, "u1", "7", lease_id=swept["id"])
    client.post(f"/api/v1/leases/{swept['id']}/renew", {"used": "9", "ttl_seconds": 60}, format="json")
    later = timezone.now() + timedelta(seconds=120)
    with capture(execute=True):
        assert services.leases_expire(now=later) == 2
        assert services.leases_expire(now=later) == 0  # idempotent
    row = Lease.objects.get(pk=swept["id"])
    assert (row.status, row.used, row.expired, row.returned, row.consumed) == ("expired", 9, 21, 0, 7)
    assert balanced(row) and Lease.objects.get(pk=read["id"]).expired == 30
    assert check(client, setup)["reserved"] == "2"  # 9 reported, 7 rated: 2 in flight
    renew = client.post(f"/api/v1/leases/{swept['id']}/renew", {"used": "9", "ttl_seconds": 60}, format="json")
    assert renew.status_code == 409 and renew.json()["error"]["code"] == "lease_expired"


def test_a_lease_past_its_ttl_is_expired_when_read(client, setup, django_capture_on_commit_callbacks):
    granted = lease(client, setup, django_capture_on_commit_callbacks, units="10", ttl_seconds=1).json()
    Lease.objects.filter(pk=granted["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    data = client.get(f"/api/v1/leases/{granted['id']}").json()
    assert (data["status"], data["expired"], data["reserved"]) == ("expired", "10", "0")


def test_the_beat_task_expires_due_leases(setup, client, django_capture_on_commit_callbacks):
    granted = lease(client, setup, django_capture_on_commit_callbacks, units="10").json()
    Lease.objects.filter(pk=granted["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases_expire() == 1 and Lease.objects.get(pk=granted["id"]).status == "expired"


def test_list_filters_active_and_another_tenant_sees_nothing(api_client, client, setup, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    open_lease = lease(client, setup, capture, key="a", units="5").json()
    closed = lease(client, setup, capture, key="b", units="5").json()
    client.post(f"/api/v1/leases/{closed['id']}/return", {"used": "0"}, format="json")
    assert [x["id"] for x in client.get("/api/v1/leases?active=true").json()["results"]] == [open_lease["id"]]
    assert [x["id"] for x in client.get("/api/v1/leases?active=false").json()["results"]] == [closed["id"]]
    assert client.get("/api/v1/leases?active=maybe").status_code == 400
    assert len(client.get(f"/api/v1/leases?holder=gw-1&subscription_id={setup.subscription.pk}").json()["results"]) == 2
    stranger = priced_setup(config=LIMIT_100)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(stranger.tenant, TenantToken.Kind.ADMIN)}")
    assert api_client.get(f"/api/v1/leases/{open_lease['id']}").status_code == 404
    assert api_client.post(f"/api/v1/leases/{open_lease['id']}/return", {"used": "0"}, format="json").status_code == 404
    assert api_client.get("/api/v1/leases").json()["results"] == []


def test_a_price_without_a_limit_has_nothing_to_lease(api_client):
    setup = priced_setup()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    response = api_client.post("/api/v1/leases", body(setup), format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_limit"


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"units": "0"}, "invalid_units", "units"),
        ({"units": "-1"}, "invalid_units", "units"),
        ({"units": "NaN"}, "invalid_units", "units"),
        ({"units": "Infinity"}, "invalid_units", "units"),
        ({"units": 1.5}, "invalid_units", "units"),
        ({"units": "1e400"}, "invalid_units", "units"),
        ({"units": str(10**16)}, "invalid_units", "units"),
        ({"units": "0.0000000000001"}, "invalid_units", "units"),
        ({"units": True}, "invalid_units", "units"),
        ({"units": None}, "missing_field", "units"),
        ({"units": "5", "min_units": "6"}, "invalid_min_units", "min_units"),
        ({"min_units": "-1"}, "invalid_min_units", "min_units"),
        ({"ttl_seconds": 0}, "invalid_ttl", "ttl_seconds"),
        ({"ttl_seconds": 86401}, "invalid_ttl", "ttl_seconds"),
        ({"ttl_seconds": "60"}, "invalid_ttl", "ttl_seconds"),
        ({"ttl_seconds": 2**70}, "invalid_ttl", "ttl_seconds"),
        ({"holder": ""}, "invalid_holder", "holder"),
        ({"holder": "x" * 151}, "invalid_holder", "holder"),
        ({"holder": ["gw"]}, "invalid_holder", "holder"),
        ({"idempotency_key": 7}, "invalid_idempotency_key", "idempotency_key"),
        ({"metric": ""}, "invalid_metric", "metric"),
        ({"metric": 5}, "invalid_metric", "metric"),
        ({"dimensions": []}, "invalid_dimensions", "dimensions"),
        ({"api_key": None}, "missing_field", "api_key"),
        ({"customer_id": "12"}, "ambiguous_subject", "customer_id"),
        ({"extra": 1}, "unknown_field", "extra"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, setup, change, code, field):
    response = client.post("/api/v1/leases", {**body(setup), **change}, format="json")
    assert response.status_code == 400, response.content
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, field)
    assert not Lease.objects.exists()


def test_bad_bodies_and_unknown_subjects(client, setup):
    assert client.post("/api/v1/leases", [1], format="json").json()["error"]["code"] == "invalid_body"
    raw = client.post("/api/v1/leases", "{", content_type="application/json")
    assert (raw.status_code, raw.json()["error"]["code"]) == (400, "malformed_json")
    ghost = client.post("/api/v1/leases", body(setup, api_key="sk_live_nobody"), format="json")
    assert (ghost.status_code, ghost.json()["error"]["code"]) == (404, "unknown_api_key")
    unpriced = client.post("/api/v1/leases", body(setup, metric="not_in_plan"), format="json")
    assert (unpriced.status_code, unpriced.json()["error"]["code"]) == (409, "metric_not_priced")
    missing = client.post("/api/v1/leases/999999999/renew", {"used": "1", "ttl_seconds": 5}, format="json")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("path", "payload", "code"),
    [
        ("renew", {"used": "-1", "ttl_seconds": 5}, "invalid_used"),
        ("renew", {"used": "1"}, "missing_field"),
        ("renew", {"used": "1", "ttl_seconds": 5, "units": "NaN"}, "invalid_units"),
        ("renew", {"used": 0.5, "ttl_seconds": 5}, "invalid_used"),
        ("return", {}, "missing_field"),
        ("return", {"used": "abc"}, "invalid_used"),
        ("return", {"used": "1", "more": 1}, "unknown_field"),
    ],
)
def test_bad_renewals_and_returns_change_nothing(client, setup, django_capture_on_commit_callbacks, path, payload, code):
    granted = lease(client, setup, django_capture_on_commit_callbacks, units="10").json()
    response = client.post(f"/api/v1/leases/{granted['id']}/{path}", payload, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    row = Lease.objects.get(pk=granted["id"])
    assert (row.status, row.leased, row.reported) == ("active", 10, 0)


def test_the_admin_lists_leases_and_returns_selected_ones(admin_client, setup, client, django_capture_on_commit_callbacks):
    from django.urls import reverse

    granted = lease(client, setup, django_capture_on_commit_callbacks, units="25").json()
    url = reverse("admin:billing_lease_changelist")
    listing = admin_client.get(url)
    assert listing.status_code == 200 and '<td class="field-leased_exact">25</td>' in listing.content.decode()
    response = admin_client.post(url, {"action": "return_selected", "_selected_action": [granted["id"]]}, follow=True)
    assert response.status_code == 200
    row = Lease.objects.get(pk=granted["id"])
    assert (row.status, row.returned, row.used) == ("returned", 25, 0)


def test_the_database_refuses_a_closed_lease_that_loses_units(client, setup, django_capture_on_commit_callbacks):
    from django.db import IntegrityError, transaction

    granted = lease(client, setup, django_capture_on_commit_callbacks, units="10").json()
    with pytest.raises(IntegrityError), transaction.atomic():
        Lease.objects.filter(pk=granted["id"]).update(status="returned", used=Decimal(4), returned=Decimal(5))
    Lease.objects.filter(pk=granted["id"]).update(status="returned", used=Decimal(4), returned=Decimal(6))
    assert balanced(Lease.objects.get(pk=granted["id"]))


def test_an_expired_lease_is_announced_and_an_active_one_is_on_the_customers_page(
    client, setup, django_capture_on_commit_callbacks, django_user_model
):
    from billing.leases.selectors import leases_active_for_customer
    from notify.models import WebhookDelivery
    from notify.services import webhook_endpoint_create

    webhook_endpoint_create(tenant_id=setup.tenant.pk, url="https://hooks.example.com/aforo", event_types=["lease.expired"])
    granted = lease(client, setup, django_capture_on_commit_callbacks).json()
    rate(setup, django_capture_on_commit_callbacks, "under-lease", "15", lease_id=granted["id"])
    [shown] = leases_active_for_customer(customer_id=setup.customer.pk)
    assert (shown["id"], shown["metric"], shown["units"], shown["remaining"]) == (granted["id"], setup.metric.code, "40", "25")
    assert "amount" not in shown
    with django_capture_on_commit_callbacks(execute=False):
        assert services.leases_expire(now=timezone.now() + timedelta(minutes=5)) == 1
    [delivery] = WebhookDelivery.objects.filter(event_type="lease.expired")
    assert delivery.event_id == f"lease.expired:{granted['id']}"
    data = delivery.payload["data"]
    assert (data["leased"], data["used"], data["expired"], data["holder"]) == ("40", "15", "25", "gw-1")
    assert leases_active_for_customer(customer_id=setup.customer.pk) == []

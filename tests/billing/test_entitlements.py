"""POST /api/v1/entitlements/check: decisions from the counters the rating batch keeps in Redis
(real Redis, real PostgreSQL), with no database query per check once warm; Redis lost or down;
every bad input a 400 (or a per-item error in a batch) with a stable code."""

from __future__ import annotations

import io
from decimal import Decimal

import orjson
import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django_redis import get_redis_connection

from billing.api.entitlements_wsgi import EntitlementCheckFastPath
from billing.counters import CounterWrite, counter_field, counter_hash, usage_counters_read, usage_counters_write
from billing.models import RunningTotal
from catalog.models import TenantToken
from tests.factories import priced_setup, rated_event, tenant_token

pytestmark = pytest.mark.django_db

BLOCK = {"model": "per_unit", "rate": "0.5", "limit": {"units": "10", "overage": "block"}}


@pytest.fixture(autouse=True)
def _fresh_generations(settings):
    settings.ENTITLEMENT_GENERATION_TTL_S = 0  # a catalog change inside a test is seen at once


def _client(api_client, setup, kind=TenantToken.Kind.INGEST):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, kind)}")
    return api_client


def check(client, body):
    return client.post("/api/v1/entitlements/check", body, format="json")


def rate(setup, event_id, quantity, capture, **dimensions):
    with capture(execute=True):  # the counters are written when the rating transaction commits
        return rated_event(setup, event_id, quantity, dimensions=dimensions)


def test_a_block_limit_allows_within_and_denies_past_it(api_client, django_capture_on_commit_callbacks):
    setup = priced_setup(config=BLOCK)
    client = _client(api_client, setup)
    rate(setup, "a", "7", django_capture_on_commit_callbacks)
    body = check(client, {"api_key": setup.api_key, "metric": setup.metric.code, "units": "3"}).json()
    assert {k: body[k] for k in ("allow", "reason", "limit", "used", "remaining", "overage", "degraded")} == {
        "allow": True, "reason": "within_limit", "limit": "10", "used": "7", "remaining": "3", "overage": "block",
        "degraded": False,
    }
    assert body["subscription_id"] == setup.subscription.pk and body["resets_at"].endswith("Z")
    over = check(client, {"api_key": setup.api_key, "metric": setup.metric.code, "units": "3.5"}).json()
    assert (over["allow"], over["reason"], over["remaining"]) == (False, "limit_reached", "3")
    default_one = check(client, {"api_key": setup.api_key, "metric": setup.metric.code}).json()
    assert default_one["allow"] is True  # units default to 1
    rate(setup, "b", "5", django_capture_on_commit_callbacks)  # 12: 2 of them blocked (rated at zero)
    past = check(client, {"api_key": setup.api_key, "metric": setup.metric.code, "units": "0"}).json()
    assert (past["allow"], past["reason"], past["used"], past["remaining"]) == (False, "limit_reached", "12", "0")


def test_a_bill_limit_allows_past_it_and_says_so(api_client, django_capture_on_commit_callbacks):
    setup = priced_setup(config={"model": "per_unit", "rate": "1", "limit": {"units": "5", "overage": "bill"}})
    rate(setup, "a", "5", django_capture_on_commit_callbacks)
    body = check(_client(api_client, setup), {"api_key": setup.api_key, "metric": setup.metric.code}).json()
    assert (body["allow"], body["reason"], body["used"], body["overage"]) == (True, "over_limit_billed", "5", "bill")


def test_no_limit_allows_and_reports_usage_by_customer_id(api_client, django_capture_on_commit_callbacks):
    setup = priced_setup()
    rate(setup, "a", "2.5", django_capture_on_commit_callbacks)
    body = check(_client(api_client, setup), {"customer_id": setup.customer.pk, "metric": setup.metric.code}).json()
    assert (body["allow"], body["reason"], body["used"], body["limit"], body["remaining"]) == (
        True, "no_limit", "2.5", None, None
    )


def test_the_dimension_override_that_would_price_the_call_decides(api_client, django_capture_on_commit_callbacks):
    config = {
        "model": "per_unit", "rate": "0.01",
        "overrides": [{"match": {"tool_name": "generate"}, "price": {**BLOCK, "limit": {"units": "2", "overage": "block"}}}],
    }
    setup = priced_setup(config=config)
    rate(setup, "a", "2", django_capture_on_commit_callbacks, tool_name="generate")
    rate(setup, "b", "50", django_capture_on_commit_callbacks, tool_name="search")
    client = _client(api_client, setup)
    generate = check(client, {"api_key": setup.api_key, "metric": setup.metric.code, "dimensions": {"tool_name": "generate"}})
    search = check(client, {"api_key": setup.api_key, "metric": setup.metric.code, "dimensions": {"tool_name": "search"}})
    assert (generate.json()["allow"], generate.json()["dimension_key"], generate.json()["used"]) == (
        False, "tool_name=generate", "2"
    )
    assert (search.json()["allow"], search.json()["reason"], search.json()["used"]) == (True, "no_limit", "50")


def fast_path(token: str, body: dict) -> tuple[str, dict]:
    """A check through the web server's fast path (billing.api.entitlements_wsgi), in process."""
    data = orjson.dumps(body)
    environ = {
        "PATH_INFO": "/api/v1/entitlements/check", "REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data), "HTTP_AUTHORIZATION": f"Bearer {token}",
    }
    started: list[str] = []
    app = EntitlementCheckFastPath(lambda environ, start_response: pytest.fail("passed on to Django"))
    # As Django's test client does: the test's connection (inside its transaction) stays open.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        [answer] = app(environ, lambda status, headers: started.append(status))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return started[0], orjson.loads(answer)


def test_a_warm_check_queries_no_database(django_capture_on_commit_callbacks, django_assert_num_queries, settings):
    settings.ENTITLEMENT_GENERATION_TTL_S = 60
    setup = priced_setup(config=BLOCK)
    rate(setup, "a", "4", django_capture_on_commit_callbacks)
    token = tenant_token(setup.tenant, TenantToken.Kind.INGEST)
    body = {"api_key": setup.api_key, "metric": setup.metric.code}
    assert fast_path(token, body)[0] == "200 OK"  # warms the token, generation and hierarchy caches
    with django_assert_num_queries(0):
        status, answer = fast_path(token, body)
        _, batch = fast_path(token, {"checks": [body, {**body, "units": "7"}]})
    assert status == "200 OK" and answer["used"] == "4" and [r["allow"] for r in batch["results"]] == [True, False]


def test_counters_redis_lost_are_loaded_once_from_the_running_totals(api_client, django_capture_on_commit_callbacks):
    setup = priced_setup(config=BLOCK)
    rate(setup, "a", "6", django_capture_on_commit_callbacks)
    total = RunningTotal.objects.get(subscription=setup.subscription)
    get_redis_connection("default").delete(counter_hash(setup.subscription.pk, total.period_start))
    field = counter_field(setup.metric.pk, "")
    assert usage_counters_read(subscription_id=setup.subscription.pk, period_start=total.period_start, fields=[field]) is None
    body = check(_client(api_client, setup), {"api_key": setup.api_key, "metric": setup.metric.code, "units": "4"}).json()
    assert (body["allow"], body["used"]) == (True, "6")
    [counter] = usage_counters_read(subscription_id=setup.subscription.pk, period_start=total.period_start, fields=[field])
    assert counter.units == Decimal(6) and counter.amount == Decimal(3)


def test_an_older_write_never_replaces_a_newer_one():
    setup = priced_setup(config=BLOCK)
    from django.utils import timezone

    start = timezone.now().replace(microsecond=0)
    end = start.replace(year=start.year + 1)
    newer = CounterWrite(setup.subscription.pk, setup.metric.pk, "", start, end, 20, Decimal(9), Decimal("4.5"))
    older = newer._replace(version=19, units=Decimal(3), amount=Decimal("1.5"))
    assert usage_counters_write(writes=[newer]) and usage_counters_write(writes=[older])  # arrives second
    raw = get_redis_connection("default").hget(counter_hash(setup.subscription.pk, start), counter_field(setup.metric.pk, ""))
    assert raw == b"20:9:4.5"
    assert get_redis_connection("default").ttl(counter_hash(setup.subscription.pk, start)) > 0


@pytest.mark.parametrize(("fail", "allow"), [("open", True), ("closed", False)])
def test_redis_down_follows_the_limits_fail_setting(api_client, settings, fail, allow):
    setup = priced_setup(config={**BLOCK, "limit": {"units": "10", "overage": "block", "fail": fail}})
    client = _client(api_client, setup)
    default = settings.CACHES["default"]
    settings.CACHES = {"default": {**default, "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens there
    response = check(client, {"api_key": setup.api_key, "metric": setup.metric.code})
    assert response.status_code == 200
    body = response.json()
    assert (body["allow"], body["reason"], body["degraded"], body["used"], body["limit"]) == (
        allow, "counters_unavailable", True, None, "10"
    )


def test_nothing_to_rate_the_call_denies_with_the_reason(api_client):
    setup = priced_setup(config=BLOCK)
    client = _client(api_client, setup)
    unknown = check(client, {"api_key": "sk_live_nobody", "metric": setup.metric.code}).json()
    unpriced = check(client, {"api_key": setup.api_key, "metric": "not_a_metric"}).json()
    no_customer = check(client, {"customer_id": 987654321, "metric": setup.metric.code}).json()
    assert [(b["allow"], b["reason"]) for b in (unknown, unpriced, no_customer)] == [
        (False, "unknown_api_key"), (False, "metric_not_priced"), (False, "unknown_customer")
    ]


def test_another_tenants_key_is_unknown_here(api_client):
    mine, theirs = priced_setup(), priced_setup()
    body = check(_client(api_client, mine), {"api_key": theirs.api_key, "metric": theirs.metric.code}).json()
    assert (body["allow"], body["reason"], body["used"]) == (False, "unknown_api_key", None)


BAD = [
    pytest.param({"metric": "m"}, 400, "missing_field", "api_key", id="no-subject"),
    pytest.param({"api_key": "k", "customer_id": 1, "metric": "m"}, 400, "ambiguous_subject", "customer_id", id="both"),
    pytest.param({"api_key": "k"}, 400, "invalid_metric", "metric", id="no-metric"),
    pytest.param({"api_key": "k", "metric": "m\x00"}, 400, "invalid_metric", "metric", id="nul-metric"),
    pytest.param({"api_key": "k", "metric": "m", "units": 1.5}, 400, "invalid_quantity", "quantity", id="float-units"),
    pytest.param({"api_key": "k", "metric": "m", "units": "-1"}, 400, "negative_quantity", "quantity", id="negative"),
    pytest.param({"api_key": "k", "metric": "m", "units": "1e30"}, 400, "invalid_quantity", "quantity", id="huge"),
    pytest.param({"api_key": "k", "metric": "m", "dimensions": []}, 400, "invalid_dimensions", "dimensions", id="dims"),
    pytest.param({"api_key": "k", "metric": "m", "subscription_id": 3}, 400, "unknown_field", "subscription_id", id="sub"),
    pytest.param({"customer_id": "12", "metric": "m"}, 400, "invalid_customer_id", "customer_id", id="id-string"),
    pytest.param([1, 2], 400, "invalid_body", None, id="array"),
    pytest.param({"checks": {}}, 400, "invalid_body", "checks", id="checks-object"),
    pytest.param({"checks": []}, 400, "empty_batch", "checks", id="empty"),
    pytest.param({"checks": [{}] * 1001}, 413, "batch_too_large", None, id="too-many"),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), BAD)
def test_bad_checks_are_refused_with_a_stable_code(api_client, body, status, code, field):
    setup = priced_setup()
    response = check(_client(api_client, setup), body)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error.get("field") == field


def test_a_batch_answers_each_check_in_order_and_reports_bad_ones_alone(api_client, django_capture_on_commit_callbacks):
    setup = priced_setup(config=BLOCK)
    rate(setup, "a", "9", django_capture_on_commit_callbacks)
    good = {"api_key": setup.api_key, "metric": setup.metric.code}
    body = check(_client(api_client, setup), {"checks": [good, {"metric": 5}, {**good, "units": "2"}]}).json()
    first, bad, third = body["results"]
    assert (first["allow"], third["allow"], third["reason"]) == (True, False, "limit_reached")
    assert bad == {"error": {"code": "missing_field", "field": "api_key", "message": bad["error"]["message"]}}


def test_bodies_and_credentials(api_client):
    setup = priced_setup()
    client = _client(api_client, setup)
    assert client.post("/api/v1/entitlements/check", b"{", content_type="application/json").json()["error"]["code"] == "malformed_json"
    assert client.post("/api/v1/entitlements/check", b"x", content_type="text/plain").status_code == 415
    admin = _client(api_client, setup, TenantToken.Kind.ADMIN)
    assert check(admin, {"api_key": setup.api_key, "metric": "m"}).json()["error"]["code"] == "wrong_credential_kind"
    api_client.credentials()
    assert check(api_client, {"api_key": setup.api_key, "metric": "m"}).status_code == 401


def test_a_revoked_token_stops_working_once_the_cache_lets_go(settings, django_capture_on_commit_callbacks):
    from catalog.models import TenantToken as Token
    from catalog.services import tenant_token_revoke

    setup = priced_setup(config=BLOCK)
    token = tenant_token(setup.tenant, TenantToken.Kind.INGEST)
    body = {"api_key": setup.api_key, "metric": setup.metric.code}
    settings.TOKEN_CACHE_TTL_S = 60
    assert fast_path(token, body)[0] == "200 OK"
    tenant_token_revoke(token=Token.objects.filter(tenant=setup.tenant, kind=TenantToken.Kind.INGEST).latest("id"), reason="leaked", revoked_by="test")
    assert fast_path(token, body)[0] == "200 OK"  # remembered: revocation reaches the check within the TTL
    settings.TOKEN_CACHE_TTL_S = 0
    status, answer = fast_path(token, body)
    assert status == "401 Unauthorized" and answer["error"]["code"] == "invalid_credentials"
    status, answer = fast_path("nonsense", body)
    assert status == "401 Unauthorized" and answer["error"]["code"] == "invalid_credentials"


def test_a_counter_write_redis_refuses_is_logged_not_raised(settings, caplog):
    """The counters are a copy: the rating transaction has committed when they are written, and a
    Redis outage must not fail the batch (the next write or a reader's load brings them back)."""
    from django.utils import timezone

    start = timezone.now()
    write = CounterWrite(1, 2, "", start, start.replace(year=start.year + 1), 5, Decimal(1), Decimal(1))
    default = settings.CACHES["default"]
    settings.CACHES = {"default": {**default, "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens there
    assert usage_counters_write(writes=[write]) is False
    assert "usage counters not written (1 totals)" in caplog.text

"""POST /api/v1/events: validation per index, duplicates, auth, body errors, broker outage.
Accepted events are read back from the real broker."""

from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from catalog.models import TenantToken
from catalog.services import tenant_token_revoke
from metering.models import RawEvent
from tests.conftest import read_topic, wait_for
from tests.factories import TenantFactory, priced_setup, tenant_token

pytestmark = [pytest.mark.django_db, pytest.mark.kafka]
URL = "/api/v1/events"


@pytest.fixture
def setup():
    return priced_setup()


@pytest.fixture
def client(api_client, setup):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    return api_client


def ev(setup, event_id, **overrides):
    body = {
        "event_id": event_id,
        "api_key": setup.api_key,
        "metric": setup.metric.code,
        "quantity": "1",
        "timestamp": timezone.now().isoformat(),
        "dimensions": {"region": "eu"},
        "metadata": {"gateway": "kong", "request_id": f"req-{event_id}"},
    }
    body.update(overrides)
    return body


def test_one_event_is_acknowledged_by_the_broker_then_accepted(client, setup, kafka):
    response = client.post(URL, ev(setup, "one"), format="json")
    assert response.status_code == 202
    assert response.json() == {
        "accepted": 1, "duplicates": 0, "rejected": 0,
        "results": [{"index": 0, "event_id": "one", "status": "accepted", "late": False}],
    }
    [record] = read_topic(kafka["bootstrap"], kafka["usage"], expect=1)
    assert record.key() == f"{setup.tenant.id}:{setup.api_key}".encode()
    value = orjson.loads(record.value())
    assert value["event_id"] == "one" and value["quantity"] == "1" and value["dimensions"] == {"region": "eu"}
    assert value["metadata"]["request_id"] == "req-one"


def test_batch_with_one_bad_event_rejects_only_that_event(client, setup, kafka):
    batch = [ev(setup, "a"), ev(setup, "b", quantity="-3"), ev(setup, "c"), ev(setup, "a")]
    response = client.post(URL, {"events": batch}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"], body["duplicates"]) == (2, 1, 1)
    assert body["results"][1] == {
        "index": 1, "event_id": "b", "status": "rejected", "code": "negative_quantity", "field": "quantity",
        "message": "quantity must not be negative",
    }
    assert body["results"][3] == {"index": 3, "event_id": "a", "status": "duplicate", "reason": "repeated_in_batch"}
    records = read_topic(kafka["bootstrap"], kafka["usage"], expect=2)
    assert sorted(orjson.loads(r.value())["event_id"] for r in records) == ["a", "c"]


def test_resending_is_reported_as_duplicate(client, setup, kafka):
    assert client.post(URL, [ev(setup, "x")], format="json").json()["accepted"] == 1
    again = client.post(URL, [ev(setup, "x"), ev(setup, "y")], format="json").json()
    assert [r["status"] for r in again["results"]] == ["duplicate", "accepted"]
    assert again["results"][0]["reason"] == "in_flight"  # acknowledged moments ago, not yet in the ledger


def test_event_already_in_the_raw_ledger_is_a_duplicate(client, setup, kafka):
    RawEvent.objects.create(
        tenant=setup.tenant, event_id="stored", api_key_prefix="sk", subject="key:" + "0" * 64, metric="m",
        quantity=1, timestamp=timezone.now(), received_at=timezone.now(),
    )
    body = client.post(URL, ev(setup, "stored"), format="json").json()
    assert body["results"][0]["status"] == "duplicate"


def test_late_events_are_accepted_and_flagged(client, setup, kafka):
    body = client.post(URL, ev(setup, "old", timestamp=(timezone.now() - timedelta(days=3)).isoformat()), format="json").json()
    assert body["results"][0] == {"index": 0, "event_id": "old", "status": "accepted", "late": True}


def test_every_event_rejected_is_400_with_per_index_reasons(client, setup, kafka):
    response = client.post(
        URL,
        [ev(setup, "f", timestamp=(timezone.now() + timedelta(minutes=10)).isoformat()), {"event_id": "g"}],
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "invalid_events"
    assert [(r["code"], r["field"]) for r in body["results"]] == [("timestamp_in_future", "timestamp"), ("missing_field", "api_key")]


@pytest.mark.parametrize(
    "body, content_type, status, code",
    [
        (b"{not json", "application/json", 400, "malformed_json"),
        (b"[]", "application/json", 400, "empty_batch"),
        (b'"text"', "application/json", 400, "invalid_body"),
        (b"event_id=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_body_errors_have_stable_codes(client, body, content_type, status, code):
    response = client.generic("POST", URL, body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_oversized_body_and_batch(client, setup, settings):
    settings.INGEST_MAX_BODY_BYTES = 2000
    response = client.generic("POST", URL, b"[" + b" " * 3000 + b"]", content_type="application/json")
    assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")
    settings.INGEST_MAX_BODY_BYTES = 10_000_000
    settings.INGEST_MAX_BATCH = 5
    response = client.post(URL, [ev(setup, str(i)) for i in range(6)], format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (413, "batch_too_large")


def test_credentials(api_client, setup):
    assert api_client.post(URL, ev(setup, "n"), format="json").json()["error"]["code"] == "missing_credentials"
    api_client.credentials(HTTP_AUTHORIZATION="Bearer aft_ingest_wrong")
    response = api_client.post(URL, ev(setup, "n"), format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_credentials")
    api_client.credentials(HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert api_client.post(URL, ev(setup, "n"), format="json").status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.ADMIN)}")
    response = api_client.post(URL, ev(setup, "n"), format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "wrong_credential_kind")


def test_revoked_ingest_token_is_refused(api_client, setup):
    from catalog.services import tenant_token_create

    token, secret = tenant_token_create(tenant=setup.tenant, kind=TenantToken.Kind.INGEST, name="old")
    tenant_token_revoke(token=token, reason="rotated", revoked_by="test")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = api_client.post(URL, ev(setup, "n"), format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_credentials")


def test_tenant_comes_from_the_credential_not_the_body(api_client, setup, kafka):
    other = TenantFactory()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(other, TenantToken.Kind.INGEST)}")
    response = api_client.post(URL, ev(setup, "cross", tenant_id=setup.tenant.id), format="json")
    assert response.status_code == 202
    [record] = read_topic(kafka["bootstrap"], kafka["usage"], expect=1)
    assert record.key().startswith(f"{other.id}:".encode())


def test_broker_down_is_503_and_nothing_is_marked_accepted(client, setup, settings, kafka):
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # nothing listens there
    settings.KAFKA_PRODUCE_TIMEOUT_MS = 1000
    response = client.post(URL, [ev(setup, "lost-1"), ev(setup, "lost-2")], format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "broker_unavailable"
    # Once the broker is back, the same request is accepted: no duplicate marker was left behind.
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka["bootstrap"]
    settings.KAFKA_PRODUCE_TIMEOUT_MS = 5000
    retry = client.post(URL, [ev(setup, "lost-1"), ev(setup, "lost-2")], format="json")
    assert retry.json()["accepted"] == 2


def test_redis_down_still_ingests_and_dedups_against_the_ledger(client, setup, settings, kafka):
    RawEvent.objects.create(
        tenant=setup.tenant, event_id="stored-2", api_key_prefix="sk", subject="key:" + "0" * 64, metric="m",
        quantity=1, timestamp=timezone.now(), received_at=timezone.now(),
    )
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0", "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient", "SOCKET_CONNECT_TIMEOUT": 0.5,
        }}
    }
    body = client.post(URL, [ev(setup, "fresh"), ev(setup, "stored-2")], format="json").json()
    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate"]


def test_a_database_outage_is_a_503_with_a_stable_code(client, setup, monkeypatch):
    from django.db import OperationalError

    def down(**kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed")

    monkeypatch.setattr("metering.api.views.usage_events_ingest", down)
    response = client.post(URL, ev(setup, "x"), format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"] == "5"


def test_events_naming_a_customer_are_keyed_by_it(client, setup, kafka):
    event = ev(setup, "srv-1", customer_id=setup.customer.id)
    del event["api_key"]
    assert client.post(URL, event, format="json").json()["accepted"] == 1
    [record] = read_topic(kafka["bootstrap"], kafka["usage"], expect=1)
    assert record.key() == f"{setup.tenant.id}:customer:{setup.customer.id}".encode()
    assert orjson.loads(record.value())["customer_id"] == setup.customer.id


@pytest.mark.parametrize("sent_during_outage", [True, False], ids=["sent during the outage", "quiet outage"])
def test_ingest_recovers_by_itself_after_the_broker_restarts(client, setup, settings, own_broker, sent_during_outage):
    """The memory broker forgets producer ids on restart. With records lost during the outage
    librdkafka declares the web's idempotent producer fatally failed (UNKNOWN_PRODUCER_ID); after
    a quiet outage it retries the stale id until every record times out. Either way the producer
    is replaced: answers are 503 with Retry-After meanwhile, never a 500, and ingest recovers
    within seconds of the broker's return, with no restart of the web."""
    from aforo.kafka import replacements, topics_ensure, usage_topics

    settings.KAFKA_BOOTSTRAP_SERVERS = own_broker.address
    topics_ensure(names=usage_topics(), partitions=2)
    assert client.post(URL, ev(setup, "before"), format="json").status_code == 202  # the producer has its id
    settings.KAFKA_PRODUCE_TIMEOUT_MS = 1000  # the outage below is answered sooner

    own_broker.stop()
    if sent_during_outage:
        during = client.post(URL, ev(setup, "during"), format="json")  # times out: the broker is gone
        assert during.status_code == 503 and during.json()["error"]["code"] == "broker_unavailable"
        assert during["Retry-After"] == "2"

    own_broker.start()
    topics_ensure(names=usage_topics(), partitions=2)
    settings.KAFKA_PRODUCE_TIMEOUT_MS = 3000  # room for a new producer to get its id on a busy machine
    replaced_before = replacements["count"]
    statuses: list[int] = []

    def accepted() -> bool:
        response = client.post(URL, ev(setup, f"after-{len(statuses)}"), format="json")
        statuses.append(response.status_code)
        return response.status_code == 202

    wait_for(accepted, timeout=20, interval=0.2, message="ingest accepts again after the broker restart")
    assert set(statuses) <= {202, 503}, statuses
    assert replacements["count"] > replaced_before  # the fatally failed producer was replaced
    # The event lost with the broker's memory can be sent again and is accepted, not "duplicate".
    assert client.post(URL, ev(setup, "during"), format="json").json()["accepted"] == 1


def test_a_resend_is_in_flight_only_within_the_window_then_accepted_again(client, setup, settings, kafka):
    """The duplicate marker says `in_flight` for a resend while the event may still be on its
    way to the ledger. Past the window, an event the ledger does not hold (the broker lost it)
    is accepted again; the ledger's uniqueness still counts it once."""
    settings.INGEST_IN_FLIGHT_WINDOW_S = 1
    assert client.post(URL, ev(setup, "resent"), format="json").json()["accepted"] == 1
    assert client.post(URL, ev(setup, "resent"), format="json").json()["results"][0]["reason"] == "in_flight"
    wait_for(
        lambda: client.post(URL, ev(setup, "resent"), format="json").json()["accepted"] == 1,
        timeout=10, interval=0.2, message="accepted again once the in-flight window has passed",
    )
    records = read_topic(kafka["bootstrap"], kafka["usage"], expect=2)
    assert [orjson.loads(r.value())["event_id"] for r in records] == ["resent", "resent"]

"""A hostile client against the real web server (gunicorn with the Procfile's worker class, the
WSGI body guard, DEBUG on: the worst case for error pages), the real broker and the real usage
consumer: every request gets a 2xx or a 4xx in the API's JSON error shape with a stable code —
never a 5xx, never an HTML page, never a dropped connection — and a canary event sent right
after each one is rated within seconds (nothing stopped the pipeline)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import orjson
import pytest
from django.test import override_settings
from django.utils import timezone

from aforo.kafka import topics_ensure, usage_topics
from billing.models import RatedEvent
from catalog.models import TenantToken
from metering.models import RawEvent
from tests.conftest import ConsumerThread, wait_for
from tests.factories import priced_setup, tenant_token
from tests.live import (
    LiveWeb, RawResponse, flush_committed_data, fresh_kafka_settings, http_request, live_web_env, raw_request,
)

# django_db: the test database must exist (the data itself is the module fixture's, committed).
pytestmark = [pytest.mark.kafka, pytest.mark.django_db]


@dataclass
class Platform:
    web: LiveWeb
    ingest_token: str
    admin_token: str
    api_key: str
    metric: str
    tenant_id: int
    customer_id: int


@pytest.fixture(scope="module")
def platform(kafka_bootstrap, django_db_setup, django_db_blocker):
    kafka_settings = fresh_kafka_settings(kafka_bootstrap, name="hostile")
    with django_db_blocker.unblock(), override_settings(**kafka_settings):
        topics_ensure(names=usage_topics(), partitions=2, wait_s=20)
        setup = priced_setup(rate="0.5")
        web = LiveWeb(env=live_web_env(kafka_settings, TEST_DEBUG="1"))
        consumer = ConsumerThread().start()
        try:
            web.start()
            yield Platform(
                web=web, ingest_token=tenant_token(setup.tenant, TenantToken.Kind.INGEST),
                admin_token=tenant_token(setup.tenant, TenantToken.Kind.ADMIN), api_key=setup.api_key,
                metric=setup.metric.code, tenant_id=setup.tenant.id, customer_id=setup.customer.id,
            )
        finally:
            web.stop()
            consumer.stop()
            flush_committed_data()


def event(platform: Platform, **overrides) -> dict:
    return {
        "event_id": overrides.pop("event_id", uuid.uuid4().hex),
        "api_key": platform.api_key,
        "metric": platform.metric,
        "quantity": "1",
        "timestamp": (timezone.now() - timedelta(seconds=1)).isoformat(),
        **overrides,
    }


def ingest(platform: Platform, body: bytes, **kwargs) -> RawResponse:
    return http_request(platform.web.port, "POST", "/api/v1/events", body=body, token=platform.ingest_token, **kwargs)


def assert_canary_rated(platform: Platform) -> None:
    """A good event sent now is accepted and rated: the pipeline is still moving."""
    canary = event(platform, event_id=f"canary-{uuid.uuid4().hex}")
    response = ingest(platform, orjson.dumps(canary))
    assert response.status == 202, response.body
    wait_for(
        lambda: RatedEvent.objects.filter(raw_event__tenant_id=platform.tenant_id, raw_event__event_id=canary["event_id"]).exists(),
        timeout=20, message="the canary event is rated",
    )


def deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


# (name, request → response, status, error code; for a batch the code of event 0)
CORPUS: list[tuple[str, Callable[[Platform], RawResponse], int, str]] = [
    ("NUL in a dimension value", lambda p: ingest(p, orjson.dumps(event(p, dimensions={"region": "eu\x00"}))), 400, "invalid_dimensions"),
    ("NUL in a dimension name", lambda p: ingest(p, orjson.dumps(event(p, dimensions={"re\x00gion": "eu"}))), 400, "invalid_dimensions"),
    ("NUL in metadata", lambda p: ingest(p, orjson.dumps(event(p, metadata={"route": "/v1\x00"}))), 400, "invalid_metadata"),
    ("NUL in a nested metadata key", lambda p: ingest(p, orjson.dumps(event(p, metadata={"a": [{"k\x00": 1}]}))), 400, "invalid_metadata"),
    ("NUL in the event_id", lambda p: ingest(p, orjson.dumps(event(p, event_id="evt\x00"))), 400, "invalid_event_id"),
    ("NUL in the api_key", lambda p: ingest(p, orjson.dumps(event(p, api_key="sk\x00"))), 400, "invalid_api_key"),
    ("lone surrogate", lambda p: ingest(p, orjson.dumps(event(p, event_id="SURROGATE")).replace(b"SURROGATE", b"\\ud800")), 400, "malformed_json"),
    ("1e309", lambda p: ingest(p, orjson.dumps(event(p, quantity="Q")).replace(b'"Q"', b"1e309")), 400, "malformed_json"),
    ("integer past 64 bits", lambda p: ingest(p, orjson.dumps(event(p, quantity="Q")).replace(b'"Q"', b"1" + b"0" * 30)), 400, "invalid_quantity"),
    ("metadata 500 levels deep", lambda p: ingest(p, orjson.dumps(event(p, metadata="M")).replace(b'"M"', deep(500))), 400, "invalid_metadata"),
    ("10,000-deep JSON", lambda p: ingest(p, b"[" * 10_000 + b"]" * 10_000), 400, "malformed_json"),
    ("bad UTF-8", lambda p: ingest(p, orjson.dumps(event(p, event_id="BAD")).replace(b"BAD", b"\xff\xfe")), 400, "malformed_json"),
    ("full-width digits", lambda p: ingest(p, orjson.dumps(event(p, quantity="１２"))), 400, "invalid_quantity"),
    ("underscored number", lambda p: ingest(p, orjson.dumps(event(p, quantity="1_000"))), 400, "invalid_quantity"),
    ("huge quantity", lambda p: ingest(p, orjson.dumps(event(p, quantity="9" * 400))), 400, "invalid_quantity"),
    ("negative quantity", lambda p: ingest(p, orjson.dumps(event(p, quantity="-1"))), 400, "negative_quantity"),
    ("year 1 in +14:00", lambda p: ingest(p, orjson.dumps(event(p, timestamp="0001-01-01T00:00:00+14:00"))), 400, "invalid_timestamp"),
    ("year 9999", lambda p: ingest(p, orjson.dumps(event(p, timestamp="9999-12-31T23:59:59-14:00"))), 400, "invalid_timestamp"),
    ("year 1", lambda p: ingest(p, orjson.dumps(event(p, timestamp="0001-01-01T00:00:00Z"))), 400, "timestamp_too_old"),
    ("customer_id as a string", lambda p: ingest(p, orjson.dumps(event(p, api_key=None, customer_id=str(p.customer_id)))), 400, "invalid_customer_id"),
    ("customer_id past bigint", lambda p: ingest(p, orjson.dumps(event(p, api_key=None, customer_id=2**63))), 400, "invalid_customer_id"),
    ("text/plain", lambda p: ingest(p, orjson.dumps(event(p)), content_type="text/plain"), 415, "unsupported_media_type"),
    ("no Content-Type", lambda p: ingest(p, orjson.dumps(event(p)), content_type=None), 415, "unsupported_media_type"),
    ("JSON that is a string", lambda p: ingest(p, b'"hello"'), 400, "invalid_body"),
    ("empty body", lambda p: ingest(p, b""), 400, "malformed_json"),
    ("10 MB body", lambda p: ingest(p, b"[" + b" " * (10 * 1024 * 1024) + b"]"), 413, "payload_too_large"),
    (
        "negative Content-Length",
        lambda p: raw_request(p.web.port, b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n{}"),
        400, "bad_request",
    ),
    (
        "Content-Length larger than the body",
        lambda p: raw_request(
            p.web.port,
            f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {p.ingest_token}\r\nContent-Type: application/json\r\n"
            "Content-Length: 5000\r\n\r\n".encode() + orjson.dumps(event(p)),
            half_close=True,
        ),
        400, "incomplete_body",
    ),
    (
        "Content-Length smaller than the body",
        lambda p: raw_request(
            p.web.port,
            f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {p.ingest_token}\r\nContent-Type: application/json\r\n"
            "Content-Length: 10\r\n\r\n".encode() + orjson.dumps(event(p)),
        ),
        400, "malformed_json",
    ),
    (
        "two Content-Lengths",
        lambda p: raw_request(p.web.port, b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        400, "bad_request",
    ),
    ("garbage request line", lambda p: raw_request(p.web.port, b"\x00\x01\x02 / HTTP/1.1\r\n\r\n"), 400, "bad_request"),
    ("NUL in the token", lambda p: http_request(p.web.port, "POST", "/api/v1/events", body=b"{}", token="abc\x00def"), 400, "bad_request"),
    ("Latin-1 in the token", lambda p: http_request(p.web.port, "GET", "/api/v1/customers", token="caf\xe9"), 401, "invalid_credentials"),
    ("limit past bigint", lambda p: http_request(p.web.port, "GET", "/api/v1/customers?limit=9223372036854775808", token=p.admin_token), 400, "validation_error"),
    ("offset past bigint", lambda p: http_request(p.web.port, "GET", "/api/v1/customers?offset=9223372036854775808", token=p.admin_token), 400, "validation_error"),
    ("negative limit", lambda p: http_request(p.web.port, "GET", "/api/v1/invoices?limit=-1", token=p.admin_token), 400, "validation_error"),
    ("superscript id filter", lambda p: http_request(p.web.port, "GET", "/api/v1/wallets?customer=%C2%B2", token=p.admin_token), 400, "validation_error"),
    ("unmatched usage limit", lambda p: http_request(p.web.port, "GET", "/api/v1/unmatched-usage?limit=abc", token=p.admin_token), 400, "validation_error"),
    ("id that is not a number", lambda p: http_request(p.web.port, "GET", "/api/v1/customers/abc/usage", token=p.admin_token), 404, "not_found"),
    ("unknown API URL", lambda p: http_request(p.web.port, "GET", "/api/v2/nothing", token=p.admin_token), 404, "not_found"),
    ("id past bigint", lambda p: http_request(p.web.port, "GET", "/api/v1/customers/99999999999999999999", token=p.admin_token), 404, "not_found"),
    ("bad UTF-8 in the path", lambda p: http_request(p.web.port, "GET", "/api/v1/customers/%ff%fe", token=p.admin_token), 404, "not_found"),
    ("NUL in a catalog name", lambda p: http_request(p.web.port, "POST", "/api/v1/customers", body=b'{"name": "a\\u0000b", "external_id": "x"}', token=p.admin_token), 400, "validation_error"),
]


@pytest.mark.parametrize("name, send, status, code", CORPUS, ids=[case[0] for case in CORPUS])
def test_hostile_request_gets_a_json_4xx_and_the_pipeline_keeps_rating(platform, name, send, status, code):
    response = send(platform)
    assert response.status == status, (response.status, response.body[:300])
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    if code:
        first = body["results"][0]["code"] if body.get("error", {}).get("code") == "invalid_events" else body["error"]["code"]
        assert first == code, body
    assert_canary_rated(platform)


def test_a_chunked_body_is_read_whole(platform):
    body = orjson.dumps([event(platform, event_id=f"chunked-{uuid.uuid4().hex}")])
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    response = raw_request(
        platform.web.port,
        f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {platform.ingest_token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode() + chunked,
    )
    assert response.status == 202 and response.json()["accepted"] == 1, response.body


def test_a_chunked_body_past_the_limit_is_413(platform):
    piece = b" " * 65536
    chunks = b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for _ in range(40)) + b"0\r\n\r\n"
    response = raw_request(
        platform.web.port,
        f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {platform.ingest_token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode() + chunks,
    )
    assert (response.status, response.error_code) == (413, "payload_too_large")


def test_a_batch_keeps_its_good_events_and_names_the_bad_ones(platform):
    good = event(platform, event_id=f"good-{uuid.uuid4().hex}")
    batch = [event(platform, dimensions={"k": "\x00"}), good, event(platform, metadata=orjson.loads(deep(20)))]
    response = ingest(platform, orjson.dumps(batch))
    assert response.status == 202
    results = response.json()["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        ("rejected", "invalid_dimensions"), ("accepted", None), ("rejected", "invalid_metadata"),
    ]
    wait_for(lambda: RawEvent.objects.filter(tenant_id=platform.tenant_id, event_id=good["event_id"]).exists(), timeout=20)

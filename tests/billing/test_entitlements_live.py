"""The entitlement check through the real web server (gunicorn, aforo.wsgi: the WSGI fast path in
front of Django) answers exactly as the DRF view does under Django's test client — the same
status, the same JSON, the same error codes — for good checks, batches, bad bodies and bad
credentials; and a hostile body never gets a 5xx there."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest
from django.test import override_settings

from catalog.models import TenantToken
from tests.factories import priced_setup, rated_event, tenant_token
from tests.live import LiveWeb, flush_committed_data, http_request, live_web_env, raw_request

pytestmark = pytest.mark.django_db


@dataclass
class Platform:
    web: LiveWeb
    ingest: str
    admin: str
    api_key: str
    metric: str
    customer_id: int


@pytest.fixture(scope="module")
def platform(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), override_settings(ENTITLEMENT_GENERATION_TTL_S=0):
        setup = priced_setup(config={"model": "per_unit", "rate": "0.5", "limit": {"units": "10", "overage": "block"}})
        rated_event(setup, "a", "7")  # committed: the counters are written after the commit
        web = LiveWeb(env=live_web_env({}, TEST_DEBUG="1", ENTITLEMENT_GENERATION_TTL_S="0")).start()
        try:
            yield Platform(
                web, tenant_token(setup.tenant, TenantToken.Kind.INGEST), tenant_token(setup.tenant, TenantToken.Kind.ADMIN),
                setup.api_key, setup.metric.code, setup.customer.pk,
            )
        finally:
            web.stop()
            flush_committed_data()


def cases(p: Platform) -> list[tuple[str, bytes, str | None, str | None]]:
    """(name, body, token, content type)."""
    good = {"api_key": p.api_key, "metric": p.metric}
    return [
        ("within", orjson.dumps({**good, "units": "3"}), p.ingest, "application/json"),
        ("past", orjson.dumps({**good, "units": "3.5"}), p.ingest, "application/json"),
        ("by-customer", orjson.dumps({"customer_id": p.customer_id, "metric": p.metric}), p.ingest, "application/json"),
        ("unknown-key", orjson.dumps({**good, "api_key": "sk_nobody"}), p.ingest, "application/json"),
        ("batch", orjson.dumps({"checks": [good, {"metric": 1}, {**good, "units": "9"}]}), p.ingest, "application/json"),
        ("bad-units", orjson.dumps({**good, "units": 1.5}), p.ingest, "application/json"),
        ("unknown-field", orjson.dumps({**good, "tenant_id": 3}), p.ingest, "application/json"),
        ("array", b"[]", p.ingest, "application/json"),
        ("empty-batch", b'{"checks": []}', p.ingest, "application/json"),
        ("too-many", orjson.dumps({"checks": [good] * 1001}), p.ingest, "application/json"),
        ("malformed", b'{"api_key": ', p.ingest, "application/json"),
        ("not-utf8", b'{"api_key": "\xff"}', p.ingest, "application/json"),
        ("text", b"hello", p.ingest, "text/plain"),
        ("no-content-type", orjson.dumps(good), p.ingest, None),
        ("admin-token", orjson.dumps(good), p.admin, "application/json"),
        ("unknown-token", orjson.dumps(good), "not-a-token", "application/json"),
        ("no-token", orjson.dumps(good), None, "application/json"),
        # hostile: nesting past orjson's 1,024 levels, a NUL, a 70-digit number, a Latin-1 token
        ("deep", b"[" * 2000 + b"]" * 2000, p.ingest, "application/json"),
        ("nul-metric", orjson.dumps({**good, "metric": "a\x00b"}), p.ingest, "application/json"),
        ("huge-units", orjson.dumps({**good, "units": "9" * 70}), p.ingest, "application/json"),
        ("nul-key", orjson.dumps({**good, "api_key": "k\x00"}), p.ingest, "application/json"),
        ("latin1-token", orjson.dumps(good), "caf\xe9", "application/json"),
        ("deep-dimensions", orjson.dumps({**good, "dimensions": {"a": {"b": {"c": 1}}}}), p.ingest, "application/json"),
    ]


def test_the_fast_path_answers_as_the_drf_view(platform, api_client):
    for name, body, token, content_type in cases(platform):
        live = http_request(platform.web.port, "POST", "/api/v1/entitlements/check", body=body, token=token,
                            content_type=content_type)
        api_client.credentials(**({"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}))
        view = api_client.generic("POST", "/api/v1/entitlements/check", body, content_type=content_type or "")
        assert live.status == view.status_code, (name, live.body, view.content)
        assert live.status < 500, name
        assert live.json() == view.json(), name
        assert live.headers.get("content-type") == "application/json", name
        if live.status == 401:
            assert live.headers.get("www-authenticate") == view["WWW-Authenticate"] == 'Bearer realm="aforo"', name


def test_the_fast_path_decides_from_the_counters(platform):
    body = orjson.dumps({"api_key": platform.api_key, "metric": platform.metric, "units": "4"})
    answer = http_request(platform.web.port, "POST", "/api/v1/entitlements/check", body=body, token=platform.ingest).json()
    assert (answer["allow"], answer["reason"], answer["used"], answer["remaining"]) == (False, "limit_reached", "7", "3")


def test_other_requests_still_reach_django(platform):
    got = http_request(platform.web.port, "GET", "/api/v1/entitlements/check", token=platform.ingest)
    assert got.status == 405 and got.error_code == "method_not_allowed"
    assert http_request(platform.web.port, "GET", "/healthz").status == 200


def test_a_lying_content_length_is_the_guards_400(platform):
    head = (
        "POST /api/v1/entitlements/check HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {platform.ingest}\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    response = raw_request(platform.web.port, head + b'{"api_key": "k"}', half_close=True)
    assert response.status == 400 and response.error_code == "incomplete_body"

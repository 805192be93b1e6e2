"""The API Gateway access-log Lambda: recorded-format CloudWatch Logs subscription payloads
(gzip + base64, as CloudWatch delivers them) through the handler to a running Aforo."""

from __future__ import annotations

import base64
import gzip
import json
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from handler import RetryLater, decode_subscription, handle, usage_event  # noqa: E402
from conftest import wait_for  # noqa: E402

SAMPLE = json.loads((Path(__file__).parent / "subscription_sample.json").read_text())


def delivery(payload: dict) -> dict:
    """What Lambda receives from a CloudWatch Logs subscription."""
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}


def access_line(request_id: str, api_key: str, *, status: str = "200", at_ms: int | None = None) -> dict:
    at_ms = at_ms or int(time.time() * 1000)
    message = {"requestId": request_id, "apiKey": api_key, "apiKeyId": "k1a2b3", "requestTimeEpoch": str(at_ms),
               "httpMethod": "GET", "routeKey": "GET /v1/search", "resourcePath": "/v1/search", "status": status,
               "responseLatency": "42", "stage": "prod", "apiId": "a1b2c3d4e5", "userAgent": "curl/8.5.0"}
    return {"id": str(uuid.uuid4().int)[:56], "timestamp": at_ms, "message": json.dumps(message)}


def batch(lines: list[dict]) -> dict:
    return {**SAMPLE, "logEvents": lines}


def test_the_recorded_sample_decodes_and_maps():
    payload = decode_subscription(delivery(SAMPLE))
    assert payload["messageType"] == "DATA_MESSAGE" and len(payload["logEvents"]) == 2
    event = usage_event(payload["logEvents"][0], metric="api_calls", skip_statuses=set())
    assert event["event_id"] == "apigw-c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert event["api_key"] == "sk_live_sample" and event["quantity"] == "1"
    assert event["timestamp"] == "2026-12-03T10:00:00+00:00"
    assert event["metadata"] == {"gateway": "aws-api-gateway", "httpMethod": "GET", "routeKey": "GET /v1/search",
                                 "resourcePath": "/v1/search", "stage": "prod", "apiId": "a1b2c3d4e5", "apiKeyId": "k1a2b3",
                                 "userAgent": "curl/8.5.0", "status": 200, "latency_ms": 42}
    assert usage_event(payload["logEvents"][1], metric="api_calls", skip_statuses=set()) is None  # no API key: not billed


@pytest.mark.parametrize(("status", "skip", "billed"), [("502", {"5xx"}, False), ("502", {"404"}, True), ("404", {"404"}, False)])
def test_statuses_can_be_left_unbilled(status, skip, billed):
    assert (usage_event(access_line("r", "k", status=status), metric="m", skip_statuses=skip) is not None) is billed


def test_a_line_not_in_the_documented_format_is_an_error():
    with pytest.raises(ValueError):
        usage_event({"id": "1", "timestamp": 0, "message": "127.0.0.1 - - [03/Dec/2026] GET /"}, metric="m", skip_statuses=set())


def env(platform, **extra):
    return {"AFORO_URL": platform.url, "AFORO_INGEST_TOKEN": platform.info["ingest_token"], "AFORO_TIMEOUT_S": "5", **extra}


def test_n_requests_in_the_access_log_are_n_events_rated_once_even_when_redelivered(platform):
    acme = platform.info["customers"][0]
    before = platform.usage_units(acme["id"], "api_calls")
    run = uuid.uuid4().hex[:8]
    lines = [access_line(f"{run}-{n}", acme["api_key"]) for n in range(25)] + [access_line(f"{run}-anon", "-")]
    first = handle(delivery(batch(lines)), env=env(platform))
    assert (first["accepted"], first["skipped"], first["rejected"]) == (25, 1, 0)
    again = handle(delivery(batch(lines)), env=env(platform))  # Lambda's retry of the same batch
    assert (again["accepted"], again["duplicates"]) == (0, 25)
    expected = str(int(before) + 25)
    wait_for(lambda: platform.usage_units(acme["id"], "api_calls") == expected, message=f"{expected} api_calls rated")


def test_an_aforo_outage_fails_the_invocation_and_its_retry_delivers_everything_once(platform, monkeypatch):
    import handler

    monkeypatch.setattr(handler.time, "sleep", lambda s: None)  # the in-invocation backoff, not a wait for async work
    acme = platform.info["customers"][0]
    before = platform.usage_units(acme["id"], "api_calls")
    run = uuid.uuid4().hex[:8]
    lines = [access_line(f"{run}-{n}", acme["api_key"]) for n in range(10)]
    platform.web("stop")
    try:
        with pytest.raises(RetryLater):
            handle(delivery(batch(lines)), env=env(platform))
    finally:
        platform.web("start")
    assert handle(delivery(batch(lines)), env=env(platform))["accepted"] == 10
    expected = str(int(before) + 10)
    wait_for(lambda: platform.usage_units(acme["id"], "api_calls") == expected, message=f"{expected} api_calls rated")


def test_events_aforo_rejects_are_reported_not_retried(platform, caplog):
    acme = platform.info["customers"][0]
    line = access_line(f"{uuid.uuid4().hex[:8]}-old", acme["api_key"], at_ms=int((time.time() - 200 * 86400) * 1000))
    totals = handle(delivery(batch([line])), env=env(platform))
    assert (totals["accepted"], totals["rejected"]) == (0, 1)
    assert "timestamp_too_old" in caplog.text


def test_the_control_message_is_acknowledged(platform):
    control = {**SAMPLE, "messageType": "CONTROL_MESSAGE", "logEvents": []}
    assert handle(delivery(control), env=env(platform))["events"] == 0

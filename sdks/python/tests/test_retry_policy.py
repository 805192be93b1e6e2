"""Retry policy and the client's bookkeeping, against a scripted local fake (no platform)."""

from __future__ import annotations

import json
import os
import socket
import time
from decimal import Decimal

import pytest
from fake_aforo import FakeAforo

from aforo_sdk import Client, EventResult, RetryPolicy, SpoolLocked, event_build, uuid7
from aforo_sdk.events import event_bytes
from aforo_sdk.spool import Spool
from aforo_sdk.transport import retry_after_seconds

FAST = RetryPolicy(base_delay=0.05, max_delay=0.2)


@pytest.fixture
def results() -> list[EventResult]:
    return []


def client_for(url: str, results: list[EventResult], **options) -> Client:
    options.setdefault("retry", FAST)
    options.setdefault("report_delivered", True)
    return Client(url=url, token="t", flush_interval=0.05, on_result=results.append, register_atexit=False, **options)


def test_a_4xx_is_not_retried_and_every_event_is_reported_rejected(results):
    fake = FakeAforo([(401, {}, {"error": {"code": "invalid_credentials", "message": "bad token"}})])
    client = client_for(fake.url, results)
    ids = [client.record(metric="api_calls", api_key="k") for _ in range(3)]
    assert client.flush(5)
    assert len(fake.requests) == 1
    assert [(r.event_id, r.status, r.code) for r in results] == [(i, "rejected", "invalid_credentials") for i in ids]
    assert client.metrics.rejected == 3 and client.metrics.retried == 0
    client.close()
    fake.close()


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_429_and_5xx_are_retried_with_the_same_event_ids(results, status):
    fake = FakeAforo([(status, {}, {"error": {"code": "x"}}), (status, {}, {"error": {"code": "x"}})])
    client = client_for(fake.url, results)
    ids = [client.record(metric="api_calls", api_key="k") for _ in range(2)]
    assert client.flush(5)
    assert len(fake.requests) == 3
    assert all([e["event_id"] for e in body["events"]] == ids for _, body in fake.requests)
    assert [r.status for r in results] == ["accepted", "accepted"]
    assert client.metrics.retried == 4 and client.metrics.sent == 2 and client.metrics.request_failures == 2
    client.close()
    fake.close()


def test_retry_after_is_honoured(results):
    fake = FakeAforo([(503, {"Retry-After": "1"}, {"error": {"code": "broker_unavailable"}})])
    client = client_for(fake.url, results)
    client.record(metric="api_calls", api_key="k")
    assert client.flush(5)
    (first, _), (second, _) = fake.requests
    assert second - first >= 1.0  # FAST alone would have retried within 0.05-0.1 s
    client.close()
    fake.close()


def test_network_errors_are_retried_until_the_server_answers(results):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = client_for(f"http://127.0.0.1:{port}", results)
    client.record(metric="api_calls", api_key="k")
    deadline = time.monotonic() + 5
    while client.metrics.request_failures < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.metrics.request_failures >= 2 and results == []  # refused: retried, not given up
    assert client.close(timeout=0.2) is False
    assert [(r.status, r.code) for r in results] == [("dropped", "undelivered_at_shutdown")]


def test_per_event_rejections_surface_and_the_rest_is_sent(results):
    def answer(body_events: int) -> dict:
        return {"results": [{"index": 0, "status": "accepted"},
                            {"index": 1, "status": "rejected", "code": "negative_quantity", "field": "quantity",
                             "message": "quantity must not be negative"},
                            {"index": 2, "status": "duplicate", "reason": "already_received"}]}

    fake = FakeAforo([(202, {}, answer(3))])
    client = client_for(fake.url, results)
    client.record(metric="api_calls", api_key="k")
    client.record(metric="api_calls", api_key="k", quantity="-1")
    client.record(metric="api_calls", api_key="k")
    assert client.flush(5)
    assert [(r.status, r.code, r.field) for r in results] == [
        ("accepted", None, None), ("rejected", "negative_quantity", "quantity"), ("duplicate", "already_received", None)]
    metrics = client.metrics
    assert (metrics.sent, metrics.rejected, metrics.duplicate) == (1, 1, 1)
    client.close()
    fake.close()


def test_by_default_only_rejected_and_dropped_events_are_reported(results):
    fake = FakeAforo([(202, {}, {"results": [{"index": 0, "status": "accepted"},
                                             {"index": 1, "status": "rejected", "code": "invalid_metric"}]})])
    client = client_for(fake.url, results, report_delivered=False)
    client.record(metric="api_calls", api_key="k")
    rejected = client.record(metric="bad metric", api_key="k")
    assert client.flush(5)
    assert [(r.event_id, r.status, r.code, r.event["metric"]) for r in results] == [
        (rejected, "rejected", "invalid_metric", "bad metric")]
    assert (client.metrics.sent, client.metrics.rejected) == (1, 1)
    client.close()
    fake.close()


def test_overflow_drops_the_newest_and_counts_it(results):
    fake = FakeAforo([(503, {"Retry-After": "5"}, {})])  # the first batch hangs in backoff
    client = client_for(fake.url, results, max_buffer=3, batch_size=1)
    ids = [client.record(metric="api_calls", api_key="k") for _ in range(5)]
    assert client.metrics.dropped == 2
    assert [(r.event_id, r.status, r.code) for r in results] == [(ids[3], "dropped", "buffer_full"),
                                                                 (ids[4], "dropped", "buffer_full")]
    client.close(timeout=0.1)
    fake.close()


def test_overflow_block_waits_for_room(results):
    fake = FakeAforo([])
    client = client_for(fake.url, results, max_buffer=2, batch_size=1, overflow="block", block_timeout=5)
    for _ in range(20):
        client.record(metric="api_calls", api_key="k")
    assert client.flush(5) and client.metrics.dropped == 0 and client.metrics.sent == 20
    client.close()
    fake.close()


def test_batches_respect_the_size_limit(results):
    fake = FakeAforo([])
    client = client_for(fake.url, results, batch_size=5000)  # clamped to the API's 1000
    client.record(metric="api_calls", api_key="k")  # let the flusher wake first: then 2,500 pile up
    for _ in range(2500):
        client.record(metric="api_calls", api_key="k")
    assert client.flush(10)
    assert max(len(body["events"]) for _, body in fake.requests) <= 1000
    assert sum(len(body["events"]) for _, body in fake.requests) == 2501
    client.close()
    fake.close()


def test_retry_after_parsing():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert 9 <= retry_after_seconds("Thu, 01 Jan 2099 00:00:10 GMT", now=4070908800.0) <= 10


def test_backoff_grows_is_jittered_and_capped():
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
    assert all(0.05 <= policy.delay(0) <= 0.1 for _ in range(100))
    assert all(0.5 <= policy.delay(10) <= 1.0 for _ in range(100))
    assert len({policy.delay(3) for _ in range(20)}) > 1
    assert policy.delay(0, retry_after=4) == 4


def test_events_are_built_at_call_time_with_uuid7_ids_and_decimal_strings():
    first, second = uuid7(), uuid7()
    assert first[14] == "7" and first[19] in "89ab" and first[:13] <= second[:13]  # version 7, RFC variant, time-ordered
    event = event_build(metric="m", quantity=Decimal("2.50"), customer_id=3)
    assert event["quantity"] == "2.50" and event["timestamp"].endswith("+00:00") and "api_key" not in event
    with pytest.raises(TypeError):
        event_build(metric="m", quantity=1.5, api_key="k")
    with pytest.raises(ValueError):
        event_build(metric="m", api_key="k", customer_id=1)


def test_spool_replays_unacknowledged_events_and_skips_a_torn_line(tmp_path):
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    assert spool.replay() == []
    events = [event_build(metric="m", api_key="k") for _ in range(3)]
    for event in events:
        spool.append(event["event_id"], event_bytes(event))
    spool.ack([events[1]["event_id"]])
    with pytest.raises(SpoolLocked):
        Spool(path)
    spool.close()
    with open(path, "ab") as spool_file:
        spool_file.write(b'{"event": {"event_id": "torn')
    again = Spool(path)
    assert [event_id for event_id, _ in again.replay()] == [events[0]["event_id"], events[2]["event_id"]]
    assert [json.loads(line)["event"]["event_id"] for line in path.read_text().splitlines()] == [
        events[0]["event_id"], events[2]["event_id"]]
    again.close()


def test_a_forked_child_gets_its_own_flusher(results):
    fake = FakeAforo([])
    client = client_for(fake.url, results)
    client.record(metric="api_calls", api_key="parent")
    assert client.flush(5)
    child = os.fork()
    if child == 0:  # the child: record, flush through its own (new) flusher thread, report by exit code
        ok = False
        try:
            client.record(metric="api_calls", api_key="child")
            ok = client.flush(5) and client.metrics.sent == 1
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [event["api_key"] for _, body in fake.requests for event in body["events"]] == ["parent", "child"]
    client.close()
    fake.close()

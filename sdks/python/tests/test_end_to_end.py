"""The SDK against a real running Aforo (web, broker, consumer): what is rated is what was sent,
exactly once, across an outage and a restart of the instrumented app."""

from __future__ import annotations

import asyncio
import http.client
import threading
import uuid
from decimal import Decimal
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from conftest import Platform, wait_for

from aforo_sdk import AforoASGIMiddleware, AforoWSGIMiddleware, Client, EventResult, HoldError, RetryPolicy, metered

FAST_RETRY = RetryPolicy(base_delay=0.05, max_delay=0.5)


def new_client(platform: Platform, results: list[EventResult] | None = None, **options) -> Client:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("report_delivered", True)
    return Client(url=platform.url, token=platform.ingest_token, flush_interval=0.1, register_atexit=False,
                  on_result=(results.append if results is not None else None), **options)


def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class ServedApp:
    """The instrumented WSGI app behind a real HTTP server (wsgiref), in a thread."""

    def __init__(self, app) -> None:
        self.server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def get(self, path: str, api_key: str | None) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request("GET", path, headers={"X-API-Key": api_key} if api_key else {})
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_n_requests_through_the_wsgi_middleware_rate_exactly_n(platform: Platform):
    acme = platform.customers["Acme Corp"]["api_key"]
    client = new_client(platform)
    app = ServedApp(AforoWSGIMiddleware(hello_app, client=client))
    before = platform.units("Acme Corp", "api_calls")
    statuses = [app.get(f"/v1/search?q={n}", acme) for n in range(40)]
    statuses.append(app.get("/v1/search", None))  # no key: not billable, no event
    assert statuses == [200] * 41
    assert client.flush(20)
    assert platform.wait_units("Acme Corp", "api_calls", before + 40) == before + 40
    assert (client.metrics.sent, client.metrics.rejected, client.metrics.dropped) == (40, 0, 0)
    app.close()
    client.close()


def test_across_an_outage_nothing_is_lost_nothing_doubled(platform: Platform):
    initech = platform.customers["Initech"]["api_key"]
    client = new_client(platform)
    app = ServedApp(AforoWSGIMiddleware(hello_app, client=client))
    before = platform.units("Initech", "api_calls")
    for n in range(15):
        assert app.get(f"/a/{n}", initech) == 200
    assert client.flush(20)
    platform.web_stop()
    try:
        for n in range(25):  # Aforo is down: the app keeps answering, the SDK keeps the events
            assert app.get(f"/b/{n}", initech) == 200
        wait_for(lambda: client.metrics.request_failures >= 2, timeout=10, what="a failed delivery during the outage")
        assert client.metrics.buffered + client.metrics.in_flight == 25
    finally:
        platform.web_start()
    for n in range(10):
        assert app.get(f"/c/{n}", initech) == 200
    assert client.flush(30)
    assert platform.wait_units("Initech", "api_calls", before + 50) == before + 50
    metrics = client.metrics
    assert metrics.sent + metrics.duplicate == 50 and metrics.retried >= 25 and metrics.dropped == 0
    app.close()
    client.close()


def test_a_restart_with_the_spool_delivers_everything_exactly_once(platform: Platform, tmp_path):
    acme = platform.customers["Acme Corp"]["api_key"]
    spool = str(tmp_path / "aforo.spool")
    before = platform.units("Acme Corp", "llm_tokens")
    platform.web_stop()
    try:
        first = new_client(platform, spool_path=spool)
        for n in range(30):
            first.record(metric="llm_tokens", quantity=n + 1, api_key=acme)  # 465 tokens in all
        assert first.close(timeout=0.5) is False  # Aforo is down: nothing acknowledged
        assert first.metrics.dropped == 0 and first.metrics.sent == 0
    finally:
        platform.web_start()
    results: list[EventResult] = []
    second = new_client(platform, results, spool_path=spool)  # the app restarted: same spool
    assert second.flush(30)
    assert sorted(r.status for r in results) == ["accepted"] * 30
    assert second.metrics.spool_pending == 0
    second.close()
    assert platform.wait_units("Acme Corp", "llm_tokens", before + 465) == before + 465
    third = new_client(platform, spool_path=spool)  # a further restart replays nothing
    assert third.metrics.buffered == 0
    third.close()


def test_rejected_events_surface_to_the_callback(platform: Platform):
    acme = platform.customers["Acme Corp"]["api_key"]
    results: list[EventResult] = []
    client = new_client(platform, results)
    good = client.record(metric="api_calls", api_key=acme)
    negative = client.record(metric="api_calls", quantity="-3", api_key=acme)
    bad_metric = client.record(metric="no spaces allowed", api_key=acme)
    assert client.flush(20)
    by_id = {r.event_id: r for r in results}
    assert by_id[good].status == "accepted"
    assert (by_id[negative].status, by_id[negative].code) == ("rejected", "negative_quantity")
    assert (by_id[bad_metric].status, by_id[bad_metric].code) == ("rejected", "invalid_metric")
    assert client.metrics.rejected == 2
    only_bad: list[EventResult] = []  # a batch where every event is refused: 400 invalid_events
    client2 = new_client(platform, only_bad)
    client2.record(metric="api_calls", quantity="-1", api_key=acme)
    assert client2.flush(20)
    assert [(r.status, r.code, r.http_status) for r in only_bad] == [("rejected", "negative_quantity", 400)]
    client.close()
    client2.close()


def test_a_resent_event_is_a_duplicate_not_a_second_unit(platform: Platform):
    initech = platform.customers["Initech"]["api_key"]
    results: list[EventResult] = []
    client = new_client(platform, results)
    before = platform.units("Initech", "agent_sessions")
    event_id = str(uuid.uuid4())
    client.record(metric="agent_sessions", api_key=initech, event_id=event_id)
    assert client.flush(20)
    client.record(metric="agent_sessions", api_key=initech, event_id=event_id)  # what a retry looks like
    assert client.flush(20)
    assert [r.status for r in results] == ["accepted", "duplicate"]
    assert platform.wait_units("Initech", "agent_sessions", before + 1) == before + 1
    client.close()


def test_asgi_middleware_and_the_decorator(platform: Platform):
    initech = platform.customers["Initech"]["api_key"]
    client = new_client(platform)
    before_calls = platform.units("Initech", "api_calls")
    before_tokens = platform.units("Initech", "llm_tokens")

    async def asgi_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    app = AforoASGIMiddleware(asgi_app, client=client)

    async def request(n: int) -> None:
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": f"/x/{n}", "headers": [(b"x-api-key", initech.encode())]}
        await app(scope, receive, send)
        assert sent[0]["status"] == 200

    async def many() -> None:
        await asyncio.gather(*(request(n) for n in range(12)))

    asyncio.run(many())

    @metered(metric="llm_tokens", quantity=lambda reply: reply["tokens"], client=client,
             subject=lambda prompt, key: {"api_key": key})
    def complete(prompt: str, key: str) -> dict:
        return {"tokens": len(prompt)}

    complete("four", initech)
    complete("seven!!", initech)
    assert client.flush(20)
    assert platform.wait_units("Initech", "api_calls", before_calls + 12) == before_calls + 12
    assert platform.wait_units("Initech", "llm_tokens", before_tokens + 11) == before_tokens + 11
    client.close()


def hold_state(platform: Platform, hold_id: int) -> dict:
    status, hold = platform.api("GET", f"/api/v1/holds/{hold_id}")
    assert status == 200, hold
    return hold


def test_metered_session_commits_the_actual_amount_and_releases_on_error(platform: Platform):
    globex = platform.customers["Globex"]
    wallet_path = f"/api/v1/wallets/{globex['wallet_id']}"
    client = new_client(platform)
    balance = Decimal(platform.api("GET", wallet_path)[1]["balance"])
    with client.metered_session(wallet_id=globex["wallet_id"], amount="20", ttl_seconds=300) as session:
        assert hold_state(platform, session.hold_id)["status"] == "active"
        assert Decimal(platform.api("GET", wallet_path)[1]["held"]) >= 20
        session.actual = Decimal("3.25")
    committed = hold_state(platform, session.hold_id)
    assert (committed["status"], Decimal(committed["committed_amount"])) == ("committed", Decimal("3.25"))
    assert Decimal(platform.api("GET", wallet_path)[1]["balance"]) == balance - Decimal("3.25")

    with pytest.raises(ZeroDivisionError):
        with client.metered_session(wallet_id=globex["wallet_id"], amount="20") as failing:
            1 / 0
    assert hold_state(platform, failing.hold_id)["status"] == "released"
    assert Decimal(platform.api("GET", wallet_path)[1]["balance"]) == balance - Decimal("3.25")

    with pytest.raises(HoldError) as refused:  # more than the wallet holds: 402, no session
        with client.metered_session(wallet_id=globex["wallet_id"], amount="100000000"):
            pass
    assert (refused.value.status, refused.value.code) == (402, "insufficient_funds")
    client.close()


def test_entitlement_check_is_cached_briefly(platform: Platform):
    acme = platform.customers["Acme Corp"]["api_key"]
    client = new_client(platform, entitlement_ttl=0.5)
    first = client.check_entitlement(metric="api_calls", api_key=acme)
    assert first.allow and first.reason in ("within_limit", "no_limit", "over_limit_billed") and not first.cached
    second = client.check_entitlement(metric="api_calls", api_key=acme)
    assert second.cached and second.allow == first.allow and client.entitlements.requests == 1
    wait_for(lambda: not client.check_entitlement(metric="api_calls", api_key=acme).cached, timeout=5,
             what="the cache entry to expire")
    assert client.entitlements.requests == 2
    unknown = client.check_entitlement(metric="api_calls", api_key="sk_live_nobody")
    assert (unknown.allow, unknown.reason) == (False, "unknown_api_key")
    client.close()

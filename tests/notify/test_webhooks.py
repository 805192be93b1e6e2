"""Webhooks against a real HTTP receiver (a server on a local port, real sockets): signed
deliveries the README's verification accepts, retries with backoff until a 2xx or the attempts
run out, one delivery per (endpoint, event) whatever the retries of the emitter, secret rotation
(two signatures), resend, the API and admin, and the three events wired today
(invoice.finalized, wallet.low_balance, hold.expired). Celery runs tasks eagerly in tests: the
scheduled retries run at once, in order."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from django.utils import timezone

from notify.models import WebhookDelivery, WebhookEndpoint
from notify.services import retry_delay_s, webhook_delivery_resend, webhook_endpoint_create, webhook_event_emit, webhook_secret_rotate
from notify.signing import HEADER, signature_header, signature_verify
from tests.factories import funded_wallet, hold_for, priced_setup, rated_event, settled_invoice, tenant_token

pytestmark = pytest.mark.django_db


class Receiver:
    """An HTTP server answering each POST with the next status of `script` (then 200), keeping
    what it received."""

    def __init__(self, script=()):
        self.script = list(script)
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    created = []

    def make(*script):
        created.append(Receiver(script))
        return created[-1]

    yield make
    for r in created:
        r.close()


def emit(tenant_id, event_id="evt-1", event_type="invoice.finalized", capture=None, **data):
    with capture(execute=True):
        return webhook_event_emit(tenant_id=tenant_id, event_type=event_type, event_id=event_id, data=data or {"x": 1})


def test_a_delivery_is_signed_so_the_readme_check_accepts_it(receiver, django_capture_on_commit_callbacks):
    setup = priced_setup()
    r = receiver()
    endpoint = webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["invoice.finalized"])
    assert emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks, number="INV-1") == 1
    [(headers, body)] = r.received
    payload = orjson.loads(body)
    assert (payload["id"], payload["type"], payload["data"]) == ("evt-1", "invoice.finalized", {"number": "INV-1"})
    assert headers["aforo-event-id"] == "evt-1" and headers["content-type"] == "application/json"
    assert signature_verify(body, headers[HEADER.lower()], secret=endpoint.secret, now=int(time.time()))
    assert not signature_verify(body + b" ", headers[HEADER.lower()], secret=endpoint.secret, now=int(time.time()))
    assert not signature_verify(body, headers[HEADER.lower()], secret="whsec_other", now=int(time.time()))
    assert not signature_verify(body, headers[HEADER.lower()], secret=endpoint.secret, now=int(time.time()) + 301)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 200)
    assert delivery.latency_ms is not None and delivery.delivered_at is not None


def test_failures_are_retried_with_backoff_until_a_2xx(receiver, django_capture_on_commit_callbacks):
    setup = priced_setup()
    r = receiver(500, 503)
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["*"])
    emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks)
    assert len(r.received) == 3 and len({orjson.loads(b)["id"] for _, b in r.received}) == 1  # same event id
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status, delivery.last_error) == ("succeeded", 3, 200, "")
    assert [retry_delay_s(n) for n in (1, 2, 3, 7, 8, 30)] == [30, 60, 120, 1920, 3600, 3600]


def test_it_gives_up_after_the_attempts_and_a_resend_tries_again(receiver, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    setup = priced_setup()
    r = receiver(500, 500, 500)
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["invoice.finalized"])
    emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error, len(r.received)) == ("failed", 3, "HTTP 500", 3)
    with django_capture_on_commit_callbacks(execute=True):
        webhook_delivery_resend(delivery=delivery)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(r.received)) == ("succeeded", 4, 4)


def test_an_unreachable_endpoint_is_logged(settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    setup = priced_setup()
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url="http://127.0.0.1:1/nothing", event_types=["*"])
    emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and delivery.response_status is None and "ConnectionError" in delivery.last_error


def test_an_event_is_delivered_once_per_endpoint_whatever_the_emitter_retries(receiver, django_capture_on_commit_callbacks):
    setup, other = priced_setup(), priced_setup()
    r = receiver()
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["invoice.finalized"])
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["hold.expired"])  # not this type
    webhook_endpoint_create(tenant_id=other.tenant.pk, url=r.url, event_types=["*"])  # another tenant
    inactive = webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["*"])
    WebhookEndpoint.objects.filter(pk=inactive.pk).update(is_active=False)
    assert emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks) == 1
    assert emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks) == 0  # the same event again
    assert len(r.received) == 1 and WebhookDelivery.objects.count() == 1


def test_a_rotated_secret_signs_beside_the_old_one_for_a_day(receiver, django_capture_on_commit_callbacks):
    setup = priced_setup()
    r = receiver()
    endpoint = webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["*"])
    old = endpoint.secret
    webhook_secret_rotate(endpoint=endpoint)
    emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks)
    headers, body = r.received[-1]
    now = int(time.time())
    assert signature_verify(body, headers["aforo-signature"], secret=old, now=now)
    assert signature_verify(body, headers["aforo-signature"], secret=endpoint.secret, now=now)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    emit(setup.tenant.pk, "evt-2", capture=django_capture_on_commit_callbacks)
    headers, body = r.received[-1]
    assert not signature_verify(body, headers["aforo-signature"], secret=old, now=now)
    assert signature_verify(body, headers["aforo-signature"], secret=endpoint.secret, now=now)


def test_the_signature_format():
    header = signature_header(b"{}", secrets=["a", "b"], timestamp=1700000000)
    assert header.startswith("t=1700000000,v1=") and header.count("v1=") == 2
    assert signature_verify(b"{}", header, secret="b", now=1700000100)
    assert not signature_verify(b"{}", "v1=abc", secret="b", now=1700000100)  # no timestamp
    assert not signature_verify(b"{}", "t=x,v1=abc", secret="b", now=1700000100)


# --- the events wired today -------------------------------------------------------------------


def test_a_settled_invoice_is_announced(receiver, django_capture_on_commit_callbacks):
    setup = priced_setup(rate="0.5")
    r = receiver()
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["invoice.finalized"])
    rated_event(setup, "a", "4")
    with django_capture_on_commit_callbacks(execute=True):
        invoice = settled_invoice(setup)
    [(_, body)] = r.received
    payload = orjson.loads(body)
    assert payload["id"] == f"invoice.finalized:{invoice.pk}" and payload["type"] == "invoice.finalized"
    assert payload["data"]["number"] == invoice.number and payload["data"]["total"] == "2"
    assert payload["data"]["currency"] == invoice.currency and payload["data"]["kind"] == "final"


def test_a_low_balance_crossing_in_real_time_is_announced(receiver, django_capture_on_commit_callbacks):
    setup = priced_setup(rate="1", billing_mode="prepaid")
    funded_wallet(setup.customer, "10", thresholds=["5"])
    r = receiver()
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["wallet.low_balance"])
    with django_capture_on_commit_callbacks(execute=True):
        rated_event(setup, "a", "6")  # 10 → 4: the threshold of 5 crossed, by the consumer's debit
    [(_, body)] = r.received
    data = orjson.loads(body)["data"]
    assert (data["threshold"], data["available_before"], data["available_after"]) == ("5", "10", "4")
    assert data["customer_id"] == setup.customer.pk


def test_an_expired_hold_is_announced(receiver, django_capture_on_commit_callbacks):
    from wallets.holds import holds_expire

    wallet = funded_wallet(amount="50")
    hold = hold_for(wallet, "20", ttl_seconds=60)
    r = receiver()
    webhook_endpoint_create(tenant_id=wallet.tenant_id, url=r.url, event_types=["hold.expired"])
    with django_capture_on_commit_callbacks(execute=True):
        assert holds_expire(now=timezone.now() + timedelta(minutes=2)) == 1
    [(_, body)] = r.received
    payload = orjson.loads(body)
    assert payload["id"] == f"hold.expired:{hold.pk}" and payload["data"]["released"] == "20"


# --- the API and the admin --------------------------------------------------------------------


def test_the_api_manages_endpoints_and_shows_deliveries(api_client, receiver, django_capture_on_commit_callbacks):
    setup, other = priced_setup(), priced_setup()
    r = receiver(500)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    created = api_client.post("/api/v1/webhook-endpoints", {"url": r.url, "event_types": ["invoice.finalized"]}, format="json")
    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    endpoint_id = created.json()["id"]
    assert "secret" not in api_client.get(f"/api/v1/webhook-endpoints/{endpoint_id}").json()
    rotated = api_client.post(f"/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret").json()
    assert rotated["secret"] != created.json()["secret"] and rotated["previous_secret_expires_at"]
    emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks)
    [delivery] = api_client.get("/api/v1/webhook-deliveries", {"endpoint": endpoint_id}).json()["results"]
    assert (delivery["status"], delivery["attempts"], delivery["event_id"]) == ("succeeded", 2, "evt-1")
    with django_capture_on_commit_callbacks(execute=True):
        resent = api_client.post(f"/api/v1/webhook-deliveries/{delivery['id']}/resend")
    assert resent.status_code == 200 and len(r.received) == 3
    patched = api_client.patch(f"/api/v1/webhook-endpoints/{endpoint_id}", {"event_types": ["*"], "is_active": False}, format="json")
    assert patched.json()["event_types"] == ["*"] and patched.json()["is_active"] is False
    assert api_client.delete(f"/api/v1/webhook-endpoints/{endpoint_id}").status_code == 204
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(other.tenant)}")  # another tenant sees none of it
    assert api_client.get(f"/api/v1/webhook-endpoints/{endpoint_id}").status_code == 404
    assert api_client.get("/api/v1/webhook-deliveries").json()["results"] == []
    assert api_client.post(f"/api/v1/webhook-deliveries/{delivery['id']}/resend").status_code == 404


BAD = [
    pytest.param({"url": "ftp://x/y", "event_types": ["*"]}, "url", id="not-http"),
    pytest.param({"url": "http://", "event_types": ["*"]}, "url", id="no-host"),
    pytest.param({"url": "http://x/\x00", "event_types": ["*"]}, "url", id="nul"),
    pytest.param({"url": 5, "event_types": ["*"]}, "url", id="not-a-string"),
    pytest.param({"url": "http://x/" + "a" * 600, "event_types": ["*"]}, "url", id="long"),
    pytest.param({"url": "http://x/y", "event_types": ["*"]}, "url", id="no-domain"),
    pytest.param({"url": "https://hooks.example.com/y", "event_types": []}, "event_types", id="no-types"),
    pytest.param({"url": "https://hooks.example.com/y", "event_types": ["invoice.refunded"]}, "event_types", id="unknown-type"),
    pytest.param({"url": "https://hooks.example.com/y", "event_types": "invoice.finalized"}, "event_types", id="not-a-list"),
    pytest.param({"url": "https://hooks.example.com/y"}, "event_types", id="missing-types"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
def test_bad_endpoints_are_refused_naming_the_field(api_client, body, field):
    setup = priced_setup()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    response = api_client.post("/api/v1/webhook-endpoints", body, format="json")
    assert response.status_code == 400, response.content
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == ("validation_error", field)
    assert not WebhookEndpoint.objects.exists()


def test_the_admin_lists_endpoints_and_deliveries_and_resends(admin_client, receiver, django_capture_on_commit_callbacks):
    setup = priced_setup()
    r = receiver(500)
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["*"])
    emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks)
    assert admin_client.get("/admin/notify/webhookendpoint/").status_code == 200
    assert admin_client.get("/admin/notify/webhookdelivery/").status_code == 200
    delivery = WebhookDelivery.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/notify/webhookdelivery/", {"action": "resend", "_selected_action": [delivery.pk]}, follow=True
        )
    assert response.status_code == 200 and len(r.received) == 3
    form = {"tenant": setup.tenant.pk, "url": "gopher://x", "event_types": '["*"]', "description": "", "is_active": "on"}
    refused = admin_client.post("/admin/notify/webhookendpoint/add/", form)
    assert refused.status_code == 200 and "url" in refused.context["adminform"].form.errors  # a form error, not a 500
    refused = admin_client.post(
        "/admin/notify/webhookendpoint/add/", {**form, "url": "https://hooks.example.com/y", "event_types": '["nope"]'}
    )
    assert "is not an event type" in str(refused.context["adminform"].form.errors["event_types"])
    added = admin_client.post("/admin/notify/webhookendpoint/add/", {**form, "url": "https://hooks.example.com/y"}, follow=True)
    assert not added.context.get("adminform") or not added.context["adminform"].form.errors, added.context["adminform"].form.errors
    assert added.status_code == 200 and "Signing secret for https://hooks.example.com/y: whsec_" in added.content.decode()
    assert WebhookEndpoint.objects.filter(url="https://hooks.example.com/y", tenant=setup.tenant).exists()


def test_the_readme_snippet_verifies_a_real_delivery(receiver, django_capture_on_commit_callbacks):
    """The receiver-side snippet in the README, run as written, accepts what Aforo sent."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [snippet] = re.findall(r"```python\n(import hashlib, hmac, time\n.*?)```", readme, re.S)
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 - our own README
    setup = priced_setup()
    r = receiver()
    endpoint = webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["*"])
    emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks)
    headers, body = r.received[-1]
    assert namespace["aforo_signature_ok"](body, headers["aforo-signature"], endpoint.secret)
    assert not namespace["aforo_signature_ok"](body, headers["aforo-signature"], "whsec_wrong")


def test_a_delivery_the_broker_never_queued_is_swept_and_sent(receiver, monkeypatch, django_capture_on_commit_callbacks):
    """The event's transaction commits even when Celery's broker refuses the task (robust
    on_commit); the sweep queues the overdue delivery later, and it is sent once."""
    from notify import services
    from notify.tasks import webhook_deliver

    setup = priced_setup()
    r = receiver()
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["*"])

    def refused(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(webhook_deliver, "apply_async", refused)
    with django_capture_on_commit_callbacks(execute=True):  # the refusal is logged, not raised
        assert webhook_event_emit(tenant_id=setup.tenant.pk, event_type="hold.expired", event_id="h-1", data={}) == 1
    monkeypatch.undo()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "pending" and r.received == []
    assert services.webhook_deliveries_due() == 0  # not overdue yet: its own task may still come
    later = timezone.now() + services.SWEEP_GRACE + timedelta(seconds=1)
    assert services.webhook_deliveries_due(now=later) == 1
    assert services.webhook_deliveries_due(now=later) == 0  # sent: nothing overdue any more
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and len(r.received) == 1


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_to_one_endpoint_are_sent_at_once(monkeypatch):
    """An attempt in flight locks its delivery only — not the endpoint — so another delivery to the
    same endpoint, attempted meanwhile by a second worker, is sent, not skipped as locked."""
    from notify.services import webhook_delivery_attempt

    setup = priced_setup()
    first_arrived, release = threading.Event(), threading.Event()
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            if len(bodies) == 1:
                first_arrived.set()
                release.wait(10)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        webhook_endpoint_create(tenant_id=setup.tenant.pk, url=f"http://127.0.0.1:{server.server_address[1]}/h",
                                event_types=["*"])
        monkeypatch.setattr("notify.services._enqueue", lambda ids, countdown=0: None)  # the attempts are made below
        webhook_event_emit(tenant_id=setup.tenant.pk, event_type="invoice.finalized", event_id="one", data={})
        webhook_event_emit(tenant_id=setup.tenant.pk, event_type="invoice.finalized", event_id="two", data={})
        one, two = WebhookDelivery.objects.order_by("id").values_list("id", flat=True)

        def attempt_one():
            from django.db import connection

            webhook_delivery_attempt(delivery_id=one)
            connection.close()

        worker = threading.Thread(target=attempt_one)
        worker.start()
        assert first_arrived.wait(10)
        webhook_delivery_attempt(delivery_id=two)  # while the first is in flight
        assert WebhookDelivery.objects.get(pk=one).status == WebhookDelivery.Status.PENDING  # really in flight
        assert WebhookDelivery.objects.get(pk=two).status == WebhookDelivery.Status.SUCCEEDED
        release.set()
        worker.join(10)
        assert WebhookDelivery.objects.get(pk=one).status == WebhookDelivery.Status.SUCCEEDED
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.mark.django_db(transaction=True)
def test_an_inline_sender_makes_the_first_attempt_and_leaves_retries_to_celery(receiver):
    """The alerts consumer's sender: the first attempt by its own thread; a failure's retry is
    scheduled on Celery (eager here, so it runs at once)."""
    from notify.services import InlineSender

    from tests.conftest import wait_for

    setup = priced_setup()
    r = receiver(503)
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["alert.triggered"])
    sender = InlineSender(threads=1)
    try:
        webhook_event_emit(tenant_id=setup.tenant.pk, event_type="alert.triggered", event_id="alert:1", data={}, sender=sender)
        delivery = wait_for(
            lambda: WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED).first(), message="delivered"
        )
    finally:
        sender.close()
    assert delivery.attempts == 2 and len(r.received) == 2


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/h", "http://localhost/h", "http://api.localhost/h", "https://10.0.0.5/h", "http://169.254.169.254/latest",
     "http://[::1]/h", "http://[::ffff:127.0.0.1]/h", "http://192.168.1.1/h", "http://0.0.0.0/h"],
)
def test_webhooks_to_this_machine_or_a_private_network_are_refused(api_client, settings, url):
    """Server-side request forgery: a tenant's endpoint may not point Aforo at its own network."""
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    setup = priced_setup()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    response = api_client.post("/api/v1/webhook-endpoints", {"url": url, "event_types": ["*"]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "url"
    assert "public hosts only" in response.json()["error"]["message"]


def test_an_endpoint_whose_name_resolves_to_a_private_address_is_not_posted_to(
    receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    import socket

    setup = priced_setup()
    r = receiver()
    endpoint = webhook_endpoint_create(tenant_id=setup.tenant.pk, url=r.url, event_types=["*"])
    # A name saved while private hosts were allowed, that now points at this machine:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=r.url.replace("127.0.0.1", "rebound.example"))
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real("127.0.0.1" if host == "rebound.example" else host, *a, **k))
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS, settings.WEBHOOK_MAX_ATTEMPTS = False, 1
    emit(setup.tenant.pk, capture=django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.FAILED and r.received == []
    assert delivery.last_error == "refused: rebound.example resolves to a non-public address (127.0.0.1)"


def test_the_resolved_addresses_decide(settings, monkeypatch):
    import socket

    from notify.hosts import resolved_host_refused

    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    answers = {"public.example": ["93.184.215.14"], "sneaky.example": ["93.184.215.14", "10.1.2.3"]}
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, type=0: [(2, 1, 6, "", (a, port)) for a in answers[host]])
    assert resolved_host_refused("https://public.example/h") is None
    assert resolved_host_refused("https://sneaky.example/h") == "sneaky.example resolves to a non-public address (10.1.2.3)"

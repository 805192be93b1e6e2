"""`run_consumer alerts` on the real broker: events produced to the usage topic are rated by the
usage consumer, published to usage.rated.v1, read by the alerts consumer, and the crossing
reaches a real HTTP receiver as a signed webhook; a record on the rated topic that is not a rated
record goes to its DLQ alone and the consumer goes on."""

from __future__ import annotations

import orjson
import pytest

from aforo.kafka import Record, produce_and_wait
from notify.alerts import alert_rule_save
from notify.models import AlertFiring
from notify.services import webhook_endpoint_create
from notify.signing import HEADER
from tests.conftest import read_topic, wait_for
from tests.consumers.test_usage_consumer import produce
from tests.factories import priced_setup
from tests.notify.test_webhooks import receiver  # noqa: F401 — the fixture


def test_a_crossing_reaches_the_receiver_through_both_consumers(kafka, usage_consumer, receiver):  # noqa: F811
    setup = priced_setup(rate="0.01", included_free="100")
    hook = receiver()
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=hook.url, event_types=["alert.triggered"])
    alert_rule_save(tenant_id=setup.tenant.pk, data={"kind": "quota_percent", "thresholds": ["80", "100"]})
    usage_consumer("usage")
    usage_consumer("alerts")
    produce_and_wait([produce(kafka, setup, f"e{n}", "30") for n in range(3)])  # 30, 60, 90: crosses 80
    wait_for(lambda: len(hook.received) == 1, message="the 80% webhook")
    headers, body = hook.received[0]
    payload = orjson.loads(body)
    assert payload["type"] == "alert.triggered" and HEADER.lower() in headers
    assert payload["data"]["threshold"] == "80" and payload["data"]["observed"] == "90"
    assert payload["data"]["customer_id"] == setup.customer.pk
    produce_and_wait([produce(kafka, setup, "e3", "10"), produce(kafka, setup, "e0", "30")])  # 100; a duplicate
    wait_for(lambda: len(hook.received) == 2, message="the 100% webhook")
    assert orjson.loads(hook.received[1][1])["data"]["threshold"] == "100"
    assert AlertFiring.objects.filter(subscription_id=setup.subscription.pk).count() == 2


def test_a_record_that_is_not_a_rated_record_goes_to_the_dlq_and_the_next_one_is_evaluated(kafka, usage_consumer):
    setup = priced_setup(rate="0.01", included_free="10")
    alert_rule_save(tenant_id=setup.tenant.pk, data={"kind": "quota_percent", "thresholds": ["100"]})
    alerts = usage_consumer("alerts")
    usage_consumer("usage")
    produce_and_wait([Record(topic=kafka["rated"], key=b"x", value=b'{"rated_event_id": "nope"}')])
    [dead] = read_topic(kafka["bootstrap"], kafka["rated_dlq"], expect=1)
    assert dict(dead.headers())["reason"].startswith(b"undecodable: ")
    assert dead.value() == b'{"rated_event_id": "nope"}'
    produce_and_wait([produce(kafka, setup, "e1", "10")])
    wait_for(lambda: AlertFiring.objects.filter(subscription_id=setup.subscription.pk).exists(), message="the firing")
    assert alerts.thread.is_alive()


@pytest.mark.parametrize("value", [b"", b"\xff\xfe", b"[]", b"null", orjson.dumps({"rated_event_id": 1})])
def test_garbage_is_not_a_rated_record(value):
    from billing.alerts.evaluate import rated_decode

    with pytest.raises((ValueError, KeyError, TypeError)):
        rated_decode(value)

"""Alert evaluation over rated records made by the real rating path, with the real PostgreSQL and
Redis and a real HTTP receiver for the webhooks: each threshold fires once per crossing whatever
the replays, the most specific rule applies, spend and commitment, anomalies, and a tenant
without rules costs one query a batch."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from django.utils import timezone

from billing.alerts.evaluate import AlertEvaluator, rated_decode
from billing.rated_wire import RatedWire
from catalog import services as catalog_services
from notify.alerts import alert_rule_save
from notify.models import AlertFiring, WebhookDelivery
from notify.services import webhook_endpoint_create
from tests.factories import priced_setup, rated_event
from tests.notify.test_webhooks import receiver  # noqa: F401 — the fixture

pytestmark = pytest.mark.django_db


def as_rated(record, *, partition="", offset=-1):
    return rated_decode(RatedWire().encode(record), partition=partition, offset=offset)


def rate(setup, event_id, quantity, **kw):
    return as_rated(rated_event(setup, event_id, quantity, **kw))


def test_quota_thresholds_fire_once_each_and_replays_change_nothing(receiver, django_capture_on_commit_callbacks):  # noqa: F811
    setup = priced_setup(rate="0.01", included_free="100")
    hook = receiver()
    webhook_endpoint_create(tenant_id=setup.tenant.pk, url=hook.url, event_types=["alert.triggered"])
    alert_rule_save(tenant_id=setup.tenant.pk, data={"kind": "quota_percent", "thresholds": ["80", "100"],
                                                     "metric": setup.metric.code})
    records = [rate(setup, "a", "50"), rate(setup, "b", "35"), rate(setup, "c", "20")]
    evaluator = AlertEvaluator()
    with django_capture_on_commit_callbacks(execute=True):
        fired = evaluator.evaluate(records)
    assert [(f.threshold_key, f.event_id) for f in fired] == [("80", "b"), ("100", "c")]
    assert [orjson.loads(body)["data"]["message"] for _, body in hook.received] == [
        f"{setup.metric.code}: 80% of the included quota (80 of 100)",
        f"{setup.metric.code}: 100% of the included quota (100 of 100)",
    ]
    # The same records again — a replay after a crash, a second consumer, a fresh process:
    assert evaluator.evaluate(records) == []
    assert AlertEvaluator().evaluate(records[::-1]) == []
    assert AlertFiring.objects.count() == 2 and WebhookDelivery.objects.count() == 2


def test_the_hard_limit_reached(django_capture_on_commit_callbacks):
    setup = priced_setup(config={"model": "per_unit", "rate": "0.01", "limit": {"units": "10", "overage": "block"}})
    alert_rule_save(tenant_id=setup.tenant.pk, data={"kind": "limit_percent", "thresholds": ["100"]})
    [firing] = AlertEvaluator().evaluate([rate(setup, "a", "9"), rate(setup, "b", "5")])
    assert firing.message == f"{setup.metric.code}: hard limit of 10 reached"
    assert (firing.observed, firing.event_id) == (Decimal(14), "b")


def test_a_subscription_override_beats_the_plan_default_which_beats_the_tenant_default():
    setup = priced_setup(rate="0.01", included_free="100")
    tenant_id = setup.tenant.pk
    alert_rule_save(tenant_id=tenant_id, data={"kind": "quota_percent", "thresholds": ["10"]})
    evaluator = AlertEvaluator()
    assert [f.threshold_key for f in evaluator.evaluate([rate(setup, "a", "15")])] == ["10"]
    alert_rule_save(tenant_id=tenant_id, data={"kind": "quota_percent", "thresholds": ["20"], "rate_plan": setup.rate_plan.pk})
    assert [f.threshold_key for f in evaluator.evaluate([rate(setup, "b", "10")])] == ["20"]  # 15 → 25
    alert_rule_save(tenant_id=tenant_id, data={"kind": "quota_percent", "thresholds": ["30"], "is_active": False,
                                               "subscription": setup.subscription.pk})
    assert evaluator.evaluate([rate(setup, "c", "10")]) == []  # 25 → 35: silenced for this subscription


def test_commitment_and_spend_thresholds_fire_from_the_spend_so_far():
    setup = priced_setup(rate="1.5")
    setup.subscription.min_commitment = Decimal("500")
    catalog_services.catalog_object_save(instance=setup.subscription)
    alert_rule_save(tenant_id=setup.tenant.pk, data={"kind": "commitment_percent", "thresholds": ["50", "100"]})
    alert_rule_save(tenant_id=setup.tenant.pk, data={"kind": "spend_amount", "thresholds": ["100"], "metric": setup.metric.code})
    evaluator = AlertEvaluator()
    assert evaluator.evaluate([rate(setup, "a", "60")]) == []  # 90.00
    fired = evaluator.evaluate([rate(setup, "b", "171.52")])  # 347.28
    assert sorted(f.message for f in fired) == [
        "347.28 USD of the 500.00 USD minimum commitment used (69.4%)",
        f"{setup.metric.code} spend this period reached 347.28 USD (threshold 100.00 USD)",
    ]
    assert evaluator.evaluate([rate(setup, "c", "1")]) == []


def test_an_anomaly_fires_once_per_episode_and_replays_do_not_count_twice(django_capture_on_commit_callbacks):
    setup = priced_setup(rate="0.01")
    alert_rule_save(tenant_id=setup.tenant.pk, data={
        "kind": "anomaly", "factor": "3", "window_minutes": 5, "baseline_minutes": 30, "min_units": "50",
    })
    now = timezone.now().replace(second=30, microsecond=0)
    history = [rate(setup, f"h{m}", "2", at=now - timedelta(minutes=m)) for m in range(40, 4, -1)]
    evaluator = AlertEvaluator()
    offsets = iter(range(10**6))

    def batch(records):
        return [rated_decode(orjson.dumps({**r.__dict__, **_texts(r)}), partition="t:0", offset=next(offsets))
                for r in records]

    first = batch(history)
    assert evaluator.evaluate(first) == []
    evaluator.evaluate(first)  # a replay of the batch: the watermark keeps it from counting twice
    spike = batch([rate(setup, "s1", "40", at=now)])
    assert evaluator.evaluate(spike) == []  # 40 in the window: under the 50-unit floor
    [anomaly] = evaluator.evaluate(batch([rate(setup, "s2", "30", at=now)]))
    assert anomaly.kind == "anomaly" and anomaly.reference == Decimal(2) and anomaly.observed == Decimal(14)
    assert evaluator.evaluate(batch([rate(setup, "s3", "30", at=now)])) == []  # the same episode
    assert AlertFiring.objects.filter(kind="anomaly").count() == 1


def _texts(r):
    out = {}
    for name, value in r.__dict__.items():
        if isinstance(value, Decimal):
            out[name] = str(value)
        elif hasattr(value, "isoformat"):
            out[name] = value.isoformat()
    return out


def test_a_tenant_without_rules_costs_one_query_a_batch(django_assert_max_num_queries):
    setup = priced_setup(rate="0.01", included_free="100")
    records = [rate(setup, f"e{n}", "1") for n in range(20)]
    evaluator = AlertEvaluator()
    assert evaluator.evaluate(records[:1]) == []  # learns the tenant has no rules
    with django_assert_max_num_queries(1):  # its catalog generation, to know that still holds
        assert evaluator.evaluate(records) == []
    alert_rule_save(tenant_id=setup.tenant.pk, data={"kind": "quota_percent", "thresholds": ["1"]})  # seen at once
    assert [f.event_id for f in evaluator.evaluate(records)] == ["e0"]

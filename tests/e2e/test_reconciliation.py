"""The reconciliation through the real ingest API, broker and consumer: every accepted event is
accounted for (persisted as rated or unmatched, dead-lettered, or in flight), and an event lost
from the ledger or produced around the API is named by its id."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from aforo.kafka import Record, produce_and_wait
from billing.models import RatedEvent, RunningTotal
from billing.usage import unmatched_usage_replay
from catalog import services as catalog_services
from catalog.models import Subscription, TenantToken
from metering.models import DeadLetter, RawEvent, UnmatchedUsage
from tests.conftest import wait_for
from tests.factories import CustomerFactory, priced_setup, tenant_token
from tests.test_admin import operator

pytestmark = pytest.mark.kafka


def _event(setup, event_id, quantity="1", **extra):
    return {"event_id": event_id, "api_key": setup.api_key, "metric": setup.metric.code, "quantity": quantity,
            "timestamp": (timezone.now() - timedelta(seconds=1)).isoformat(), **extra}


def _post(api_client, setup, events):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    response = api_client.post("/api/v1/events", events, format="json")
    assert response.status_code == 202, response.content
    assert {r["status"] for r in response.json()["results"]} == {"accepted"}


def _period(started):
    return f"{(started - timedelta(minutes=1)).isoformat()}/{(timezone.now() + timedelta(minutes=1)).isoformat()}"


def _report(api_client, setup, **params):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    return api_client.get("/api/v1/reconciliation", params)


def test_dead_letters_unmatched_and_replayed_events_balance_to_zero(api_client, usage_consumer, client):
    started = timezone.now()
    setup = priced_setup(rate="1")
    full = priced_setup(tenant=setup.tenant, rate="1")  # its running total is about to overflow: unstorable
    homeless = CustomerFactory(tenant=setup.tenant)  # no subscription yet: unmatched until it has one
    usage_consumer()
    _post(api_client, full, [_event(full, "fill")])
    wait_for(lambda: RatedEvent.objects.filter(tenant=setup.tenant).count() == 1)
    RunningTotal.objects.filter(subscription=full.subscription).update(units=Decimal("99999999999999999999999999"))

    _post(api_client, setup, [_event(setup, "a"), _event(setup, "b", "2"), _event(setup, "ghost", api_key="sk_live_nobody"),
                              _event(full, "overflow", "10"), {**_event(setup, "homeless"), "api_key": None, "customer_id": homeless.id}])
    wait_for(lambda: DeadLetter.objects.filter(tenant_id=setup.tenant.id).count() == 1, message="the unstorable event dead-lettered")
    wait_for(lambda: UnmatchedUsage.objects.filter(tenant=setup.tenant).count() == 2, message="ghost and homeless unmatched")
    wait_for(lambda: RatedEvent.objects.filter(tenant=setup.tenant).count() == 3)
    catalog_services.catalog_object_save(instance=Subscription(
        tenant=setup.tenant, customer=homeless, offering=setup.rate_plan.offering, rate_plan=setup.rate_plan,
        billing_mode=setup.subscription.billing_mode, billing_anchor=setup.subscription.started_at,
        started_at=setup.subscription.started_at, currency=setup.rate_plan.currency,
    ))
    assert unmatched_usage_replay(tenant_id=setup.tenant.id)[0]["rated"] == 1

    body = _report(api_client, setup, period=_period(started)).json()
    assert body["balanced"] is True and body["difference"] == 0, body
    totals = body["totals"]
    assert (totals["accepted"], totals["persisted"], totals["dead_lettered"], totals["in_flight"]) == (6, 5, 1, 0)
    assert (totals["rated"], totals["unmatched"], totals["replayed"]) == (3, 2, 1)
    rows = {row["customer_id"]: row for row in body["rows"]}
    assert rows[full.customer.id]["dead_letter_reasons"] == {"unstorable": 1}
    assert rows[homeless.id]["replayed"] == 1
    assert [row["customer"] for row in body["rows"] if row["customer_id"] is None] == ["unknown"]  # the ghost key
    assert body["topic_scanned"] is False  # nothing to explain

    mine = _report(api_client, setup, period=_period(started), customer=setup.customer.id).json()
    assert (mine["totals"]["accepted"], mine["totals"]["rated"], len(mine["rows"])) == (2, 2, 1)

    client.force_login(operator(setup.tenant))
    page = client.get(reverse("admin:reconciliation"), {"period": _period(started)})
    assert page.status_code == 200 and "balanced" in page.content.decode()


def test_an_event_lost_from_the_ledger_and_one_produced_around_the_api_are_named(api_client, usage_consumer, kafka):
    started = timezone.now()
    setup = priced_setup(rate="1")
    other = priced_setup(tenant=setup.tenant, rate="1")
    _post(api_client, setup, [_event(setup, "a"), _event(setup, "b")])
    early = _report(api_client, setup, period=_period(started)).json()  # no consumer yet: in flight, not lost
    assert (early["balanced"], early["totals"]["in_flight"], early["rows"][0]["in_flight_event_ids"]) == (True, 2, ["a", "b"])

    usage_consumer()
    direct = _event(other, "direct")
    produce_and_wait([Record(topic=kafka["usage"], key=f"{setup.tenant.id}:{other.api_key}".encode(), value=orjson.dumps(direct))])
    wait_for(lambda: RatedEvent.objects.filter(tenant=setup.tenant).count() == 3)
    lost = RawEvent.objects.get(tenant=setup.tenant, event_id="b")
    RatedEvent.objects.filter(raw_event=lost).delete()
    lost.delete()

    with pytest.raises(CommandError) as failure:
        call_command("reconcile", tenant=setup.tenant.id, period=_period(started), json=True, stdout=(out := _Out()))
    assert failure.value.returncode == 1 and "not balanced" in str(failure.value)
    [report] = json.loads(out.text)
    rows = {row["customer_id"]: row for row in report["rows"]}
    assert (rows[setup.customer.id]["difference"], rows[setup.customer.id]["missing_event_ids"]) == (1, ["b"])
    assert (rows[other.customer.id]["difference"], rows[other.customer.id]["not_accepted_event_ids"]) == (-1, ["direct"])
    assert report["balanced"] is False

    call_command("reconcile", tenant=setup.tenant.id, customer=setup.customer.id, period="2000-01", stdout=(table := _Out()))
    assert "TOTAL" in table.text  # an empty, balanced period prints its table and exits 0


@pytest.mark.django_db
def test_the_report_refuses_bad_parameters_with_the_field(api_client):
    setup = priced_setup()
    for params, field in (({"period": "yesterday"}, "period"), ({"customer": "x"}, "customer"), ({"customer": "999999999"}, "customer"),
                          ({"period": "2026-01-01T00:00Z/2026-09-01T00:00Z"}, "period")):
        response = _report(api_client, setup, **params)
        assert response.status_code == 400, (params, response.content)
        assert response.json()["error"]["code"] == "validation_error"
        assert field in response.json()["error"]["message"]


class _Out:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

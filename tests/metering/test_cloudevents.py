"""CloudEvents ingest on POST /api/v1/events (structured mode: application/cloudevents+json and
application/cloudevents-batch+json), mapped as OpenMeter maps them; the usage event v1 as a
published JSON Schema (served, and agreeing with the validator)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import orjson
import pytest
from django.utils import timezone
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from catalog.models import Customer, TenantToken
from metering.cloudevents import CLOUDEVENT, CLOUDEVENTS_BATCH, cloudevent_to_event
from metering.validation import EventRejected, validate_event
from tests.conftest import read_topic
from tests.factories import priced_setup, tenant_token

URL = "/api/v1/events"
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs/schemas/usage-event-v1.json").read_text())


@pytest.fixture
def setup(db):
    setup = priced_setup()
    Customer.objects.filter(pk=setup.customer.pk).update(external_id="customer-1")
    return setup


@pytest.fixture
def client(api_client, setup):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.INGEST)}")
    return api_client


def ce(setup, ce_id="c1", **overrides):
    body = {
        "specversion": "1.0", "id": ce_id, "source": "my-service", "type": setup.metric.code, "subject": "customer-1",
        "time": timezone.now().isoformat(), "data": {"quantity": "3", "model": "gpt-4", "path": "/v1/chat", "ok": True,
                                                     "tokens": {"in": 1}},
    }
    body.update(overrides)
    return body


@pytest.mark.django_db
@pytest.mark.kafka
def test_a_cloudevent_is_mapped_as_openmeter_maps_it(client, setup, kafka):
    response = client.generic("POST", URL, orjson.dumps(ce(setup)), content_type=CLOUDEVENT)
    assert response.status_code == 202, response.content
    assert response.json()["results"] == [{"index": 0, "event_id": "my-service/c1", "status": "accepted", "late": False}]
    [record] = read_topic(kafka["bootstrap"], kafka["usage"], expect=1)
    event = orjson.loads(record.value())
    assert (event["customer_id"], event["metric"], event["quantity"]) == (setup.customer.pk, setup.metric.code, "3")
    assert event["dimensions"] == {"model": "gpt-4", "path": "/v1/chat", "ok": "true"}
    assert event["metadata"] == {"ce_id": "c1", "ce_source": "my-service", "ce_type": setup.metric.code, "tokens": {"in": 1}}


@pytest.mark.django_db
@pytest.mark.kafka
def test_a_batch_is_judged_per_index_and_deduplicated_per_source_and_id(client, setup, kafka):
    batch = [
        ce(setup, "a", subject=setup.api_key, data={}),  # an API key; no quantity: counts once
        ce(setup, "a", source="other-service"),  # the same id from another source: another event
        ce(setup, "b", specversion="0.3"),
        ce(setup, "c", subject="nobody"),
        ce(setup, "d", data=[1, 2]),
        ce(setup, "a", subject=setup.api_key),  # repeated in the batch
        ce(setup, "e", time=None, subject=f"customer:{setup.customer.pk}"),  # no time: when received
    ]
    response = client.generic("POST", URL, orjson.dumps(batch), content_type=CLOUDEVENTS_BATCH)
    assert response.status_code == 202, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted", "rejected", "rejected", "rejected", "duplicate", "accepted"]
    assert [(r.get("code"), r.get("field")) for r in results if r["status"] == "rejected"] == [
        ("invalid_cloudevent", "specversion"), ("unknown_subject", "subject"), ("invalid_cloudevent", "data"),
    ]
    records = read_topic(kafka["bootstrap"], kafka["usage"], expect=3)
    events = {orjson.loads(r.value())["event_id"]: orjson.loads(r.value()) for r in records}
    assert events["my-service/a"]["quantity"] == "1" and events["my-service/a"]["api_key"] == setup.api_key
    assert set(events) == {"my-service/a", "other-service/a", "my-service/e"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"[]", CLOUDEVENT, "invalid_body"),
        (b"{}", CLOUDEVENTS_BATCH, "invalid_body"),
        (b"[]", CLOUDEVENTS_BATCH, "empty_batch"),
        (b"{nope", CLOUDEVENT, "malformed_json"),
    ],
)
def test_bad_cloudevent_bodies_have_stable_codes(client, body, content_type, code):
    response = client.generic("POST", URL, body, content_type=content_type)
    assert response.status_code == 400 and response.json()["error"]["code"] == code


def test_a_long_source_and_id_become_a_hash_and_floats_are_refused_downstream():
    now = timezone.now()
    raw = cloudevent_to_event(
        {"specversion": "1.0", "id": "x" * 100, "source": "s" * 100, "type": "calls", "subject": "sk_live_k",
         "data": {"quantity": 1.5}},
        received_at=now, customer_by_external_id=lambda _: None,
    )
    assert raw["event_id"].startswith("ce:") and len(raw["event_id"]) == 67
    with pytest.raises(EventRejected) as refused:
        validate_event(raw, now=now)
    assert refused.value.code == "invalid_quantity"


def test_the_schema_is_served_as_it_is_in_the_repository(client):
    client.credentials()  # public: no token
    response = client.get("/api/v1/schemas/usage-event-v1.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/schema+json"
    assert json.loads(response.content) == SCHEMA
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


_ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
_events = st.fixed_dictionaries(
    {
        "event_id": _ids,
        "metric": st.from_regex(r"[A-Za-z0-9_.:\-]{1,30}", fullmatch=True),
        "quantity": st.one_of(st.integers(0, 10**12), st.decimals(0, 10**9, places=4).map(str)),
        "timestamp": st.integers(0, 10**6).map(lambda s: (timezone.now() - timedelta(seconds=s)).isoformat()),
    },
    optional={
        "dimensions": st.dictionaries(st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8),
                                      st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
                                                st.integers(0, 1000), st.booleans()), max_size=5),
        "metadata": st.dictionaries(st.text(st.characters(min_codepoint=97, max_codepoint=122), max_size=8), st.integers(-(2**63), 2**63 - 1), max_size=3),
    },
).flatmap(lambda e: st.sampled_from([{**e, "api_key": "sk_live_x"}, {**e, "customer_id": 7}, {**e, "subscription_id": 9}]))


@hsettings(max_examples=200, deadline=None)
@given(_events)
def test_what_the_validator_accepts_the_schema_accepts(event):
    validate_event(event, now=timezone.now())
    jsonschema.validate(event, SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": 1.5}, {"quantity": "-1"}, {"quantity": -1}, {"quantity": "NaN"}, {"metric": "a b"},
        {"customer_id": 3}, {"event_id": ""}, {"dimensions": {"a": {"b": 1}}}, {"metadata": []},
        {"timestamp": 5}, {"dimensions": {f"d{n}": "x" for n in range(33)}},
    ],
    ids=str,
)
def test_what_the_schema_refuses_the_validator_refuses(change):
    event = {"event_id": "e", "api_key": "sk_live_x", "metric": "calls", "quantity": "1",
             "timestamp": timezone.now().isoformat(), **change}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    with pytest.raises(EventRejected):
        validate_event(event, now=timezone.now())

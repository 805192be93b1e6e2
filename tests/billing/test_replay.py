"""manage.py replay, each source, against the real broker and database: a dead letter replayed
after the fix is rated once and a second run changes nothing; a dry run writes nothing; an
offset range re-produced creates no duplicates; unmatched usage folded in; the API."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import orjson
import pytest
from django.core.management import call_command
from django.utils import timezone

from aforo.kafka import Record, produce_and_wait
from billing.models import RatedEvent, ReplayItem, ReplayRun, RunningTotal
from catalog.models import TenantToken
from metering.models import RawEvent, UnmatchedUsage
from tests.conftest import read_topic, wait_for
from tests.factories import AppFactory, TeamFactory, priced_setup, tenant_token

pytestmark = pytest.mark.kafka


def event_body(setup, event_id, quantity="1", **overrides) -> bytes:
    body = {"event_id": event_id, "api_key": setup.api_key, "metric": setup.metric.code, "quantity": quantity,
            "timestamp": (timezone.now() - timedelta(minutes=3)).isoformat(), **overrides}
    return orjson.dumps(body)


def dead_letter(kafka, setup, value: bytes, *, reason: str, arrived_ms: int, offset: int = 7) -> Record:
    """A dead letter as the consumer writes one (consumers.usage.steps.dead_letter_record)."""
    return Record(
        topic=kafka["dlq"], key=f"{setup.tenant.id}:{setup.api_key}".encode(), value=value,
        headers=(("tenant_id", str(setup.tenant.id).encode()), ("reason", reason.encode()),
                 ("original_topic", kafka["usage"].encode()), ("original_partition", b"0"),
                 ("original_offset", str(offset).encode()), ("original_timestamp", str(arrived_ms).encode())),
    )


def replay(*args) -> str:
    out = StringIO()
    call_command("replay", *args, stdout=out)
    return out.getvalue()


def test_a_dead_letter_replayed_after_the_fix_is_rated_once_and_a_second_replay_changes_nothing(kafka, usage_consumer):
    setup = priced_setup(rate="0.5")
    usage_consumer()
    key = f"{setup.tenant.id}:{setup.api_key}".encode()
    produce_and_wait([Record(topic=kafka["usage"], key=key, value=event_body(setup, "neg", "-1"))])  # poison, for good
    read_topic(kafka["bootstrap"], kafka["dlq"], expect=1)
    # Dead-lettered for a reason that no longer holds (the validator was fixed): valid now.
    arrived_ms = int((timezone.now() - timedelta(minutes=2)).timestamp() * 1000)
    fixed = event_body(setup, "fixed-later", "4")
    produce_and_wait([dead_letter(kafka, setup, fixed, reason="invalid_metric: metric: no longer a rule", arrived_ms=arrived_ms)])

    out = replay("--source", "dlq", "--json")
    report = orjson.loads(out[out.index("{"):])
    assert report["counts"] == {"replayed": 1, "still_invalid": 1, "already_replayed": 0}
    assert report["reasons"] == {"negative_quantity": 1}
    raw = wait_for(lambda: RawEvent.objects.filter(tenant=setup.tenant, event_id="fixed-later").first())
    assert int(raw.received_at.timestamp() * 1000) == arrived_ms  # its original arrival time, kept
    wait_for(lambda: RatedEvent.objects.filter(tenant=setup.tenant).count() == 1)
    assert RunningTotal.objects.get(subscription=setup.subscription).amount == Decimal("2")

    again = replay("--source", "dlq")
    assert "replayed 0, still invalid 1, already replayed 1" in again
    assert ReplayItem.objects.count() == 1 and ReplayRun.objects.count() == 2
    replayed = [m for m in read_topic(kafka["bootstrap"], kafka["usage"], expect=2) if m.value() == fixed]
    assert len(replayed) == 1  # the second run produced nothing
    headers = dict(replayed[0].headers())
    assert "reason" not in headers and headers["replayed_from"].startswith(kafka["dlq"].encode())


def test_a_dry_run_reports_what_would_happen_and_writes_nothing(kafka, transactional_db):
    setup = priced_setup()
    arrived_ms = int(timezone.now().timestamp() * 1000) - 1000
    produce_and_wait([
        dead_letter(kafka, setup, event_body(setup, "ok"), reason="x: y", arrived_ms=arrived_ms, offset=1),
        dead_letter(kafka, setup, b"\xff", reason="undecodable: z", arrived_ms=arrived_ms, offset=2),
    ])
    out = replay("--source", "dlq", "--dry-run")
    assert "dry run: dlq: read 2; would replay 1, still invalid 1, already replayed 0" in out
    assert "undecodable: 1" in out
    assert not ReplayRun.objects.exists() and not ReplayItem.objects.exists()


def test_another_tenants_run_neither_replays_nor_reports_these_records(kafka, transactional_db):
    setup, other = priced_setup(), priced_setup()
    produce_and_wait([dead_letter(kafka, setup, event_body(setup, "mine"), reason="x", arrived_ms=int(timezone.now().timestamp() * 1000))])
    out = replay("--source", "dlq", "--tenant", str(other.tenant.id), "--dry-run")
    assert "read 1; would replay 0, still invalid 0, already replayed 0" in out


def test_re_producing_an_already_consumed_offset_range_creates_no_duplicates(kafka, usage_consumer):
    setup = priced_setup(rate="1")
    usage_consumer()
    key = f"{setup.tenant.id}:{setup.api_key}".encode()
    produce_and_wait([Record(topic=kafka["usage"], key=key, value=event_body(setup, f"e{i}", "2")) for i in range(3)])
    wait_for(lambda: RatedEvent.objects.filter(tenant=setup.tenant).count() == 3)
    partition = RawEvent.objects.filter(tenant=setup.tenant).first().source_partition

    out = replay("--source", "offsets", "--partition", str(partition), "--from-offset", "0", "--to-offset", "1000")
    assert "replayed 3, still invalid 0, already replayed 0" in out
    # A sentinel after the replayed copies, on the same partition: once it is rated, they were consumed.
    produce_and_wait([Record(topic=kafka["usage"], key=key, value=event_body(setup, "sentinel", "1"))])
    wait_for(lambda: RatedEvent.objects.filter(tenant=setup.tenant).count() == 4)
    total = RunningTotal.objects.get(subscription=setup.subscription)
    assert (total.units, total.event_count) == (Decimal("7"), 4)
    assert "replayed 0, still invalid 0, already replayed 3" in replay(
        "--source", "offsets", "--partition", str(partition), "--from-offset", "0", "--to-offset", "2"
    )


def test_unmatched_usage_is_a_source_and_replay_unmatched_its_alias(kafka, usage_consumer):
    setup = priced_setup(rate="2")
    usage_consumer()
    key = f"{setup.tenant.id}:{setup.api_key}".encode()
    produce_and_wait([Record(topic=kafka["usage"], key=key, value=event_body(setup, "early", "3", api_key="sk_live_later"))])
    wait_for(lambda: UnmatchedUsage.objects.filter(tenant=setup.tenant).exists())
    assert "would rate 0, still unmatched 1" in replay("--source", "unmatched", "--dry-run")
    assert "unknown_api_key: 1" in replay("--source", "unmatched", "--dry-run")

    from catalog import services as catalog_services

    app = AppFactory(team=TeamFactory(customer=setup.customer, tenant=setup.tenant), tenant=setup.tenant)
    catalog_services.api_key_create(app=app, name="later", secret="sk_live_later")
    assert "would rate 1, still unmatched 0" in replay("--source", "unmatched", "--dry-run")
    assert not RatedEvent.objects.filter(tenant=setup.tenant).exists()  # the dry run rated nothing
    out = StringIO()
    call_command("replay_unmatched", "--tenant", str(setup.tenant.id), stdout=out)
    assert "rated 1, still unmatched 0" in out.getvalue()
    assert "rated 0, still unmatched 0" in replay("--source", "unmatched")
    assert RatedEvent.objects.get(tenant=setup.tenant).amount == Decimal("6")


def test_the_api_starts_a_run_and_shows_its_report_to_its_tenant_only(kafka, transactional_db, api_client):
    from rest_framework.test import APIClient

    setup, other = priced_setup(), priced_setup()
    produce_and_wait([dead_letter(kafka, setup, event_body(setup, "api"), reason="x", arrived_ms=int(timezone.now().timestamp() * 1000))])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.ADMIN)}")
    started = api_client.post("/api/v1/replays", {"source": "dlq", "dry_run": True}, format="json")
    assert started.status_code == 202, started.content
    run = started.json()
    assert run["status"] == "succeeded" and run["progress"] == 1  # eager task in tests
    assert run["report"]["counts"] == {"would_replay": 1, "still_invalid": 0, "already_replayed": 0}
    shown = api_client.get(f"/api/v1/replays/{run['id']}")
    assert shown.status_code == 200 and shown.json()["report"] == run["report"]
    assert not ReplayItem.objects.exists()

    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(other.tenant, TenantToken.Kind.ADMIN)}")
    assert stranger.get(f"/api/v1/replays/{run['id']}").status_code == 404


@pytest.mark.parametrize(
    "body, field, code",
    [
        ({}, "source", "validation_error"),
        ({"source": "everything"}, "source", "validation_error"),
        ({"source": "offsets", "from_offset": 0, "to_offset": 5}, "partition", "required"),
        ({"source": "offsets", "partition": 0, "from_offset": 9, "to_offset": 5}, "to_offset", "invalid_range"),
        ({"source": "offsets", "partition": 99, "from_offset": 0, "to_offset": 5}, "partition", "unknown_partition"),
        ({"source": "offsets", "partition": "zero", "from_offset": 0, "to_offset": 5}, "partition", "validation_error"),
        ({"source": "dlq", "partition": 0}, "partition", "not_applicable"),
        ({"source": "dlq", "limit": 0}, "limit", "validation_error"),
        ({"source": "dlq", "dry_run": "maybe"}, "dry_run", "validation_error"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(kafka, db, api_client, body, field, code):
    setup = priced_setup()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.ADMIN)}")
    response = api_client.post("/api/v1/replays", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code and field in error["fields"]
    assert not ReplayRun.objects.exists()


def test_an_offset_range_with_no_broker_answering_is_a_503_to_retry(db, api_client, settings):
    from tests.conftest import _free_port

    setup = priced_setup()
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{_free_port()}"  # nothing listens there
    settings.KAFKA_METADATA_TIMEOUT_S = 1
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant, TenantToken.Kind.ADMIN)}")
    response = api_client.post(
        "/api/v1/replays", {"source": "offsets", "partition": 0, "from_offset": 0, "to_offset": 5}, format="json"
    )
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "broker_unavailable" and response["Retry-After"] == "5"
    assert not ReplayRun.objects.exists()

"""GET /api/v1/unmatched-usage and POST /api/v1/unmatched-usage/replay: tenant-scoped, admin token."""

import pytest
from django.utils import timezone

from catalog import services
from catalog.models import TenantToken
from metering.models import RawEvent, UnmatchedUsage
from tests.conftest import read_topic
from tests.factories import priced_setup, tenant_token

pytestmark = pytest.mark.django_db


def unmatched(setup, event_id, api_key_secret):
    from metering.validation import api_key_subject

    raw = RawEvent.objects.create(
        tenant=setup.tenant, event_id=event_id, api_key_prefix=api_key_secret[:16], subject=api_key_subject(api_key_secret),
        metric=setup.metric.code, quantity=4, timestamp=timezone.now(), received_at=timezone.now(),
    )
    return UnmatchedUsage.objects.create(tenant=setup.tenant, raw_event=raw, reason="unknown_api_key")


@pytest.fixture
def admin_client(api_client):
    def make(tenant, kind=TenantToken.Kind.ADMIN):
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(tenant, kind)}")
        return api_client

    return make


def test_lists_only_the_tenants_unmatched_usage(admin_client):
    mine, theirs = priced_setup(), priced_setup()
    unmatched(mine, "m1", "sk_live_a")
    unmatched(theirs, "t1", "sk_live_b")
    body = admin_client(mine.tenant).get("/api/v1/unmatched-usage").json()
    assert [row["event_id"] for row in body["results"]] == ["m1"]
    assert body["results"][0]["reason"] == "unknown_api_key"
    assert body["results"][0]["quantity"] == "4.000000000000"


def test_replay_rates_only_the_tenants_rows_and_publishes_them(admin_client, kafka, django_capture_on_commit_callbacks):
    mine, theirs = priced_setup(rate="0.5"), priced_setup(rate="0.5")
    unmatched(mine, "m1", "sk_live_issued_later")
    unmatched(theirs, "t1", "sk_live_theirs_later")
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_create(app=mine.app, secret="sk_live_issued_later")
        services.api_key_create(app=theirs.app, secret="sk_live_theirs_later")
    response = admin_client(mine.tenant).post("/api/v1/unmatched-usage/replay")
    assert response.json() == {"rated": 1, "still_unmatched": 0}
    assert UnmatchedUsage.objects.get(raw_event__event_id="t1").resolved_at is None
    [record] = read_topic(kafka["bootstrap"], kafka["rated"], expect=1)
    assert b'"amount":"2"' in record.value()


def test_ingest_tokens_cannot_read_unmatched_usage(admin_client):
    setup = priced_setup()
    response = admin_client(setup.tenant, TenantToken.Kind.INGEST).get("/api/v1/unmatched-usage")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "wrong_credential_kind")

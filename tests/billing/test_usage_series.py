"""Hourly usage rollups kept by the rating batch, and GET /api/v1/customers/{id}/usage/series read
from them (real PostgreSQL): exact per hour and per day against the rated events, every bucket
present, blocked units shown, verify_ledger catching a rollup that disagrees, and every bad
query a 400 or 404 with a stable code."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone as dj_timezone

from billing.models import RatedEvent, UsageRollup
from billing.rollups import hour_of
from billing.verification import ledger_verify
from tests.factories import priced_setup, rated_event, tenant_token

pytestmark = pytest.mark.django_db

BLOCK = {"model": "per_unit", "rate": "0.5", "limit": {"units": "10", "overage": "block"}}


def series(api_client, setup, **params):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    return api_client.get(f"/api/v1/customers/{setup.customer.pk}/usage/series", params)


def this_hour() -> datetime:
    return hour_of(dj_timezone.now())


def test_rollups_sum_the_rated_events_of_each_hour():
    setup = priced_setup(config=BLOCK)
    now = this_hour()
    earlier = now - timedelta(hours=2)
    rated_event(setup, "a", "4", at=earlier + timedelta(minutes=5))
    rated_event(setup, "b", "3", at=earlier + timedelta(minutes=59, seconds=59))
    rated_event(setup, "c", "6", at=now + timedelta(seconds=1))  # 13: 3 past the limit, blocked
    rows = {r.hour: r for r in UsageRollup.objects.filter(subscription=setup.subscription)}
    assert set(rows) == {earlier, now}
    assert (rows[earlier].units, rows[earlier].amount, rows[earlier].event_count) == (Decimal(7), Decimal("3.5"), 2)
    assert (rows[now].units, rows[now].amount, rows[now].blocked_units) == (Decimal(6), Decimal("1.5"), Decimal(3))
    assert sum(r.amount for r in rows.values()) == sum(r.amount for r in RatedEvent.objects.filter(subscription=setup.subscription))
    assert ledger_verify() == []


def test_verify_ledger_names_a_rollup_that_disagrees_with_its_events():
    setup = priced_setup()
    rated_event(setup, "a", "2")
    UsageRollup.objects.filter(subscription=setup.subscription).update(units=Decimal(3))
    [problem] = [p for p in ledger_verify() if p.startswith("usage rollup")]
    assert f"subscription {setup.subscription.pk}" in problem and "units 3" in problem and "units 2" in problem
    UsageRollup.objects.filter(subscription=setup.subscription).delete()
    assert any(p.startswith("usage rollup") and "units None" in p for p in ledger_verify())


def test_an_hour_is_a_utc_hour_whatever_the_offset():
    kolkata = datetime(2026, 12, 1, 10, 45, tzinfo=ZoneInfo("Asia/Kolkata"))  # 05:15 UTC
    assert hour_of(kolkata) == datetime(2026, 12, 1, 5, tzinfo=timezone.utc)


def test_the_hourly_series_has_every_bucket_and_the_exact_sums(api_client):
    setup = priced_setup(config=BLOCK)
    now = this_hour()
    rated_event(setup, "a", "4", at=now - timedelta(hours=2, minutes=-5))
    rated_event(setup, "b", "9", at=now + timedelta(seconds=1))  # 13: 3 blocked
    body = series(api_client, setup, metric=setup.metric.code, granularity="hour",
                  **{"from": (now - timedelta(hours=3)).isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}).json()
    assert (body["granularity"], body["metric"], body["from"], len(body["points"])) == (
        "hour", setup.metric.code, (now - timedelta(hours=3)).isoformat().replace("+00:00", "Z"), 4
    )
    assert [(p["units"], p["amount"], p["blocked_units"], p["events"]) for p in body["points"]] == [
        ("0", "0", "0", 0), ("4", "2", "0", 1), ("0", "0", "0", 0), ("9", "3", "3", 1),
    ]


def test_the_daily_series_sums_the_days_hours(api_client):
    setup = priced_setup()
    now = this_hour()
    day = now.replace(hour=0)
    rated_event(setup, "a", "1000", at=max(day + timedelta(minutes=1), now - timedelta(hours=23)))
    rated_event(setup, "b", "500", at=now + timedelta(seconds=2))
    body = series(api_client, setup, metric=setup.metric.code).json()  # days, the last 31 up to now
    assert body["granularity"] == "day" and len(body["points"]) == 31  # to is rounded up: today is whole
    assert body["points"][-1]["start"] == day.isoformat().replace("+00:00", "Z")
    total = sum(Decimal(p["units"]) for p in body["points"])
    assert total == Decimal(1500) and sum(p["events"] for p in body["points"]) == 2
    assert sum(Decimal(p["amount"]) for p in body["points"]) == Decimal("4.5")  # 1,500 × 0.003


def test_a_customer_only_sees_its_own_usage(api_client):
    mine, theirs = priced_setup(), priced_setup()
    rated_event(theirs, "a", "5")
    response = series(api_client, mine, metric=theirs.metric.code)
    assert response.status_code == 404 and response.json()["error"]["field"] == "metric"
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(mine.tenant)}")
    other = api_client.get(f"/api/v1/customers/{theirs.customer.pk}/usage/series", {"metric": mine.metric.code})
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


BAD = [
    pytest.param({}, 400, "validation_error", "metric", id="no-metric"),
    pytest.param({"metric": "nope"}, 404, "not_found", "metric", id="unknown-metric"),
    pytest.param({"metric": "x" * 500}, 404, "not_found", "metric", id="long-metric"),
    pytest.param({"granularity": "week"}, 400, "validation_error", "granularity", id="week"),
    pytest.param({"from": "yesterday"}, 400, "validation_error", "from", id="from-words"),
    pytest.param({"to": "2026-12-01T00:00:00"}, 400, "validation_error", "to", id="to-naive"),
    pytest.param({"from": "0001-01-01T00:00:00+14:00"}, 400, "validation_error", "from", id="from-unrepresentable"),
    pytest.param({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, 400, "validation_error", "from", id="reversed"),
    pytest.param({"granularity": "hour", "from": "2026-01-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, 400,
                 "range_too_large", "from", id="too-many-hours"),
    pytest.param({"from": "١٢٣"}, 400, "validation_error", "from", id="non-ascii"),
]


@pytest.mark.parametrize(("params", "status", "code", "field"), BAD)
def test_bad_queries_are_refused_with_a_stable_code(api_client, params, status, code, field):
    setup = priced_setup()
    if params.get("metric", "") == "" and "metric" not in params and field != "metric":
        params = {"metric": setup.metric.code, **params}
    response = series(api_client, setup, **params)
    assert response.status_code == status, response.content
    assert (response.json()["error"]["code"], response.json()["error"].get("field")) == (code, field)

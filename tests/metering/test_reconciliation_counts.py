"""Reconciliation counts: the ingest counts' flush (Redis → IngestCount) loses nothing and counts
nothing twice across crashes; the consumer's tally and the report's plan (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django_redis import get_redis_connection

from metering.models import IngestCount
from metering.reconciliation import counts
from metering.reconciliation.counts import (
    DUPLICATE, RATED, REPLAYED, UNMATCHED, Received, consumed_counts_plan, ingest_counts_add, ingest_counts_flush,
)
from metering.reconciliation.report import Loaded, PeriodInvalid, period_parse, reconciliation_plan
from metering.reconciliation.topic import TopicRecord, TopicScan
from tests.factories import TenantFactory

UTC = timezone.utc
NOW = datetime(2026, 11, 24, 10, 0, 30, tzinfo=UTC)


def _accept(tenant_id: int, subjects: list[str], now: datetime) -> None:
    pipe = get_redis_connection("default").pipeline(transaction=False)
    ingest_counts_add(pipe, tenant_id=tenant_id, subjects=subjects, now=now)
    pipe.execute()


def _accepted(tenant_id: int) -> dict[tuple[str, datetime], int]:
    totals: dict[tuple[str, datetime], int] = {}
    for row in IngestCount.objects.filter(tenant_id=tenant_id):
        totals[(row.subject, row.minute)] = totals.get((row.subject, row.minute), 0) + row.accepted
    return totals


@pytest.fixture
def clean_counts():
    redis = get_redis_connection("default")
    for key in redis.scan_iter(f"{counts._prefix()}:*"):
        redis.delete(key)


@pytest.mark.django_db(transaction=True)
def test_the_flush_moves_closed_minutes_once_and_leaves_the_open_one(clean_counts):
    tenant = TenantFactory()
    _accept(tenant.id, ["key:a", "key:a", "customer:7"], NOW - timedelta(minutes=5))
    _accept(tenant.id, ["key:a"], NOW)  # the current minute: not flushed yet
    assert ingest_counts_flush(now=NOW) == 2
    five_ago = (NOW - timedelta(minutes=5)).replace(second=0)
    assert _accepted(tenant.id) == {("key:a", five_ago): 2, ("customer:7", five_ago): 1}
    assert ingest_counts_flush(now=NOW) == 0  # nothing left to move: nothing counted twice
    assert ingest_counts_flush(now=NOW, grace_s=0) == 1
    assert _accepted(tenant.id)[("key:a", NOW.replace(second=0))] == 1


@pytest.mark.django_db(transaction=True)
def test_a_crash_between_read_and_write_loses_nothing(clean_counts, monkeypatch):
    tenant = TenantFactory()
    _accept(tenant.id, ["key:a"] * 3, NOW - timedelta(minutes=5))

    def crash(**_):
        raise RuntimeError("the flush died after reading")

    monkeypatch.setattr(counts, "ingest_counts_write", crash)
    with pytest.raises(RuntimeError):
        ingest_counts_flush(now=NOW)
    assert not IngestCount.objects.filter(tenant_id=tenant.id).exists()
    # Meanwhile more events are accepted in that same (closed) minute: a new hash.
    _accept(tenant.id, ["key:a"], NOW - timedelta(minutes=5))
    monkeypatch.undo()
    ingest_counts_flush(now=NOW)
    assert sum(_accepted(tenant.id).values()) == 4


@pytest.mark.django_db(transaction=True)
def test_a_crash_between_write_and_forget_counts_nothing_twice(clean_counts, monkeypatch):
    tenant = TenantFactory()
    _accept(tenant.id, ["key:a"] * 2, NOW - timedelta(minutes=5))

    def crash(**_):
        raise RuntimeError("the flush died after its commit")

    monkeypatch.setattr(counts, "ingest_counts_forget", crash)
    with pytest.raises(RuntimeError):
        ingest_counts_flush(now=NOW)
    assert sum(_accepted(tenant.id).values()) == 2  # committed, but the key is still in Redis
    monkeypatch.undo()
    ingest_counts_flush(now=NOW)  # applies the same key again: every row conflicts
    assert sum(_accepted(tenant.id).values()) == 2
    redis = get_redis_connection("default")
    assert not redis.smembers(counts._flushing_set())


def test_the_consumer_tally_counts_each_outcome_in_its_minute():
    at = NOW
    tallies = consumed_counts_plan(
        received=[
            Received(1, "key:a", at, RATED, 10), Received(1, "key:a", at, UNMATCHED, 12), Received(1, "key:a", at, DUPLICATE),
            Received(1, "key:a", at + timedelta(minutes=1), RATED, 11), Received(1, "key:a", at, REPLAYED),
        ]
    )
    first = tallies[(1, NOW.replace(second=0), "key:a")]
    assert (first.new, first.rated, first.unmatched, first.duplicates, first.replayed) == (2, 1, 1, 1, 1)
    assert (first.raw_id_min, first.raw_id_max) == (10, 12)
    assert tallies[(1, NOW.replace(minute=1, second=0), "key:a")].new == 1


def test_the_plan_names_missing_in_flight_and_unaccepted_events():
    minute = NOW.replace(second=0)
    cell = ("key:a", minute)
    loaded = Loaded(accepted={cell: 4}, consumed={cell: (2, 0, 2, 0, 0)}, persisted={cell: 1}, dead_letters={})
    stamp = int(minute.timestamp() * 1000) + 5
    scan = TopicScan(
        records=[
            TopicRecord("kept", "key:a", 0, 1, stamp, True), TopicRecord("deleted", "key:a", 0, 2, stamp, True),
            TopicRecord("queued", "key:a", 0, 9, stamp, True), TopicRecord("direct", "key:a", 1, 0, stamp, False),
            TopicRecord("lost-later", "key:a", 0, 3, stamp, True),
        ],
        committed={0: 5, 1: 1},
    )
    [row] = reconciliation_plan(loaded=loaded, scan=scan, in_ledger={"kept", "direct"}, in_dlq=set(), customers={})
    assert (row.missing, row.in_flight_ids, row.not_accepted) == (["deleted", "lost-later"], ["queued"], ["direct"])
    assert row.counts.in_flight == 1
    assert row.counts.difference == 4 - (1 + 0 + 0 + 1)


@pytest.mark.parametrize(
    "text, start, end",
    [
        ("2026-11", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-31", datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("", datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)),
        ("2026-11-24T10:00:00Z/2026-11-24T12:00:00+01:00", datetime(2026, 11, 24, 10, tzinfo=UTC), datetime(2026, 11, 24, 11, tzinfo=UTC)),
    ],
)
def test_periods(text, start, end):
    period = period_parse(text, now=NOW)
    assert (period.start, period.end) == (start, end)


@pytest.mark.parametrize("text", ["2026-13", "2026-11-24T10:00/2026-11-24T11:00", "x/y", "2026-11-02T00:00Z/2026-11-01T00:00Z", "2026-01-01T00:00Z/2026-06-01T00:00Z", "1" * 400, "9999-12-31", "0001-01-01T00:00Z/0001-01-02T00:00Z"])
def test_bad_periods_are_refused(text):
    with pytest.raises(PeriodInvalid):
        period_parse(text, now=NOW)

"""The replay planner (pure): headers restored to the producer's own, the original arrival time,
one decision per record of the run's tenant — and its checks agree with the usage consumer's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from billing.replay.plan import (
    ALREADY_REPLAYED, REPLAY, STILL_INVALID, SourceRecord, dead_letter_timestamp_ms, original_headers, replay_plan,
)

NOW_MS = int(datetime(2026, 11, 24, 10, tzinfo=timezone.utc).timestamp() * 1000)


def body(event_id="e1", quantity="1", **overrides) -> bytes:
    stamp = datetime.fromtimestamp(NOW_MS / 1000, timezone.utc) - timedelta(minutes=1)
    return orjson.dumps({"event_id": event_id, "api_key": "sk_live_x", "metric": "api_calls", "quantity": quantity,
                         "timestamp": stamp.isoformat(), **overrides})


def record(value: bytes, *, key=b"7:sk_live_x", headers=(), offset=0) -> SourceRecord:
    return SourceRecord("dlq", 0, offset, key, value, tuple(headers), NOW_MS)


def test_the_headers_the_dlq_and_a_replay_appended_are_stripped_from_the_end_only():
    own = (("tenant_id", b"7"), ("reason", b"a producer's own header"))
    dlq = (("reason", b"x"), ("original_topic", b"t"), ("original_partition", b"0"), ("original_offset", b"1"))
    replayed = (("replay_run", b"3"), ("replayed_from", b"t/0/1"))
    assert original_headers(own + dlq) == own
    assert original_headers(own + dlq + (("original_timestamp", b"5"),)) == own
    assert original_headers(own + dlq + replayed + dlq) == own  # dead-lettered again after a replay
    assert original_headers(own) == own


def test_the_original_arrival_time_comes_from_the_header_when_there_is_one():
    assert dead_letter_timestamp_ms((("original_timestamp", b"1700000000000"),), 5) == 1700000000000
    assert dead_letter_timestamp_ms((("original_timestamp", b"junk"),), 5) == 5
    assert dead_letter_timestamp_ms((), 5) == 5


def test_each_record_gets_one_decision_and_other_tenants_records_none():
    records = [
        record(body("ok"), offset=0),
        record(body("neg", "-1"), offset=1),
        record(body("done"), offset=2),
        record(body("ghost"), key=b"8:sk", offset=3),  # tenant 8 does not exist
        record(body("other"), key=b"9:sk", offset=4),
        record(body("v2"), headers=(("schema_version", b"2"),), offset=5),
    ]
    decisions = replay_plan(records=records, replayed=frozenset({("dlq", 0, 2)}), tenant_id=None, known_tenants=frozenset({7, 9}))
    outcomes = [(d.record.offset, d.outcome, d.reason.split(":")[0]) for d in decisions]
    assert outcomes == [
        (0, REPLAY, ""), (1, STILL_INVALID, "negative_quantity"), (2, ALREADY_REPLAYED, ""),
        (3, STILL_INVALID, "unknown_tenant"), (4, REPLAY, ""), (5, STILL_INVALID, "unsupported_schema_version"),
    ]
    assert decisions[0].event_id == "ok" and decisions[0].tenant_id == 7
    mine = replay_plan(records=records, replayed=frozenset(), tenant_id=9, known_tenants=frozenset({7, 9}))
    assert [d.record.offset for d in mine] == [4]


class _Message:
    """A record as librdkafka hands it to the consumer (only what RecordStep.decode reads)."""

    def __init__(self, source: SourceRecord):
        self.source = source

    def key(self):
        return self.source.key

    def value(self):
        return self.source.value

    def headers(self):
        return list(self.source.headers) or None

    def timestamp(self):
        return (1, self.source.timestamp_ms)

    def partition(self):
        return self.source.partition

    def offset(self):
        return self.source.offset


class _Tenants:
    def exists(self, tenant_id: int) -> bool:
        return tenant_id == 7


@pytest.mark.parametrize(
    "source",
    [
        record(body()), record(body("n", "-1")), record(b"\xff"), record(b'{"n": 1}'), record(body(), key=b"no-tenant"),
        record(body(), key=b"8:k"), record(body(), headers=(("schema_version", b"9"),)),
        record(body(timestamp="2020-01-01T00:00:00Z")), record(body(), key=None, headers=(("tenant_id", b"7"),)),
    ],
)
def test_the_planner_refuses_exactly_what_the_consumer_dead_letters_with_the_same_reason(source):
    from consumers.usage.steps import RecordStep

    step = RecordStep(cache=object(), tenants=_Tenants())
    events, poison = step.decode([_Message(source)])
    [decision] = replay_plan(records=[source], replayed=frozenset(), tenant_id=None, known_tenants=frozenset({7}))
    if events:
        assert decision.outcome == REPLAY and decision.event_id == events[0].event.event_id
    else:
        assert decision.outcome == STILL_INVALID and decision.reason == poison[0][1]

"""The consumer's fast decoder (metering.wire) against the reference path (orjson +
validate_event): the same event, or the same DLQ reason, for every input — hypothesis drives
both with event-shaped payloads full of edge values, and raw byte strings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering import wire
from metering.validation import EventRejected, validate_event

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "a b", "x\x00y", "é", "\u00a0", "\ud800", "\\", '"q"', "a" * 129, "a" * 257, "k" * 65]),
)
quantities = st.one_of(
    st.sampled_from(["1", "0", "2.50", "1e3", "-1", "1_000", "１２", " 1", "NaN", "0.0000000000001", "1" * 21, ".5"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)
timestamps = st.one_of(
    st.sampled_from([
        "2026-11-24T11:59:00Z", "2026-11-24T11:59:00+02:00", "2026-11-24T11:59:00", "2026-11-24 11:59:00Z",
        "2026-11-24T11:59:00.1234567Z", "2026-11-24T12:10:00Z", "2026-08-01T00:00:00Z", "2026-11-22T00:00:00Z",
        "0001-01-01T00:00:00+14:00", "not a time", "2026-11-24T11:59:00z",
    ]),
    st.datetimes(timezones=st.just(timezone.utc), min_value=datetime(2026, 8, 1), max_value=datetime(2026, 11, 25)).map(
        lambda d: d.isoformat()
    ),
    st.integers(),
)
json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False), texts
)
metadata = st.one_of(
    st.none(),
    st.dictionaries(texts, st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=12), max_size=4),
    st.sampled_from([[], "x", 1]),
)
dimensions = st.one_of(st.none(), st.dictionaries(texts, st.one_of(texts, st.integers(), st.booleans(), st.none()), max_size=3), st.just([]))


@st.composite
def payloads(draw):
    body = {
        "event_id": draw(st.one_of(st.text(min_size=1, max_size=10), texts, st.integers())),
        "metric": draw(st.one_of(st.sampled_from(["api_calls", "llm.tokens:in", "bad metric", "é"]), texts)),
        "quantity": draw(quantities),
        "timestamp": draw(timestamps),
        "dimensions": draw(dimensions),
        "metadata": draw(metadata),
    }
    subject = draw(st.sampled_from(["api_key", "customer_id", "subscription_id", "both", "none"]))
    if subject in ("api_key", "both"):
        body["api_key"] = draw(st.one_of(st.just("sk_live_abc"), texts))
    if subject in ("customer_id", "subscription_id", "both"):
        body["customer_id" if subject != "subscription_id" else "subscription_id"] = draw(
            st.one_of(st.integers(min_value=-1, max_value=2**64), st.booleans(), st.just("7"))
        )
    for name in draw(st.sets(st.sampled_from(sorted(body)), max_size=2)):
        if draw(st.booleans()):
            del body[name]
        else:
            body[name] = None
    return body


def reference(value: bytes):
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        return None, f"undecodable: {error}"
    try:
        return validate_event(data, now=NOW), None
    except EventRejected as rejection:
        return None, f"{rejection.code}: {rejection.field}: {rejection.message}"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads())
def test_the_fast_decoder_agrees_with_validate_event_on_every_payload(body):
    try:
        value = orjson.dumps(body)
    except TypeError:  # a lone surrogate orjson cannot write: nothing a producer could send as JSON
        return
    assert wire.decode_event(value, now=NOW) == reference(value)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | st.sampled_from([
    b'{"event_id":"e","api_key":"k","metric":"m","quantity":"1","timestamp":"2026-11-24T11:59:00Z","metadata":{"a":"\\u0000"}}',
    b'{"event_id":"e","api_key":"k","metric":"m","quantity":"1","timestamp":"2026-11-24T11:59:00Z","metadata":{"a":1e999}}',
    b'{"event_id":"e","api_key":"k","metric":"m","quantity":"1","timestamp":"2026-11-24T11:59:00Z","metadata":{"a":"\\ud800"}}',
    b'{"event_id":"e","api_key":"k","metric":"m","quantity":"1","timestamp":"2026-11-24T11:59:00Z","metadata":{"a":123456789012345678901}}',
    b'{"event_id":"e","api_key":"k","metric":"m","quantity":"1","timestamp":"2026-11-24T11:59:00Z","metadata":{"a":"\xc2\x85"}}',
    b'{"event_id":"e","api_key":"k","metric":"m","quantity":"1","timestamp":"2026-11-24T11:59:00Z","metadata":null}',
    b'{"event_id":"e","api_key":"k","metric":"m","quantity":"1","timestamp":"2026-11-24T11:59:00Z","metadata":{"a":[[[[[[[[[1]]]]]]]]]}}',
    b'{"event_id":"e","api_key":"k","metric":"m","quantity":"1","timestamp":"2026-11-24T11:59:00Z","dimensions":{"r":"eu","r":"us"}}',
    b'{"event_id":"e","api_key":"k","metric":"m","quantity":"1","timestamp":"2026-11-24T11:59:00Z","extra":{"x":1}}',
    b"\xff\xfe",
]))
def test_the_fast_decoder_agrees_on_raw_bytes(value):
    assert wire.decode_event(value, now=NOW) == reference(value)


@pytest.mark.parametrize("metadata", [b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000])
def test_nesting_deep_enough_to_exhaust_a_stack_is_a_reason_not_an_exception(metadata):
    """msgspec gives up on such nesting with RecursionError: the reference path names it."""
    value = b'{"event_id":"e","api_key":"k","metric":"m","quantity":"1","timestamp":"2026-11-24T11:59:00Z","metadata":' + metadata + b"}"
    event, problem = wire.decode_event(value, now=NOW)
    assert event is None and problem.startswith("undecodable: ")
    assert (event, problem) == reference(value)


def test_an_ordinary_event_takes_the_fast_path(monkeypatch):
    """The reference path is not reached for what the ingest API writes (else the fast path
    would be a no-op that the agreement tests above cannot see)."""
    monkeypatch.setattr(wire, "_reference", lambda *args: (_ for _ in ()).throw(AssertionError("reference path used")))
    value = orjson.dumps({
        "event_id": "req-1", "api_key": "sk_live_abc", "metric": "api_calls", "quantity": "2.5",
        "timestamp": (NOW - timedelta(seconds=3)).isoformat().replace("+00:00", "Z"),
        "dimensions": {"region": "eu"}, "metadata": {"gateway": "kong", "latency_ms": 12, "ok": True, "tags": ["a", None]},
    })
    event, problem = wire.decode_event(value, now=NOW)
    assert problem is None
    assert (event.event_id, event.quantity, event.dimensions, event.metadata["latency_ms"]) == ("req-1", Decimal("2.5"), {"region": "eu"}, 12)
    assert event.timestamp == NOW - timedelta(seconds=3) and event.timestamp.tzinfo is not None and not event.is_late


def test_metadata_seen_before_is_looked_up_and_the_lookup_stays_bounded(monkeypatch):
    """An accepted metadata text is parsed once: the next event carrying the same bytes gets the
    same value without the checks; the table of known texts never outgrows its bound, and a text
    the fast checks refuse is never remembered (the reference path keeps deciding it)."""
    monkeypatch.setattr(wire, "_METADATA_KNOWN", {})
    monkeypatch.setattr(wire, "_METADATA_KNOWN_MAX", 3)
    text = b'{"gateway":"kong","route":"/v1/chat"}'
    first = wire._metadata(wire.msgspec.Raw(text))
    assert first == {"gateway": "kong", "route": "/v1/chat"} and wire._METADATA_KNOWN == {text: first}
    assert wire._metadata(wire.msgspec.Raw(text)) is first
    assert wire._metadata(wire.msgspec.Raw(b'{"note":"a\\u0000b"}')) is None
    assert len(wire._METADATA_KNOWN) == 1
    for n in range(10):
        assert wire._metadata(wire.msgspec.Raw(b'{"n":%d}' % n)) == {"n": n}
        assert len(wire._METADATA_KNOWN) <= 3

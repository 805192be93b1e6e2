"""Event contract v1: every rule, with the stable code and the field it names."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from metering.validation import EventRejected, validate_event

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def event(**overrides):
    base = {
        "event_id": "evt-1",
        "api_key": "sk_live_abc",
        "metric": "api_calls",
        "quantity": "1",
        "timestamp": "2026-11-24T11:59:00Z",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def rejected(raw) -> EventRejected:
    with pytest.raises(EventRejected) as info:
        validate_event(raw, now=NOW)
    return info.value


def test_valid_event_is_normalised():
    parsed = validate_event(
        event(quantity="2.50", dimensions={"region": "eu", "tier": 2, "cached": True}, metadata={"gateway": "kong"}), now=NOW
    )
    assert parsed.quantity == Decimal("2.50")
    assert parsed.timestamp == datetime(2026, 11, 24, 11, 59, tzinfo=timezone.utc)
    assert parsed.dimensions == {"region": "eu", "tier": "2", "cached": "true"}
    assert parsed.metadata == {"gateway": "kong"}
    assert parsed.is_late is False
    assert parsed.to_wire()["quantity"] == "2.50"
    assert parsed.to_wire()["timestamp"] == "2026-11-24T11:59:00Z"


@pytest.mark.parametrize("field", ["event_id", "api_key", "metric", "quantity", "timestamp"])
def test_each_required_field(field):
    error = rejected(event(**{field: ...}))
    assert (error.code, error.field) == ("missing_field", field)


@pytest.mark.parametrize(
    "quantity, code",
    [
        ("-1", "negative_quantity"),
        ("NaN", "invalid_quantity"),
        ("Infinity", "invalid_quantity"),
        ("-Infinity", "invalid_quantity"),
        ("abc", "invalid_quantity"),
        (1.5, "invalid_quantity"),
        (True, "invalid_quantity"),
        ([1], "invalid_quantity"),
        ("1e20", "invalid_quantity"),
        ("0.0000000000001", "invalid_quantity"),
    ],
)
def test_bad_quantities(quantity, code):
    error = rejected(event(quantity=quantity))
    assert (error.code, error.field) == (code, "quantity")


@pytest.mark.parametrize(
    "quantity, expected",
    [("0", "0"), ("-0", "0"), (7, "7"), ("1e3", "1000"), ("0.000000000001", "0.000000000001"), ("1.5000000000000", "1.5")],
)
def test_good_quantities(quantity, expected):
    assert validate_event(event(quantity=quantity), now=NOW).quantity == Decimal(expected)


def test_timestamp_window_and_late_flag():
    assert validate_event(event(timestamp=(NOW + timedelta(minutes=5)).isoformat()), now=NOW)
    assert rejected(event(timestamp=(NOW + timedelta(minutes=5, seconds=1)).isoformat())).code == "timestamp_in_future"
    assert validate_event(event(timestamp=(NOW - timedelta(days=90)).isoformat()), now=NOW).is_late is True
    assert rejected(event(timestamp=(NOW - timedelta(days=90, seconds=1)).isoformat())).code == "timestamp_too_old"
    assert validate_event(event(timestamp=(NOW - timedelta(hours=24)).isoformat()), now=NOW).is_late is False
    assert validate_event(event(timestamp=(NOW - timedelta(hours=24, seconds=1)).isoformat()), now=NOW).is_late is True


@pytest.mark.parametrize("timestamp", ["yesterday", "2026-11-24T11:00:00", 1732449600, "2026-13-01T00:00:00Z"])
def test_bad_timestamps(timestamp):
    error = rejected(event(timestamp=timestamp))
    assert (error.code, error.field) == ("invalid_timestamp", "timestamp")


def test_offset_timestamps_are_converted_to_utc():
    parsed = validate_event(event(timestamp="2026-11-24T13:30:00+02:00"), now=NOW)
    assert parsed.timestamp == datetime(2026, 11, 24, 11, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "overrides, code, field",
    [
        ({"event_id": ""}, "invalid_event_id", "event_id"),
        ({"event_id": "x" * 129}, "invalid_event_id", "event_id"),
        ({"event_id": 12}, "invalid_event_id", "event_id"),
        ({"api_key": "   "}, "invalid_api_key", "api_key"),
        ({"metric": "api calls"}, "invalid_metric", "metric"),
        ({"dimensions": ["eu"]}, "invalid_dimensions", "dimensions"),
        ({"dimensions": {"region": {"nested": 1}}}, "invalid_dimensions", "dimensions.region"),
        ({"dimensions": {f"d{i}": "x" for i in range(33)}}, "invalid_dimensions", "dimensions"),
        ({"metadata": "kong"}, "invalid_metadata", "metadata"),
        ({"metadata": {"blob": "x" * 9000}}, "invalid_metadata", "metadata"),
    ],
)
def test_field_rules(overrides, code, field):
    error = rejected(event(**overrides))
    assert (error.code, error.field) == (code, field)


def test_not_an_object():
    assert rejected(["not", "an", "event"]).code == "not_an_object"


@pytest.mark.parametrize(
    "subject, expected_subject, routing",
    [
        ({"customer_id": 12}, "customer:12", "customer:12"),
        ({"subscription_id": 7}, "subscription:7", "subscription:7"),
    ],
)
def test_customer_or_subscription_may_stand_for_the_api_key(subject, expected_subject, routing):
    parsed = validate_event(event(api_key=..., **subject), now=NOW)
    assert (parsed.api_key, parsed.subject, parsed.routing_key, parsed.key_prefix) == (None, expected_subject, routing, "")
    assert parsed.to_wire()[next(iter(subject))] == int(next(iter(subject.values())))
    assert "api_key" not in parsed.to_wire()


def test_an_api_key_subject_is_its_hash_never_the_key():
    parsed = validate_event(event(api_key="sk_live_secret"), now=NOW)
    assert parsed.subject.startswith("key:") and "sk_live_secret" not in parsed.subject and len(parsed.subject) == 68
    assert parsed.routing_key == "sk_live_secret" and parsed.key_prefix == "sk_live_secret"


@pytest.mark.parametrize(
    "overrides, code, field",
    [
        ({"customer_id": 3}, "ambiguous_subject", "customer_id"),
        ({"api_key": ..., "customer_id": 3, "subscription_id": 4}, "ambiguous_subject", "subscription_id"),
        ({"api_key": ..., "customer_id": 0}, "invalid_customer_id", "customer_id"),
        ({"api_key": ..., "customer_id": -4}, "invalid_customer_id", "customer_id"),
        ({"api_key": ..., "customer_id": "acme"}, "invalid_customer_id", "customer_id"),
        ({"api_key": ..., "customer_id": "12"}, "invalid_customer_id", "customer_id"),  # ids are JSON integers
        ({"api_key": ..., "subscription_id": 2**63}, "invalid_subscription_id", "subscription_id"),
        ({"api_key": ..., "customer_id": True}, "invalid_customer_id", "customer_id"),
        ({"api_key": ..., "subscription_id": 1.0}, "invalid_subscription_id", "subscription_id"),
    ],
)
def test_subject_rules(overrides, code, field):
    error = rejected(event(**overrides))
    assert (error.code, error.field) == (code, field)


# --- what the ledger cannot store is refused here, with the field at fault ---------------------


def _nested(depth: int) -> dict:
    node: dict = {}
    root = node
    for _ in range(depth):
        node["n"] = {}
        node = node["n"]
    return root


@pytest.mark.parametrize(
    "overrides, code, field",
    [
        ({"event_id": "evt\x00nul"}, "invalid_event_id", "event_id"),
        ({"event_id": "evt\ud800"}, "invalid_event_id", "event_id"),  # a lone surrogate: not encodable as UTF-8
        ({"event_id": "line\nbreak"}, "invalid_event_id", "event_id"),
        ({"event_id": "del\x7f"}, "invalid_event_id", "event_id"),
        ({"api_key": "sk_live_\x00"}, "invalid_api_key", "api_key"),
        ({"metric": "api_calls\n"}, "invalid_metric", "metric"),  # "$" would have matched before the newline
        ({"dimensions": {"region": "eu\x00"}}, "invalid_dimensions", "dimensions.region"),
        ({"dimensions": {"reg\x00ion": "eu"}}, "invalid_dimensions", "dimensions"),
        ({"dimensions": {"region": "\udfff"}}, "invalid_dimensions", "dimensions.region"),
        ({"dimensions": {"n": 2**64}}, "invalid_dimensions", "dimensions.n"),
        ({"dimensions": {"n": 10**5000}}, "invalid_dimensions", "dimensions.n"),  # str() would refuse > 4,300 digits
        ({"metadata": {"route": "/v1\x00"}}, "invalid_metadata", "metadata.route"),
        ({"metadata": {"a": {"b": ["ok", "bad\x00"]}}}, "invalid_metadata", "metadata.a.b[1]"),
        ({"metadata": {"ke\x00y": 1}}, "invalid_metadata", "metadata"),
        ({"metadata": {"a": {"ke\x00y": 1}}}, "invalid_metadata", "metadata.a"),
        ({"metadata": {"s": "\ud83d"}}, "invalid_metadata", "metadata.s"),
        ({"metadata": {"big": 2**64}}, "invalid_metadata", "metadata.big"),
        ({"metadata": {"big": -(2**63) - 1}}, "invalid_metadata", "metadata.big"),
        ({"metadata": {"inf": float("inf")}}, "invalid_metadata", "metadata.inf"),
        ({"metadata": {"nan": float("nan")}}, "invalid_metadata", "metadata.nan"),
        ({"metadata": {"odd": {1, 2}}}, "invalid_metadata", "metadata.odd"),
        ({"metadata": _nested(9)}, "invalid_metadata", "metadata" + ".n" * 8),
        ({"metadata": _nested(10_000)}, "invalid_metadata", "metadata" + ".n" * 8),  # no recursion, no stack overflow
        ({"metadata": {"list": list(range(1025))}}, "invalid_metadata", "metadata"),
    ],
)
def test_what_the_ledger_cannot_store_is_refused_with_its_field(overrides, code, field):
    error = rejected(event(**overrides))
    assert (error.code, error.field) == (code, field), error.message


def test_metadata_keeps_tabs_and_newlines_in_values_and_eight_levels():
    metadata = {"user_agent": "curl/8\tline\r\n", "deep": _nested(7), "n": 2**64 - 1, "f": 1.5, "none": None}
    assert validate_event(event(metadata=metadata), now=NOW).metadata == metadata


@pytest.mark.parametrize(
    "quantity",
    ["１２", "1_000", " 1", "1 ", "1\n", "+1", "0x10", "1e", "١٢", "--1", "1..2", "", "1e99999", 2**64, -(2**63) - 1],
)
def test_quantities_are_ascii_decimals(quantity):
    error = rejected(event(quantity=quantity))
    assert (error.code, error.field) == ("invalid_quantity", "quantity"), error.message


@pytest.mark.parametrize(
    "timestamp, code",
    [
        ("0001-01-01T00:00:00+14:00", "invalid_timestamp"),  # no UTC instant: astimezone overflows
        ("9999-12-31T23:59:59-14:00", "invalid_timestamp"),
        ("0001-01-01T00:00:00Z", "timestamp_too_old"),
        ("9999-12-31T23:59:59Z", "timestamp_in_future"),
        ("２０２６-11-24T11:59:00Z", "invalid_timestamp"),
        ("2026-11-24T11:59:00Z" + " " * 100, "invalid_timestamp"),
        ("2026-11-24T11:59:00\x00Z", "invalid_timestamp"),
    ],
)
def test_timestamps_at_the_edges_of_the_calendar(timestamp, code):
    error = rejected(event(timestamp=timestamp))
    assert (error.code, error.field) == (code, "timestamp"), error.message

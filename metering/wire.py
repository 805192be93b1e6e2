"""A usage record's bytes → a validated event, for the consumer (records that reached Kafka from
the ingest API, or from a producer writing to the topic directly). No database, no Django.

Two paths, one contract. The fast one decodes with msgspec into a typed struct (compiled code:
types, UTF-8 and JSON syntax checked in C) and accepts an event only when every rule of
metering.validation plainly holds — a plain quantity string, an RFC 3339 timestamp with an
offset, printable identifiers, metadata that is compact ASCII JSON with nothing to unescape.
Whenever it is not sure, it steps aside and the reference path (orjson + validate_event)
decides, with the API's own codes. Both give the same event or the same reason for every input
(tests/metering/test_wire.py checks it with hypothesis)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

import msgspec
import orjson

from .validation import (
    _METRIC_RE,
    _PLAIN_QUANTITY_RE,
    MAX_DIMENSIONS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_ITEMS,
    EventRejected,
    UsageEvent,
    parse_timestamp,
    validate_event,
)


class _Wire(msgspec.Struct, gc=False):
    """The usage event v1 as the ingest API writes it to the topic (UsageEvent.to_wire)."""

    event_id: str
    metric: str
    quantity: str
    timestamp: str
    api_key: str | None = None
    customer_id: int | None = None
    subscription_id: int | None = None
    dimensions: dict[str, str] | None = None
    metadata: msgspec.Raw = msgspec.Raw(b"null")  # kept as bytes (msgspec takes no Raw in a union)


_DECODER = msgspec.json.Decoder(_Wire)
# In raw metadata, what could hide something validation refuses or jsonb cannot store: control
# characters, any escape (\u0000, lone surrogates), exponents (1e999 is not finite as a float),
# integers of 19 digits or more (past 64 bits). Absent all of them — and in ASCII — the JSON
# text holds only printable strings, finite numbers, true/false/null.
_RAW_METADATA_SUSPECT = re.compile(rb"[\x00-\x1f\x7f\\]|[0-9][eE]|[0-9]{19}")


_METADATA_KNOWN: dict[bytes, dict] = {}  # metadata text → its value, for texts seen and accepted before
_METADATA_KNOWN_MAX = 4096


def _metadata(raw: msgspec.Raw) -> dict | None:
    """The metadata when it certainly passes validation, else None (the reference path decides).

    A gateway or SDK sends the same few metadata objects again and again: a text accepted once
    is looked up, not checked and parsed again (the value is shared by the events that carry
    it; nothing writes to an event's metadata)."""
    data = bytes(raw)
    known = _METADATA_KNOWN.get(data)
    if known is not None:
        return known
    if data == b"null" or data == b"{}":
        return {}
    nesting = data.count(b"{") + data.count(b"[")  # counts brackets in strings too: errs on the safe side
    if (
        data[:1] != b"{"
        or len(data) > MAX_METADATA_BYTES
        or nesting > MAX_METADATA_DEPTH
        or data.count(b",") + nesting > MAX_METADATA_ITEMS
        or not data.isascii()
        or _RAW_METADATA_SUSPECT.search(data)
    ):
        return None
    value = orjson.loads(data)
    if len(_METADATA_KNOWN) >= _METADATA_KNOWN_MAX:
        _METADATA_KNOWN.clear()  # bounded: unusual traffic (every event its own metadata) just re-checks
    _METADATA_KNOWN[data] = value
    return value


def _fast(wire: _Wire, now: datetime) -> UsageEvent | None:
    """The event, when the fast checks alone show it valid; None to let validate_event decide."""
    api_key, event_id, metric, quantity = wire.api_key, wire.event_id, wire.metric, wire.quantity
    if api_key is None or wire.customer_id is not None or wire.subscription_id is not None:
        return None  # customer_id / subscription_id events: the reference path
    if not (
        len(event_id) <= 128 and event_id.isprintable() and event_id.strip()
        and len(api_key) <= 256 and api_key.isprintable() and api_key.strip()
        and len(metric) <= 100 and _METRIC_RE.fullmatch(metric)
        and _PLAIN_QUANTITY_RE.fullmatch(quantity)
    ):
        return None
    try:
        moment, is_late = parse_timestamp(wire.timestamp, now=now)  # the reference parser itself
    except EventRejected:
        return None
    dimensions = wire.dimensions
    if dimensions is None:
        dimensions = {}
    elif len(dimensions) > MAX_DIMENSIONS:
        return None
    else:
        for name, value in dimensions.items():
            if not (0 < len(name) <= 64 and len(value) <= 256 and name.isprintable() and value.isprintable()):
                return None
    metadata = _metadata(wire.metadata)
    if metadata is None:
        return None
    return UsageEvent(
        event_id, metric, Decimal(quantity), moment, api_key, None, None, dimensions, metadata, is_late
    )


def _reference(value: bytes, now: datetime) -> tuple[UsageEvent | None, str | None]:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        return None, f"undecodable: {error}"
    try:
        return validate_event(data, now=now), None
    except EventRejected as rejection:
        return None, f"{rejection.code}: {rejection.field}: {rejection.message}"


def decode_event(value: bytes, *, now: datetime) -> tuple[UsageEvent | None, str | None]:
    """(event, None), or (None, the DLQ reason): `undecodable: …` for bytes that are not JSON,
    `<code>: <field>: <message>` for JSON against the contract (the API's own codes)."""
    try:
        event = _fast(_DECODER.decode(value), now)
    except (msgspec.DecodeError, ValueError, OverflowError, RecursionError):  # the reference path names the problem
        event = None
    if event is not None:
        return event, None
    return _reference(value, now)



# --- the record around the event (key and headers): the consumer's checks before decode_event ---


def tenant_of(key: bytes | None, headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    """The tenant of a record: header `tenant_id`, else the key's `<tenant>:` prefix."""
    for name, value in headers or ():
        if name == "tenant_id":
            return int(value) if value.isdigit() else None
    if key:
        head = key.split(b":", 1)[0]
        if head.isdigit():
            return int(head)
    return None


SCHEMA_VERSIONS = (b"1",)


def schema_version_problem(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """A direct producer may say which contract its record follows (header `schema_version`,
    docs/KAFKA.md); one this consumer does not know is poison. No header: v1."""
    for name, value in headers:
        if name == "schema_version" and value not in SCHEMA_VERSIONS:
            return f"unsupported_schema_version: {value[:20]!r}; this consumer reads usage event v1 (schema_version: 1)"
    return None


def record_check(
    *, key: bytes | None, headers: Sequence[tuple[str, bytes]] | None, value: bytes, received_at: datetime,
    tenant_exists: Callable[[int], bool],
) -> tuple[int | None, UsageEvent | None, str | None]:
    """(tenant id, event, None) for a record the usage consumer would accept, else (tenant id or
    None, None, the DLQ reason) — the consumer's checks in its order (consumers.usage.steps
    RecordStep.decode, which inlines them for speed; tests/metering/test_replay_check.py keeps
    the two in agreement). `received_at` is the record's timestamp."""
    tenant_id = tenant_of(key, headers)
    if tenant_id is None:
        return None, None, "missing_tenant: the record has no tenant_id header and its key has no '<tenant>:' prefix"
    if headers and (version := schema_version_problem(headers)):
        return tenant_id, None, version
    if not tenant_exists(tenant_id):
        return tenant_id, None, f"unknown_tenant: no tenant {tenant_id}"
    event, problem = decode_event(value or b"", now=received_at)
    return tenant_id, event, problem

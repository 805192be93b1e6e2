"""The usage event contract v1 (ARCHITECTURE.md §5), enforced at the edge (ingest API) and
again by the consumer for records that reached Kafka some other way. No database, no Django.

A rejected event raises `EventRejected` with a stable `code`, the `field` at fault and a
sentence. `now` is the moment of arrival (request time, or the Kafka record's timestamp), so a
lagging consumer judges an event exactly as the API did.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=90)
LATE_AFTER = timedelta(hours=24)
MAX_QUANTITY = Decimal("1e20")
MAX_QUANTITY_PLACES = 12
MAX_DIMENSIONS = 32
MAX_METADATA_BYTES = 8192
MAX_METADATA_DEPTH = 8  # nested objects/arrays below `metadata` itself
MAX_METADATA_ITEMS = 1024  # keys and array items, all levels together
MAX_TIMESTAMP_CHARS = 64
# JSON integers the raw ledger's jsonb and the wire encoder (64-bit) both hold.
MIN_JSON_INT, MAX_JSON_INT = -(2**63), 2**64 - 1
REQUIRED = ("event_id", "metric", "quantity", "timestamp")
# Who the event bills: exactly one of these. An API key (gateways, SDK middleware), or Aforo's
# id of the customer or of the subscription (server-side metering with no key at hand).
SUBJECTS = ("api_key", "customer_id", "subscription_id")
_METRIC_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")  # used with fullmatch: "$" would admit a trailing newline
# ASCII only: Decimal() alone would also take "１２" (full-width digits), "1_000", " 1 " and "NaN".
_QUANTITY_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")  # fullmatch
# What nearly every quantity looks like ("1", "2.50"): already plain, in range and in places.
_PLAIN_QUANTITY_RE = re.compile(r"(?:0|[1-9][0-9]{0,19})(?:\.[0-9]{1,12})?")  # fullmatch
# What text the ledger may store. PostgreSQL text and jsonb refuse NUL; UTF-8 cannot encode a
# lone surrogate; other C0/C1 controls and DEL make no sense in an identifier or a dimension.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Free text (metadata values) may keep tab, newline and carriage return.
_FREE_TEXT_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class EventRejected(ValueError):
    def __init__(self, code: str, field: str | None, message: str):
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "message": self.message}


@lru_cache(maxsize=65_536)
def api_key_subject(api_key: str) -> str:
    """The subject of events carrying this key: its SHA-256, as keys are stored (never the key).
    Cached: a consumer sees the same few keys over and over."""
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()


class UsageEvent(NamedTuple):
    event_id: str
    metric: str
    quantity: Decimal
    timestamp: datetime
    api_key: str | None = None
    customer_id: int | None = None
    subscription_id: int | None = None
    dimensions: dict[str, str] = {}  # noqa: RUF012 (never mutated: validate_event builds a new one)
    metadata: dict[str, Any] = {}  # noqa: RUF012
    is_late: bool = False

    @property
    def subject(self) -> str:
        """Who the event bills, as the enrichment cache and the raw ledger name it:
        `key:<sha256>`, `customer:<id>` or `subscription:<id>`."""
        if self.api_key is not None:
            return api_key_subject(self.api_key)
        if self.customer_id is not None:
            return f"customer:{self.customer_id}"
        return f"subscription:{self.subscription_id}"

    @property
    def routing_key(self) -> str:
        """What follows `<tenant>:` in the Kafka record key (ordering per key / customer / subscription)."""
        return self.api_key if self.api_key is not None else self.subject

    @property
    def key_prefix(self) -> str:
        return (self.api_key or "")[:16]

    def to_wire(self) -> dict[str, Any]:
        """The normalised JSON form produced to the usage topic."""
        subject = {name: getattr(self, name) for name in SUBJECTS if getattr(self, name) is not None}
        return {
            "event_id": self.event_id,
            **subject,
            "metric": self.metric,
            "quantity": str(self.quantity),
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "dimensions": self.dimensions,
            "metadata": self.metadata,
        }


def _bad_character(value: str, pattern: re.Pattern[str] = _CONTROL_RE) -> str | None:
    """A sentence naming the first character the ledger cannot store or that makes no sense
    here (NUL, a control character, a lone surrogate), or None."""
    if value.isprintable():  # C speed, and true for nearly every real value: no control, no surrogate
        return None
    found = pattern.search(value)
    if found is None:
        return None
    code_point = ord(found.group())
    kind = "a lone surrogate" if 0xD800 <= code_point <= 0xDFFF else "a control character"
    return f"contains {kind} (U+{code_point:04X}) at position {found.start()}"


def _text(raw: dict[str, Any], name: str, limit: int) -> str:
    value = raw[name]
    if not isinstance(value, str) or not value.strip():
        raise EventRejected(f"invalid_{name}", name, f"{name} must be a non-empty string")
    if len(value) > limit:
        raise EventRejected(f"invalid_{name}", name, f"{name} is longer than {limit} characters")
    problem = _bad_character(value)
    if problem:
        raise EventRejected(f"invalid_{name}", name, f"{name} {problem}")
    return value


def parse_quantity(value: Any) -> Decimal:
    if isinstance(value, bool) or isinstance(value, float):
        raise EventRejected(
            "invalid_quantity", "quantity", 'quantity must be a decimal string such as "1.5" or an integer (JSON floats are inexact)'
        )
    if not isinstance(value, (str, int)):
        raise EventRejected("invalid_quantity", "quantity", "quantity must be a decimal string or an integer")
    if isinstance(value, str) and _PLAIN_QUANTITY_RE.fullmatch(value):
        return Decimal(value)  # the hot path: what the checks below would return unchanged
    if isinstance(value, str) and (len(value) > 64 or not _QUANTITY_RE.fullmatch(value)):
        shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "…"
        raise EventRejected(
            "invalid_quantity", "quantity", f"quantity {shown} is not a decimal number (ASCII digits, optional . and exponent)"
        )
    if isinstance(value, int) and not MIN_JSON_INT <= value <= MAX_JSON_INT:
        raise EventRejected("invalid_quantity", "quantity", "quantity must be below 10^20")
    try:
        quantity = Decimal(value)
    except (InvalidOperation, ValueError):
        raise EventRejected("invalid_quantity", "quantity", f"quantity {value!r} is not a decimal number") from None
    if not quantity.is_finite():
        raise EventRejected("invalid_quantity", "quantity", "quantity must be finite (no NaN or Infinity)")
    if quantity < 0:
        raise EventRejected("negative_quantity", "quantity", "quantity must not be negative")
    if quantity >= MAX_QUANTITY:
        raise EventRejected("invalid_quantity", "quantity", "quantity must be below 10^20")
    if quantity.as_tuple().exponent < -MAX_QUANTITY_PLACES:  # type: ignore[operator]
        quantity = quantity.normalize()
        if quantity.as_tuple().exponent < -MAX_QUANTITY_PLACES:  # type: ignore[operator]
            raise EventRejected("invalid_quantity", "quantity", f"quantity has more than {MAX_QUANTITY_PLACES} decimal places")
    return Decimal(format(quantity + Decimal(0), "f"))  # plain notation; folds -0 into 0


def parse_timestamp(value: Any, *, now: datetime) -> tuple[datetime, bool]:
    if not isinstance(value, str):
        raise EventRejected("invalid_timestamp", "timestamp", "timestamp must be an ISO 8601 string such as 2026-11-24T10:00:00Z")
    if len(value) > MAX_TIMESTAMP_CHARS or not (value.isascii() and value.isprintable()):
        raise EventRejected("invalid_timestamp", "timestamp", "timestamp is not an ISO 8601 string (ASCII, at most 64 characters)")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise EventRejected("invalid_timestamp", "timestamp", f"timestamp {value!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise EventRejected("invalid_timestamp", "timestamp", "timestamp must carry a timezone (Z or ±hh:mm)")
    try:
        moment = moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):  # 0001-01-01T00:00:00+14:00 has no UTC instant
        raise EventRejected("invalid_timestamp", "timestamp", f"timestamp {value!r} is outside the representable range") from None
    if moment > now + MAX_FUTURE:
        raise EventRejected("timestamp_in_future", "timestamp", "timestamp is more than 5 minutes in the future")
    if moment < now - MAX_AGE:
        raise EventRejected("timestamp_too_old", "timestamp", "timestamp is more than 90 days in the past")
    return moment, moment < now - LATE_AFTER


def parse_dimensions(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventRejected("invalid_dimensions", "dimensions", "dimensions must be an object of names to values")
    if len(value) > MAX_DIMENSIONS:
        raise EventRejected("invalid_dimensions", "dimensions", f"at most {MAX_DIMENSIONS} dimensions")
    parsed: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name or len(name) > 64:
            raise EventRejected("invalid_dimensions", "dimensions", "dimension names are strings of 1 to 64 characters")
        problem = _bad_character(name)
        if problem:
            raise EventRejected("invalid_dimensions", "dimensions", f"dimension name {name!r} {problem}")
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int) and MIN_JSON_INT <= item <= MAX_JSON_INT:
            item = str(item)
        if not isinstance(item, str) or len(item) > 256:
            raise EventRejected(
                "invalid_dimensions", f"dimensions.{name}", "dimension values are strings (or integers) of at most 256 characters"
            )
        problem = _bad_character(item)
        if problem:
            raise EventRejected("invalid_dimensions", f"dimensions.{name}", f"the value {problem}")
        parsed[name] = item
    return parsed


def _metadata_problem(value: dict[str, Any]) -> tuple[str, str] | None:
    """(path, sentence) of the first thing in metadata the ledger's jsonb cannot store or this
    contract bounds: depth, item count, key and string characters, integer range, non-finite
    numbers, non-JSON types. Iterative, so no input can exhaust the stack."""
    pending: list[tuple[Any, str, int]] = [(value, "metadata", 0)]
    items = 0
    while pending:
        node, path, depth = pending.pop()
        if isinstance(node, dict):
            children = [(f"{path}.{key}" if isinstance(key, str) else path, key, child) for key, child in node.items()]
        elif isinstance(node, list):
            children = [(f"{path}[{index}]", None, child) for index, child in enumerate(node)]
        elif isinstance(node, str):
            problem = _bad_character(node, _FREE_TEXT_CONTROL_RE)
            if problem:
                return path, f"the value {problem}"
            continue
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if not MIN_JSON_INT <= node <= MAX_JSON_INT:
                return path, "integers must fit in 64 bits"
            continue
        elif isinstance(node, float):
            if not math.isfinite(node):
                return path, "numbers must be finite"
            continue
        else:
            return path, f"{type(node).__name__} is not a JSON value"
        if depth >= MAX_METADATA_DEPTH and children:
            return path, f"metadata is nested more than {MAX_METADATA_DEPTH} levels deep"
        items += len(children)
        if items > MAX_METADATA_ITEMS:
            return "metadata", f"metadata holds more than {MAX_METADATA_ITEMS} keys and items"
        for child_path, key, child in children:
            if isinstance(node, dict):
                if not isinstance(key, str):
                    return path, "metadata keys must be strings"
                problem = _bad_character(key)
                if problem:
                    return path, f"the key {key!r} {problem}"
            pending.append((child, child_path, depth + 1))
    return None


# In metadata serialized by orjson, any of these may hide what _metadata_problem refuses (an
# escaped control character, DEL, a C1 control's lead byte, a newline in a key, a non-finite float
# written as null): only then is the slow walk needed. Absent all of them, orjson having written
# the value at all rules out non-JSON types, non-string keys, lone surrogates, integers past 64
# bits and runaway nesting.
_METADATA_SUSPECT = re.compile(rb"\\u00|\\[bfnrt]|\x7f|\xc2|null")


def _metadata_fast_ok(value: dict[str, Any]) -> bool:
    """True when metadata certainly passes _metadata_problem and the size bound (one orjson
    call and a byte scan); False means: walk it to find out."""
    try:
        data = orjson.dumps(value)
    except TypeError:
        return False
    nesting = data.count(b"{") + data.count(b"[")  # counts brackets in strings too: errs on the safe side
    return (
        len(data) <= MAX_METADATA_BYTES
        and nesting <= MAX_METADATA_DEPTH
        and data.count(b",") + nesting <= MAX_METADATA_ITEMS
        and _METADATA_SUSPECT.search(data) is None
    )


def parse_metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventRejected("invalid_metadata", "metadata", "metadata must be an object")
    if _metadata_fast_ok(value):
        return value
    problem = _metadata_problem(value)
    if problem:
        raise EventRejected("invalid_metadata", problem[0], problem[1])
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise EventRejected("invalid_metadata", "metadata", f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return value


def parse_subject(raw: dict[str, Any]) -> dict[str, Any]:
    given = [name for name in SUBJECTS if raw.get(name) is not None]
    if not given:
        raise EventRejected("missing_field", "api_key", "api_key (or customer_id / subscription_id) is required")
    if len(given) > 1:
        raise EventRejected(
            "ambiguous_subject", given[1], f"send exactly one of api_key, customer_id, subscription_id (got {', '.join(given)})"
        )
    name = given[0]
    if name == "api_key":
        return {"api_key": _text(raw, "api_key", 256)}
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value >= 2**63:
        raise EventRejected(
            f"invalid_{name}", name, f"{name} must be the Aforo id (a positive JSON integer, not a string) of the {name[:-3]}"
        )
    return {name: value}


def validate_event(raw: Any, *, now: datetime) -> UsageEvent:
    """Check one event against contract v1 and return its normalised form."""
    if not isinstance(raw, dict):
        raise EventRejected("not_an_object", None, "each event must be a JSON object")
    for name in REQUIRED:
        if raw.get(name) is None:
            raise EventRejected("missing_field", name, f"{name} is required")
        if name == "event_id":
            subject = parse_subject(raw)  # reported in contract order: event_id, subject, metric, …
    timestamp, is_late = parse_timestamp(raw["timestamp"], now=now)
    metric = _text(raw, "metric", 100)
    if not _METRIC_RE.fullmatch(metric):
        raise EventRejected("invalid_metric", "metric", "metric may contain only letters, digits and _ . : -")
    return UsageEvent(
        event_id=_text(raw, "event_id", 128),
        **subject,
        metric=metric,
        quantity=parse_quantity(raw["quantity"]),
        timestamp=timestamp,
        dimensions=parse_dimensions(raw.get("dimensions")),
        metadata=parse_metadata(raw.get("metadata")),
        is_late=is_late,
    )

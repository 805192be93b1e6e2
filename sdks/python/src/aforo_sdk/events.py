"""Building usage events (contract v1) at call time: the id, the timestamp and the quantity are
fixed when the usage happens, so every later retry sends the very same event."""

from __future__ import annotations

import os
import time
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal, Union

Quantity = Union[str, int, Decimal]
Event = dict[str, Any]
_encoder = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps(…, separators=…) builds one per call


def event_bytes(event: Event) -> bytes:
    """The event's JSON, as it goes on the wire and into the spool."""
    return _encoder.encode(event).encode()


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits. Time-ordered, so
    the ledger's index on event ids stays append-mostly."""
    unix_ms = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 used
    rand_a = random_bits >> 68  # 12 bits
    rand_b = random_bits & ((1 << 62) - 1)
    value = (unix_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    digits = f"{value:032x}"  # uuid.UUID(int=…) would cost more than the rest together
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def quantity_text(quantity: Quantity) -> str:
    """The quantity as the decimal string the API wants. Floats are refused (inexact: 0.1 is not
    one tenth); pass a str, an int or a Decimal."""
    if isinstance(quantity, bool) or isinstance(quantity, float):
        raise TypeError("quantity must be a str, int or Decimal (floats are inexact)")
    if isinstance(quantity, int):
        return str(quantity)
    if isinstance(quantity, Decimal):
        if not quantity.is_finite():
            raise ValueError("quantity must be finite")
        return format(quantity, "f")
    if isinstance(quantity, str):
        return quantity
    raise TypeError(f"quantity must be a str, int or Decimal, not {type(quantity).__name__}")


def timestamp_text(moment: datetime | None = None) -> str:
    """RFC 3339 with an offset (UTC now when none is given; a naive datetime is refused)."""
    if moment is None:
        return datetime.now(timezone.utc).isoformat(timespec="microseconds")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    return moment.isoformat()


def event_build(
    *,
    metric: str,
    quantity: Quantity = 1,
    api_key: str | None = None,
    customer_id: int | None = None,
    subscription_id: int | None = None,
    dimensions: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
    timestamp: datetime | None = None,
    event_id: str | None = None,
) -> Event:
    """One event, ready to send. Exactly one subject (api_key, customer_id or subscription_id)."""
    subjects = [s for s in (api_key, customer_id, subscription_id) if s is not None]
    if len(subjects) != 1:
        raise ValueError("exactly one of api_key, customer_id, subscription_id is required")
    event: Event = {"event_id": event_id or uuid7()}
    if api_key is not None:
        event["api_key"] = api_key
    elif customer_id is not None:
        event["customer_id"] = customer_id
    else:
        event["subscription_id"] = subscription_id
    event["metric"] = metric
    event["quantity"] = quantity_text(quantity)
    event["timestamp"] = timestamp_text(timestamp)
    event["dimensions"] = dimensions or {}
    event["metadata"] = metadata or {}
    return event


Status = Literal["accepted", "duplicate", "rejected", "dropped"]


@dataclass(frozen=True)
class EventResult:
    """The final outcome of one event. `accepted` and `duplicate` mean Aforo holds it (a
    duplicate was already received: a retry of a delivered event); `rejected` means Aforo refused
    it (`code`, `field`, `message` from the API; never retried); `dropped` means the SDK gave it
    up (`code`: `buffer_full` — the overflow policy — or `undelivered_at_shutdown` — the client
    closed before Aforo acknowledged it and there is no spool)."""

    event_id: str
    status: Status
    event: Event
    code: str | None = None
    field: str | None = None
    message: str | None = None
    http_status: int | None = None

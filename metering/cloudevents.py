"""CloudEvents ingest (structured mode, JSON): POST /api/v1/events with
`application/cloudevents+json` (one event) or `application/cloudevents-batch+json` (an array).
Each CloudEvent becomes a usage event v1, then goes through the same validation, deduplication
and topic as any other. The mapping follows OpenMeter's, so a client of theirs can switch by
changing the URL (and the token):

| CloudEvent                  | usage event v1                                                    |
|-----------------------------|-------------------------------------------------------------------|
| `specversion`               | must be "1.0"                                                     |
| `id` + `source`             | `event_id` = "<source>/<id>" (deduplicated per (source, id), as OpenMeter does); a pair longer than 128 characters becomes "ce:" + its SHA-256 |
| `type`                      | `metric` (the metric's code)                                      |
| `subject`                   | who it bills: an API key (`sk_live_…`), else a customer's `external_id` in the tenant, else "customer:<id>" / "subscription:<id>" (Aforo ids) |
| `time`                      | `timestamp` (absent: the time it was received)                    |
| `data.quantity` (or `data.value`) | `quantity` (absent: 1 — the event counts once)              |
| `data.dimensions` / `data.metadata` | the event's dimensions / metadata                         |
| other `data` fields         | scalars (string, integer, boolean) become dimensions; objects, arrays and nulls go to metadata |
| `datacontenttype`           | absent or application/json                                        |

The event's metadata also keeps `ce_id`, `ce_source` and `ce_type`. A CloudEvent that cannot be
mapped is rejected at its index with a stable code, as an invalid event is."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from .validation import EventRejected

CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"
API_KEY_PREFIX = "sk_live_"  # catalog.services.API_KEY_PREFIX (metering sits below catalog's services here)
MAX_EVENT_ID = 128


def _text(ce: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = ce.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise EventRejected("invalid_cloudevent", name, f"CloudEvent attribute {name} must be a non-empty string")
    return value


def subjects_to_look_up(items: Iterable[Any]) -> set[str]:
    """The subjects of a batch that may be customers' external ids (one query answers them all)."""
    wanted = set()
    for ce in items:
        subject = ce.get("subject") if isinstance(ce, dict) else None
        if isinstance(subject, str) and subject and not subject.startswith(API_KEY_PREFIX):
            wanted.add(subject)
    return wanted


def _subject(subject: str, customer_by_external_id: Callable[[str], int | None]) -> dict[str, Any]:
    if subject.startswith(API_KEY_PREFIX):
        return {"api_key": subject}
    customer_id = customer_by_external_id(subject)
    if customer_id is not None:
        return {"customer_id": customer_id}
    kind, _, number = subject.partition(":")
    if kind in ("customer", "subscription") and number.isdigit() and number.isascii() and 0 < int(number) < 2**63:
        return {f"{kind}_id": int(number)}
    raise EventRejected(
        "unknown_subject", "subject",
        f"subject {subject[:60]!r} is not an API key, a customer's external id in this tenant, or customer:<id>",
    )


def cloudevent_to_event(ce: Any, *, received_at: datetime, customer_by_external_id: Callable[[str], int | None]) -> dict[str, Any]:
    """One structured-mode CloudEvent as a usage event v1 payload (validated afterwards like any
    other). Raises EventRejected for what the mapping cannot take."""
    if not isinstance(ce, dict):
        raise EventRejected("not_an_object", None, "each CloudEvent must be a JSON object")
    if ce.get("specversion") != "1.0":
        raise EventRejected("invalid_cloudevent", "specversion", 'specversion must be "1.0"')
    ce_id, source, ce_type = _text(ce, "id"), _text(ce, "source"), _text(ce, "type")
    content_type = ce.get("datacontenttype")
    if content_type is not None and (not isinstance(content_type, str) or content_type.split(";")[0].strip() != "application/json"):
        raise EventRejected("invalid_cloudevent", "datacontenttype", "datacontenttype must be application/json (structured JSON data)")
    subject = _text(ce, "subject")
    event_id = f"{source}/{ce_id}"
    if len(event_id) > MAX_EVENT_ID:
        event_id = "ce:" + hashlib.sha256(f"{source}\x00{ce_id}".encode(errors="surrogatepass")).hexdigest()
    data = ce.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventRejected("invalid_cloudevent", "data", "data must be a JSON object")
    quantity = data.get("quantity", data.get("value", 1))
    dimensions: dict[str, Any] = {}
    metadata: dict[str, Any] = {"ce_id": ce_id, "ce_source": source, "ce_type": ce_type}
    for name, value in data.items():
        if name in ("quantity", "value"):
            continue
        if name == "dimensions" and isinstance(value, dict):
            dimensions.update(value)
        elif name == "metadata" and isinstance(value, dict):
            metadata.update(value)
        elif isinstance(value, (str, bool, int)) and not isinstance(value, float):
            dimensions[name] = value
        else:
            metadata[name] = value
    time = ce.get("time")
    return {
        "event_id": event_id,
        **_subject(subject, customer_by_external_id),
        "metric": ce_type,
        "quantity": quantity,
        "timestamp": time if time is not None else received_at.isoformat(),
        "dimensions": dimensions,
        "metadata": metadata,
    }

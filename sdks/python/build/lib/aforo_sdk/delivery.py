"""One batch to POST /api/v1/events and its answer turned into per-event results. Pure of
threads: the client's flusher calls it and owns the retry loop."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .events import Event, EventResult
from .transport import Response, is_retryable, retry_after_seconds

EVENTS_PATH = "/api/v1/events"
MAX_BATCH_EVENTS = 1000  # the API's limit per request
MAX_BODY_BYTES = 2 * 1024 * 1024  # the API's body limit


def batch_body(parts: list[bytes]) -> bytes:
    return b'{"events":[' + b",".join(parts) + b"]}"


def event_bytes(event: Event) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Outcome:
    """What to do after one attempt: `results` when the batch got final answers, else retry
    (after at least `retry_after` seconds when the server said so)."""

    results: list[EventResult] | None
    retry_after: float | None = None
    reason: str = ""


def outcome_of(batch: list[Event], answer: Response) -> Outcome:
    """Per-event results from a 2xx/207 answer (or a 400 `invalid_events`, which carries them
    too); a whole-batch refusal for any other 4xx; a retry for 429 and 5xx."""
    if is_retryable(answer.status):
        return Outcome(None, retry_after_seconds(answer.headers.get("retry-after")), f"HTTP {answer.status}")
    payload = answer.json()
    per_event = payload.get("results") if isinstance(payload, dict) else None
    if isinstance(per_event, list) and (200 <= answer.status < 300 or answer.error_code == "invalid_events"):
        return Outcome(_per_event_results(batch, per_event, answer.status))
    if 200 <= answer.status < 300:  # an answer without results: Aforo took the batch whole
        return Outcome([EventResult(e["event_id"], "accepted", e, http_status=answer.status) for e in batch])
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or f"http_{answer.status}")
    message = str(error.get("message") or answer.body[:200].decode(errors="replace"))
    return Outcome([EventResult(e["event_id"], "rejected", e, code=code, message=message, http_status=answer.status)
                    for e in batch])


def _per_event_results(batch: list[Event], per_event: list[Any], http_status: int) -> list[EventResult]:
    by_index: dict[int, dict[str, Any]] = {}
    for result in per_event:
        if isinstance(result, dict) and isinstance(result.get("index"), int):
            by_index[result["index"]] = result
    results = []
    for index, event in enumerate(batch):
        result = by_index.get(index, {})
        status = result.get("status")
        if status == "rejected":
            results.append(EventResult(event["event_id"], "rejected", event, code=result.get("code"),
                                       field=result.get("field"), message=result.get("message"), http_status=http_status))
        elif status == "duplicate":
            results.append(EventResult(event["event_id"], "duplicate", event, code=result.get("reason") or result.get("code"),
                                       http_status=http_status))
        else:  # "accepted" (a missing result in a 2xx: the batch was taken whole)
            results.append(EventResult(event["event_id"], "accepted", event, http_status=http_status))
    return results

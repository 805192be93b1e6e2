"""One batch to POST /api/v1/events and its answer turned into per-event results. Pure of
threads: the client's flusher calls it and owns the retry loop."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .events import EventResult, Status
from .transport import Response, is_retryable, retry_after_seconds

EVENTS_PATH = "/api/v1/events"
MAX_BATCH_EVENTS = 1000  # the API's limit per request
MAX_BODY_BYTES = 2 * 1024 * 1024  # the API's body limit


Pending = tuple[str, bytes]  # (event_id, the event's JSON): what the buffer holds


def batch_body(batch: list[Pending]) -> bytes:
    return b'{"events":[' + b",".join(data for _, data in batch) + b"]}"


def result_for(pending: Pending, status: Status, **details: Any) -> EventResult:
    return EventResult(pending[0], status, json.loads(pending[1]), **details)


@dataclass(frozen=True)
class Outcome:
    """What to do after one attempt: `final` when every event got its final answer — `accepted`
    and `duplicate` counts, and a result for each event that is not plainly accepted (all of them
    when `every_result`) — else retry (after at least `retry_after` s when the server said so)."""

    final: bool
    retry_after: float | None = None
    reason: str = ""
    accepted: int = 0
    duplicate: int = 0
    results: list[EventResult] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(1 for result in self.results if result.status == "rejected")


def outcome_of(batch: list[Pending], answer: Response, *, every_result: bool = False) -> Outcome:
    """Per-event results from a 2xx/207 answer (or a 400 `invalid_events`, which carries them
    too); a whole-batch refusal for any other 4xx; a retry for 429 and 5xx."""
    if is_retryable(answer.status):
        return Outcome(False, retry_after_seconds(answer.headers.get("retry-after")), f"HTTP {answer.status}")
    payload = answer.json()
    per_event = payload.get("results") if isinstance(payload, dict) else None
    if isinstance(per_event, list) and (200 <= answer.status < 300 or answer.error_code == "invalid_events"):
        return _per_event(batch, per_event, answer.status, every_result)
    if 200 <= answer.status < 300:  # an answer without results: Aforo took the batch whole
        results = [result_for(p, "accepted", http_status=answer.status) for p in batch] if every_result else []
        return Outcome(True, accepted=len(batch), results=results)
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or f"http_{answer.status}")
    message = str(error.get("message") or answer.body[:200].decode(errors="replace"))
    return Outcome(True, results=[result_for(p, "rejected", code=code, message=message, http_status=answer.status)
                                  for p in batch])


def _per_event(batch: list[Pending], per_event: list[Any], http_status: int, every_result: bool) -> Outcome:
    by_index: dict[int, dict[str, Any]] = {}
    for answer in per_event:
        if isinstance(answer, dict) and isinstance(answer.get("index"), int):
            by_index[answer["index"]] = answer
    accepted = duplicate = 0
    results = []
    for index, pending in enumerate(batch):
        answer = by_index.get(index, {})
        status = answer.get("status")
        if status == "rejected":
            results.append(result_for(pending, "rejected", code=answer.get("code"), field=answer.get("field"),
                                      message=answer.get("message"), http_status=http_status))
        elif status == "duplicate":
            duplicate += 1
            if every_result:
                results.append(result_for(pending, "duplicate", code=answer.get("reason"), http_status=http_status))
        else:  # "accepted" (a missing result in a 2xx: the batch was taken whole)
            accepted += 1
            if every_result:
                results.append(result_for(pending, "accepted", http_status=http_status))
    return Outcome(True, accepted=accepted, duplicate=duplicate, results=results)

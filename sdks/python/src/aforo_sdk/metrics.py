"""The client's counters (monotonic since start) and gauges, read as one consistent snapshot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metrics:
    recorded: int = 0  # events handed to record() and buffered
    sent: int = 0  # accepted by Aforo
    duplicate: int = 0  # Aforo already had them (a retry of a delivered event): delivered too
    rejected: int = 0  # refused by Aforo (per event, or the whole batch's 4xx): never retried
    dropped: int = 0  # given up by the SDK: buffer full (overflow policy) or undelivered at close without a spool
    retried: int = 0  # event sends repeated after a network error, 429 or 5xx
    requests: int = 0  # POST /api/v1/events attempts
    request_failures: int = 0  # attempts that got no answer, a 429 or a 5xx
    buffered: int = 0  # gauge: waiting in memory
    in_flight: int = 0  # gauge: taken by the flusher, not yet answered
    spool_pending: int = 0  # gauge: in the spool, not yet acknowledged

"""The replay planner (lock/read → pure plan → write): what to do with each record a replay
read, over frozen dataclasses — no database, no broker. The reader (billing.replay.sources) and
the writer (billing.replay.services) are the only ones that touch them.

A record is re-validated with the consumer's own checks (metering.wire.record_check), judged at
its original arrival time, and then:
    replay            valid now: re-produced to the usage topic with its original key, value
                      bytes, headers and timestamp, plus `replay_run` / `replayed_from` headers;
                      the consumer rates it as usual, and the raw ledger's (tenant, event_id)
                      makes any duplicate a no-op
    still_invalid     refused for a reason that still holds (reported with it; stays where it is)
    already_replayed  a ReplayItem holds its (topic, partition, offset): an earlier run replayed it
Records of another tenant than the run's are not this run's: neither replayed nor reported."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from metering.wire import record_check, tenant_of

REPLAY = "replay"
STILL_INVALID = "still_invalid"
ALREADY_REPLAYED = "already_replayed"
OTHER_TENANT = "other_tenant"

# The header blocks the DLQ and a replay append after the producer's own (docs/KAFKA.md), in
# this order: stripped from the end, so a replayed record carries exactly the original headers
# (a producer's own header of the same name, earlier on, stays).
APPENDED_BLOCKS = (
    ("replay_run", "replayed_from"),
    ("reason", "original_topic", "original_partition", "original_offset", "original_timestamp"),
    ("reason", "original_topic", "original_partition", "original_offset"),  # dead letters before original_timestamp
)
INVALID_SAMPLES = 50  # still-invalid records listed one by one in a report (all are counted)


@dataclass(frozen=True)
class SourceRecord:
    """A record as read from the DLQ or the usage topic; `timestamp_ms` is its original arrival
    time (a dead letter's `original_timestamp` header, else its own timestamp)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True)
class Decision:
    record: SourceRecord
    outcome: str
    tenant_id: int | None = None
    event_id: str = ""
    reason: str = ""


def original_headers(headers: Sequence[tuple[str, bytes]]) -> tuple[tuple[str, bytes], ...]:
    """The producer's own headers: the record's, less those the DLQ or a replay appended."""
    names = [name for name, _ in headers]
    end = len(names)
    stripped = True
    while stripped:  # a replayed record dead-lettered again carries a replay block, then a DLQ block
        stripped = False
        for block in APPENDED_BLOCKS:
            if end >= len(block) and tuple(names[end - len(block):end]) == block:
                end -= len(block)
                stripped = True
                break
    return tuple(headers[:end])


def dead_letter_timestamp_ms(headers: Sequence[tuple[str, bytes]], fallback_ms: int) -> int:
    """When the dead-lettered record first arrived: its `original_timestamp` header (dead letters
    written before that header existed: the dead letter's own time, moments later)."""
    for name, value in headers:
        if name == "original_timestamp" and value.isdigit() and int(value) > 0:
            return int(value)
    return fallback_ms


def replay_plan(
    *, records: Iterable[SourceRecord], replayed: frozenset[tuple[str, int, int]], tenant_id: int | None,
    known_tenants: frozenset[int],
) -> list[Decision]:
    """One decision per record of the run's tenant (every record when `tenant_id` is None)."""
    decisions: list[Decision] = []
    for record in records:
        headers = original_headers(record.headers)
        owner = tenant_of(record.key, headers)
        if tenant_id is not None and owner != tenant_id:
            continue
        if record.position in replayed:
            decisions.append(Decision(record, ALREADY_REPLAYED, owner))
            continue
        received_at = datetime.fromtimestamp(record.timestamp_ms / 1000, timezone.utc)
        owner, event, reason = record_check(
            key=record.key, headers=headers, value=record.value, received_at=received_at,
            tenant_exists=known_tenants.__contains__,
        )
        if event is None:
            decisions.append(Decision(record, STILL_INVALID, owner, reason=reason or "invalid"))
        else:
            decisions.append(Decision(record, REPLAY, owner, event.event_id))
    return decisions


def reason_code(reason: str) -> str:
    """`unknown_tenant: no tenant 7` → `unknown_tenant` (the part a report counts by)."""
    return reason.split(":", 1)[0].strip() or "invalid"


@dataclass
class ReplayTally:
    """A run's report as it reads: counts per outcome, reason counts, the first invalid records."""

    source: str
    dry_run: bool
    read: int = 0
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    invalid: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def add(self, decisions: Sequence[Decision], *, read: int) -> None:
        self.read += read
        for decision in decisions:
            self.counts[decision.outcome] += 1
            if decision.outcome == STILL_INVALID:
                self.reasons[reason_code(decision.reason)] += 1
                if len(self.invalid) < INVALID_SAMPLES:
                    record = decision.record
                    self.invalid.append(
                        {"topic": record.topic, "partition": record.partition, "offset": record.offset, "reason": decision.reason}
                    )

    def report(self) -> dict:
        replayed_name = "would_replay" if self.dry_run else "replayed"
        return {
            "source": self.source, "dry_run": self.dry_run, "read": self.read,
            "counts": {
                replayed_name: self.counts[REPLAY], STILL_INVALID: self.counts[STILL_INVALID],
                ALREADY_REPLAYED: self.counts[ALREADY_REPLAYED],
            },
            "reasons": dict(self.reasons.most_common()),
            "invalid": self.invalid,
            **self.extra,
        }

    def progress_line(self) -> str:
        verb = "would replay" if self.dry_run else "replayed"
        return (
            f"read {self.read}: {verb} {self.counts[REPLAY]}, still invalid {self.counts[STILL_INVALID]}, "
            f"already replayed {self.counts[ALREADY_REPLAYED]}"
        )
